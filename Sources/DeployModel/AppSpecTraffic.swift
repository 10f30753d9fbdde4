
/// `traffic:` of an app.yaml: the proxy, the strategy and its steps.
extension AppSpec {
    static func parseTraffic(_ reader: YAMLReader, _ map: Node.Mapping, platform: Platform?, process: ProcessSettings?) -> TrafficSettings? {
        guard let node = reader.value(map, "traffic", parent: ""), let t = reader.mapping(node, field: "traffic") else { return nil }
        reader.warnUnknown(t, known: ["listen", "strategy", "steps", "interval", "scaleDownDelay", "failureLimit", "analysis", "proxy"], parent: "traffic")
        if let platform, platform == .exec {
            reader.error(node, field: "traffic", "traffic works on the process and container platforms, not exec", hint: "remove traffic, or use platform: process or container")
        }
        if let fixed = process?.port {
            reader.error(reader.value(t, "listen", parent: "traffic") ?? node, field: "process.port",
                         "process.port \(fixed) is fixed, but behind traffic each version needs a port of its own",
                         hint: "remove process.port (Rewind assigns one per version) and give clients traffic.listen")
        }
        let listen = parseListen(reader, t)
        let strategyText = reader.string(t, "strategy", parent: "traffic", required: true)
        let strategy = strategyText.flatMap(TrafficSettings.Strategy.init(rawValue:))
        if let strategyText, strategy == nil {
            let known = TrafficSettings.Strategy.allCases.map(\.rawValue)
            let near = Spelling.nearest(strategyText, in: known).map { " (did you mean \($0)?)" } ?? ""
            reader.error(reader.value(t, "strategy", parent: "traffic"), field: "traffic.strategy", "unknown strategy '\(strategyText)'\(near)",
                         hint: "use one of: \(known.joined(separator: ", "))")
        }
        var steps: [Int] = []
        if let stepsNode = reader.value(t, "steps", parent: "traffic") {
            if strategy == .blueGreen {
                reader.error(stepsNode, field: "traffic.steps", "steps are for strategy canary; blueGreen switches all traffic at once", hint: "remove steps, or use strategy: canary")
            }
            steps = parseSteps(reader, stepsNode)
        } else if strategy == .canary {
            reader.error(node, field: "traffic.steps", "strategy canary needs steps, such as [10, 25, 50, 100]")
        }
        var settings = TrafficSettings(listenPort: listen ?? 0, strategy: strategy ?? .blueGreen, steps: steps)
        if let interval = reader.duration(t, "interval", parent: "traffic") { settings.interval = interval }
        if let delay = reader.duration(t, "scaleDownDelay", parent: "traffic") { settings.scaleDownDelay = delay }
        if let limit = reader.int(t, "failureLimit", parent: "traffic", range: 1...100) { settings.failureLimit = limit }
        if let analysisNode = reader.value(t, "analysis", parent: "traffic") {
            if case .sequence(let list) = analysisNode {
                for (i, item) in list.enumerated() {
                    if let trigger = RepoConfig.parseTrigger(reader, item, field: "traffic.analysis[\(i)]") { settings.analysis.append(trigger) }
                }
            } else {
                reader.error(analysisNode, field: "traffic.analysis", "expected a list of queries {name, query, threshold, comparison, for}")
            }
        }
        if let proxyNode = reader.value(t, "proxy", parent: "traffic"), let p = reader.mapping(proxyNode, field: "traffic.proxy") {
            reader.warnUnknown(p, known: ["socket", "backend"], parent: "traffic.proxy")
            settings.proxySocket = reader.string(p, "socket", parent: "traffic.proxy", required: true)
            settings.proxyBackend = reader.string(p, "backend", parent: "traffic.proxy", required: true)
            if let socket = settings.proxySocket, !socket.hasPrefix("/") {
                reader.error(reader.value(p, "socket", parent: "traffic.proxy"), field: "traffic.proxy.socket", "'\(socket)' is not an absolute path",
                             hint: "give the path of HAProxy's admin socket (stats socket ... level admin)")
            }
            if let backend = settings.proxyBackend, !TrafficSettings.isProxyName(backend) {
                reader.error(reader.value(p, "backend", parent: "traffic.proxy"), field: "traffic.proxy.backend", "'\(backend)' is not a backend name (letters, digits, - _ .)")
            }
        }
        guard listen != nil, strategy != nil else { return nil }
        return settings
    }

    /// `listen: 8080`, `listen: 127.0.0.1:8080` or `listen: :8080`.
    static func parseListen(_ reader: YAMLReader, _ t: Node.Mapping) -> Int? {
        guard let node = reader.value(t, "listen", parent: "traffic", required: true), let text = reader.string(t, "listen", parent: "traffic") else { return nil }
        var portText = Substring(text)
        if let colon = text.lastIndex(of: ":") {
            let host = text[..<colon]
            guard host.isEmpty || host == "127.0.0.1" || host == "localhost" else {
                reader.error(node, field: "traffic.listen", "'\(text)' is not a loopback address", hint: "Rewind's proxy listens on 127.0.0.1: write 127.0.0.1:PORT or PORT")
                return nil
            }
            portText = text[text.index(after: colon)...]
        }
        guard let port = Int(portText), (1...65535).contains(port) else {
            reader.error(node, field: "traffic.listen", "'\(text)' is not a port", hint: "write 127.0.0.1:PORT or PORT, with PORT from 1 to 65535")
            return nil
        }
        return port
    }

    static func parseSteps(_ reader: YAMLReader, _ node: Node) -> [Int] {
        guard case .sequence(let list) = node else {
            reader.error(node, field: "traffic.steps", "expected a list of percentages, such as [10, 25, 50, 100]")
            return []
        }
        var steps: [Int] = []
        for (i, item) in list.enumerated() {
            guard case .scalar(let scalar) = item, let weight = Int(scalar.string), (1...100).contains(weight) else {
                reader.error(item, field: "traffic.steps[\(i)]", "'\(item.string ?? "")' is not a percentage from 1 to 100")
                return []
            }
            if let last = steps.last, weight <= last {
                reader.error(item, field: "traffic.steps[\(i)]", "step \(weight) does not increase on \(last)", hint: "list the weights in increasing order, such as [10, 25, 50, 100]")
                return []
            }
            steps.append(weight)
        }
        if steps.last != 100 {
            reader.error(node, field: "traffic.steps", "the steps end at \(steps.last.map(String.init) ?? "nothing"), not 100", hint: "end with 100: the canary is promoted at its last step")
        }
        return steps
    }
}
