
/// A host that follows the repository (`hosts:` of rewind.yaml): each runs
/// its own `rewind serve --host NAME` and applies the apps placed on it.
public struct HostSpec: Sendable, Equatable, Codable {
    public var name: String
    public var labels: [String: String]

    public init(name: String, labels: [String: String] = [:]) {
        self.name = name
        self.labels = labels
    }
}

/// Which hosts: by name (`hosts: [a, b]`), or by labels (`labels: {role:
/// web}`: every label must match), or both (a host matching either).
public struct HostSelector: Sendable, Equatable, Codable, CustomStringConvertible {
    public var hosts: [String] = []
    public var labels: [String: String] = [:]

    public init(hosts: [String] = [], labels: [String: String] = [:]) {
        self.hosts = hosts
        self.labels = labels
    }

    public func selects(_ host: HostSpec) -> Bool {
        hosts.contains(host.name) || (!labels.isEmpty && labels.allSatisfy { host.labels[$0.key] == $0.value })
    }

    /// The hosts of `fleet` it selects, in the order of `hosts:`.
    public func select(_ fleet: [HostSpec]) -> [HostSpec] { fleet.filter(selects) }

    public var description: String {
        let named = hosts.isEmpty ? [] : ["hosts \(hosts.joined(separator: ", "))"]
        let labelled = labels.isEmpty ? [] : ["labels " + labels.keys.sorted().map { "\($0)=\(labels[$0] ?? "")" }.joined(separator: ",")]
        return (named + labelled).joined(separator: " or ")
    }
}

/// An app's release across its hosts (`rollout:` of an app in
/// rewind.yaml): stage by stage, each stage's hosts at most `maxParallel`
/// at a time, the next stage once every host of this one reports the
/// release healthy through `soak`.
public struct FleetRollout: Sendable, Equatable, Codable {
    public struct Stage: Sendable, Equatable, Codable {
        public var selector: HostSelector
        /// Hosts of the stage applying at once (nil: all of them).
        public var maxParallel: Int?
        public var soak: Duration = Duration(milliseconds: 0)

        public init(selector: HostSelector, maxParallel: Int? = nil, soak: Duration = Duration(milliseconds: 0)) {
            self.selector = selector
            self.maxParallel = maxParallel
            self.soak = soak
        }
    }

    /// What a stage does about a host that has not reported for `hostTimeout`.
    public enum OnTimeout: String, Sendable, Equatable, Codable, CaseIterable { case halt, proceed }

    public var stages: [Stage]
    public var hostTimeout = Duration(milliseconds: 600_000)
    public var onTimeout = OnTimeout.halt

    public init(stages: [Stage]) { self.stages = stages }
}

extension RepoConfig {
    /// The apps placed on `host` (every app when there is no `hosts:`, or no `host`).
    public func apps(on host: String?) -> [AppRef] {
        guard let host, !hosts.isEmpty else { return apps }
        guard let spec = hosts.first(where: { $0.name == host }) else { return [] }
        return apps.filter { $0.placement?.selects(spec) ?? false }
    }

    /// The config as `host` applies it: its apps only, each depending only
    /// on apps that are here too (validation made sure they share a host).
    public func placed(on host: String?) -> RepoConfig {
        guard let host, !hosts.isEmpty else { return self }
        var config = self
        let here = apps(on: host)
        let names = Set(here.map(\.name))
        config.apps = here.map { app in
            var app = app
            app.dependsOn = app.dependsOn.filter(names.contains)
            return app
        }
        return config
    }

    /// Why `host` applies nothing, or nil: it is not one of `hosts:`.
    public func unknownHost(_ host: String?) -> String? {
        guard let host, !hosts.isEmpty, !hosts.contains(where: { $0.name == host }) else { return nil }
        return "host '\(host)' is not in \(Self.fileName)'s hosts (\(hosts.map(\.name).joined(separator: ", "))): it applies nothing"
    }

    static func parseHosts(_ reader: YAMLReader, _ map: Node.Mapping) -> [HostSpec] {
        guard let node = reader.value(map, "hosts", parent: "") else { return [] }
        guard case .sequence(let list) = node, !list.isEmpty else {
            reader.error(node, field: "hosts", "expected a non-empty list of hosts", hint: "each item has a name and, optionally, labels")
            return []
        }
        var hosts: [HostSpec] = []
        for (i, item) in list.enumerated() {
            let field = "hosts[\(i)]"
            guard let host = reader.mapping(item, field: field) else { continue }
            reader.warnUnknown(host, known: ["name", "labels"], parent: field)
            guard let name = reader.string(host, "name", parent: field, required: true) else { continue }
            if !RepoConfig.isValidAppName(name) {
                reader.error(item, field: "\(field).name", "'\(name)' is not a valid host name", hint: "use lower-case letters, digits and dashes, starting with a letter or digit")
            } else if hosts.contains(where: { $0.name == name }) {
                reader.error(item, field: "\(field).name", "duplicate host '\(name)'", hint: "every host needs its own name")
            }
            hosts.append(HostSpec(name: name, labels: reader.stringMap(host, "labels", parent: field) ?? [:]))
        }
        return hosts
    }

    /// `placement:` (or a stage's selector): `{hosts: [...]}` and/or `{labels: {...}}`.
    static func parseSelector(_ reader: YAMLReader, _ node: Node, field: String, hosts: [HostSpec]) -> HostSelector? {
        guard let map = reader.mapping(node, field: field) else { return nil }
        reader.warnUnknown(map, known: ["hosts", "labels"], parent: field)
        let selector = readSelector(reader, map, field: field, hosts: hosts)
        if selector.hosts.isEmpty && selector.labels.isEmpty {
            reader.error(node, field: field, "selects no host: give hosts (names) or labels", hint: "for example {hosts: [web-1]} or {labels: {role: web}}")
            return nil
        }
        return selector
    }

    /// The `hosts` and `labels` of a placement or a stage; each unknown host name is an error.
    private static func readSelector(_ reader: YAMLReader, _ map: Node.Mapping, field: String, hosts: [HostSpec]) -> HostSelector {
        let selector = HostSelector(hosts: reader.stringList(map, "hosts", parent: field) ?? [], labels: reader.stringMap(map, "labels", parent: field) ?? [:])
        for name in selector.hosts where !hosts.contains(where: { $0.name == name }) {
            reader.error(reader.value(map, "hosts", parent: field), field: "\(field).hosts", "unknown host '\(name)'",
                         hint: hosts.isEmpty ? "declare it under hosts: in rewind.yaml" : "name one of: \(hosts.map(\.name).joined(separator: ", "))")
        }
        return selector
    }

    /// An app's `placement` and `rollout` (entry `item` of `apps:`).
    static func parseFleetFields(_ reader: YAMLReader, _ app: Node.Mapping, _ item: Node, field: String, name: String, hosts: [HostSpec]) -> (HostSelector?, FleetRollout?) {
        let placementNode = reader.value(app, "placement", parent: field)
        let rolloutNode = reader.value(app, "rollout", parent: field)
        guard !hosts.isEmpty else {
            for (key, node) in [("placement", placementNode), ("rollout", rolloutNode)] {
                if let node { reader.error(node, field: "\(field).\(key)", "\(key) needs hosts: in rewind.yaml", hint: "declare the hosts, or remove \(key)") }
            }
            return (nil, nil)
        }
        guard let placementNode else {
            reader.error(item, field: "\(field).placement", "app '\(name)' is placed on no host", hint: "give it placement: {hosts: [...]} or {labels: {...}}")
            return (nil, nil)
        }
        guard let placement = parseSelector(reader, placementNode, field: "\(field).placement", hosts: hosts) else { return (nil, nil) }
        let placed = placement.select(hosts)
        if placed.isEmpty {
            reader.error(placementNode, field: "\(field).placement", "app '\(name)' is placed on no host: \(placement) matches none of \(hosts.map(\.name).joined(separator: ", "))",
                         hint: "fix the names or labels, or the hosts' labels")
        }
        guard let rolloutNode else { return (placement, nil) }
        return (placement, parseRollout(reader, rolloutNode, field: "\(field).rollout", placed: placed, hosts: hosts))
    }

    private static func parseRollout(_ reader: YAMLReader, _ node: Node, field: String, placed: [HostSpec], hosts: [HostSpec]) -> FleetRollout? {
        guard let map = reader.mapping(node, field: field) else { return nil }
        reader.warnUnknown(map, known: ["stages", "hostTimeout", "onTimeout"], parent: field)
        guard let stagesNode = reader.value(map, "stages", parent: field, required: true) else { return nil }
        guard case .sequence(let list) = stagesNode, !list.isEmpty else {
            reader.error(stagesNode, field: "\(field).stages", "expected a non-empty list of stages", hint: "each stage has hosts or labels, and optionally maxParallel and soak")
            return nil
        }
        var stages: [FleetRollout.Stage] = []
        for (i, item) in list.enumerated() {
            let stageField = "\(field).stages[\(i)]"
            guard let stage = reader.mapping(item, field: stageField) else { continue }
            reader.warnUnknown(stage, known: ["hosts", "labels", "maxParallel", "soak"], parent: stageField)
            let selector = readSelector(reader, stage, field: stageField, hosts: hosts)
            if selector.select(placed).isEmpty {
                reader.error(item, field: stageField, "stage \(i + 1) selects none of the app's hosts (\(placed.map(\.name).joined(separator: ", ")))",
                             hint: "give the stage hosts or labels of hosts the app is placed on")
            }
            var parsed = FleetRollout.Stage(selector: selector, maxParallel: reader.int(stage, "maxParallel", parent: stageField, range: 1...10_000))
            if let soak = reader.duration(stage, "soak", parent: stageField) { parsed.soak = soak }
            stages.append(parsed)
        }
        var rollout = FleetRollout(stages: stages)
        if let timeout = reader.duration(map, "hostTimeout", parent: field) { rollout.hostTimeout = timeout }
        if let text = reader.string(map, "onTimeout", parent: field) {
            if let choice = FleetRollout.OnTimeout(rawValue: text) {
                rollout.onTimeout = choice
            } else {
                reader.error(reader.value(map, "onTimeout", parent: field), field: "\(field).onTimeout", "unknown choice '\(text)'", hint: "use halt or proceed")
            }
        }
        return rollout
    }

    /// `dependsOn` orders apps on one host; between apps that share no host
    /// there is no order Rewind could keep (each host applies its own), so
    /// it is refused rather than silently ignored.
    static func checkDependenciesShareHosts(_ reader: YAMLReader, _ apps: [AppRef], _ nodes: [String: Node], hosts: [HostSpec]) {
        guard !hosts.isEmpty else { return }
        for (i, app) in apps.enumerated() {
            let mine = Set((app.placement?.select(hosts) ?? []).map(\.name))
            for dependency in app.dependsOn {
                guard let other = apps.first(where: { $0.name == dependency }), let placement = other.placement else { continue }
                if mine.isDisjoint(with: placement.select(hosts).map(\.name)) {
                    reader.error(nodes[app.name], field: "apps[\(i)].dependsOn", "'\(app.name)' depends on '\(dependency)', but they share no host: each host orders only its own apps",
                                 hint: "place them on a common host, or remove the dependency")
                }
            }
        }
    }
}
