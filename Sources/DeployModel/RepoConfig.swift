
/// One app entry of `rewind.yaml`.
public struct AppRef: Sendable, Equatable, Codable {
    public var name: String
    /// Repository-relative directory, e.g. `apps/api`.
    public var path: String
    public var dependsOn: [String]
    /// The hosts it runs on (with `hosts:` in rewind.yaml; required then).
    public var placement: HostSelector? = nil
    /// How a release moves across its hosts, stage by stage.
    public var rollout: FleetRollout? = nil
}

/// A Prometheus analysis trigger (evaluated by `rewind serve`).
public struct Trigger: Sendable, Equatable, Codable {
    public enum Action: String, Sendable, Codable, CaseIterable { case rollback, notify, log }
    /// How a query's value is held against the threshold.
    public enum Comparison: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
        case above = ">", atLeast = ">=", below = "<", atMost = "<="
        public var description: String { rawValue }
    }
    public var name: String
    public var query: String
    public var threshold: Double
    public var comparison: Comparison
    public var forDuration: Duration
    public var action: Action
}

extension Trigger {
    /// Whether `value` breaches the threshold.
    public func breached(by value: Double) -> Bool {
        switch comparison {
        case .above: value > threshold
        case .atLeast: value >= threshold
        case .below: value < threshold
        case .atMost: value <= threshold
        }
    }
}

/// The automatic rollback policy.
public struct RollbackPolicy: Sendable, Equatable, Codable {
    public var window: Duration = Duration(milliseconds: 30 * 60_000)
    public var cooldown: Duration = Duration(milliseconds: 10 * 60_000)
    public var maxPerHour: Int = 3
    /// After a release becomes healthy, how long crashes and failed health
    /// checks still count against it (and may roll it back automatically).
    public var soak: Duration = Duration(milliseconds: 5 * 60_000)
    /// Exits within the soak window that make a release crash-looping.
    public var crashLoopRestarts: Int = 3
    /// Which commits must carry a trusted signature before they are applied:
    /// `none`, `head` (the tip) or `all` (every new commit). The reconciler's
    /// `--verify` can only raise it.
    public var verify: String = "none"

    /// The default policy.
    public init() {}
    public var triggers: [Trigger] = []
}

/// `limits:` in rewind.yaml: bounds on app directories that a repository
/// sets for itself. They can only lower Rewind's own (10 MiB a file, 10,000
/// files an app, or the reconciler's --max-blob-size and --max-app-files).
public struct RepoLimits: Sendable, Equatable, Codable {
    /// The largest file in an app directory, in bytes.
    public var maxFileBytes: Int?
    /// The most files in one app directory.
    public var maxAppFiles: Int?

    /// No limits of the repository's own.
    public init() {}
}

/// `rewind.yaml`: the branch to follow, the apps and the rollback policy.
public struct RepoConfig: Sendable, Equatable, Codable {
    public static let fileName = "rewind.yaml"
    public var branch: String
    public var apps: [AppRef]
    public var policy: RollbackPolicy
    /// Absolute directory that relative artifact paths are resolved against.
    public var artifactRoot: String?
    /// The repository's own bounds on app directories.
    public var limits = RepoLimits()
    /// The hosts that follow the repository (`hosts:`); none: one host runs every app.
    public var hosts: [HostSpec] = []
    /// Change windows (`windows:`): freezes that hold deploy commits, or the only times they may apply.
    public var windows: [ChangeWindow] = []

    /// The app with this name.
    public func app(named name: String) -> AppRef? { apps.first { $0.name == name } }

    /// A parse: the config (nil when there is any error), and the errors and warnings.
    public typealias Parsed = (config: RepoConfig?, diagnostics: [Diagnostic])

    /// Parses and validates `rewind.yaml`. Errors and warnings come back in
    /// `diagnostics`; the config is nil when there is any error.
    public static func parse(_ text: String, file: String = fileName) -> Parsed {
        let reader = YAMLReader(file: file)
        guard let root = reader.compose(text), let map = reader.mapping(root, field: "") else {
            return (nil, reader.diagnostics)
        }
        reader.warnUnknown(map, known: ["apiVersion", "branch", "hosts", "apps", "policy", "artifactRoot", "limits", "windows"], parent: "")
        let branch = reader.string(map, "branch", parent: "") ?? "main"
        if !isValidBranchName(branch) {
            reader.error(reader.value(map, "branch", parent: ""), field: "branch", "'\(branch)' is not a valid branch name", hint: "use a name such as main")
        }
        let artifactRoot = reader.string(map, "artifactRoot", parent: "")
        if let artifactRoot, !artifactRoot.hasPrefix("/") {
            reader.error(reader.value(map, "artifactRoot", parent: ""), field: "artifactRoot", "must be an absolute directory", hint: "for example /var/lib/rewind/artifacts")
        }
        let hosts = parseHosts(reader, map)
        let apps = parseApps(reader, map, hosts: hosts)
        let policy = parsePolicy(reader, map)
        let limits = parseLimits(reader, map)
        let windows = parseWindows(reader, map, apps: apps)
        if reader.diagnostics.contains(where: { $0.severity == .error }) { return (nil, reader.diagnostics) }
        var config = RepoConfig(branch: branch, apps: apps, policy: policy, artifactRoot: artifactRoot)
        config.limits = limits
        config.hosts = hosts
        config.windows = windows
        return (config, reader.diagnostics)
    }

    private static func parseApps(_ reader: YAMLReader, _ map: Node.Mapping, hosts: [HostSpec]) -> [AppRef] {
        guard let node = reader.value(map, "apps", parent: "", required: true) else { return [] }
        guard case .sequence(let list) = node, !list.isEmpty else {
            reader.error(node, field: "apps", "expected a non-empty list of apps", hint: "each item has name and path")
            return []
        }
        var apps: [AppRef] = []
        var nodes: [String: Node] = [:]
        for (i, item) in list.enumerated() {
            let field = "apps[\(i)]"
            guard let app = reader.mapping(item, field: field) else { continue }
            reader.warnUnknown(app, known: ["name", "path", "dependsOn", "placement", "rollout"], parent: field)
            guard let name = reader.string(app, "name", parent: field, required: true) else { continue }
            if !isValidAppName(name) {
                reader.error(item, field: "\(field).name", "'\(name)' is not a valid app name", hint: appNameHint)
            }
            if nodes[name] != nil {
                reader.error(item, field: "\(field).name", "duplicate app '\(name)'", hint: "every app needs its own name")
            }
            nodes[name] = item
            let path = reader.string(app, "path", parent: field, required: true) ?? ""
            if let problem = RepoPath.problem(path) {
                reader.error(reader.value(app, "path", parent: field), field: "\(field).path", problem, hint: "use a relative path inside the repository, such as apps/\(name)")
            }
            let deps = reader.stringList(app, "dependsOn", parent: field) ?? []
            let (placement, rollout) = parseFleetFields(reader, app, item, field: field, name: name, hosts: hosts)
            apps.append(AppRef(name: name, path: RepoPath.normalise(path), dependsOn: deps, placement: placement, rollout: rollout))
        }
        checkPathsAndDependencies(reader, apps, nodes)
        checkDependenciesShareHosts(reader, apps, nodes, hosts: hosts)
        return apps
    }

    private static func checkPathsAndDependencies(_ reader: YAMLReader, _ apps: [AppRef], _ nodes: [String: Node]) {
        for (i, app) in apps.enumerated() {
            for other in apps[..<i] where !app.path.isEmpty && !other.path.isEmpty {
                if app.path == other.path || app.path.hasPrefix(other.path + "/") || other.path.hasPrefix(app.path + "/") {
                    reader.error(nodes[app.name], field: "apps[\(i)].path", "'\(app.path)' overlaps the path of app '\(other.name)' ('\(other.path)')", hint: "give each app a directory of its own")
                }
            }
            for dep in app.dependsOn where !apps.contains(where: { $0.name == dep }) {
                reader.error(nodes[app.name], field: "apps[\(i)].dependsOn", "unknown app '\(dep)'", hint: "name one of: \(apps.map(\.name).joined(separator: ", "))")
            }
        }
        // With a duplicate name the graph is ambiguous (api -> api); that
        // error is reported already.
        if Set(apps.map(\.name)).count == apps.count, let cycle = DependencyGraph(apps).cycle() {
            reader.error(nodes[cycle[0]], field: "apps", "dependency cycle: \(cycle.joined(separator: " -> "))", hint: "remove one of these dependsOn entries")
        }
    }

    private static func parseLimits(_ reader: YAMLReader, _ map: Node.Mapping) -> RepoLimits {
        var limits = RepoLimits()
        guard let node = reader.value(map, "limits", parent: ""), let l = reader.mapping(node, field: "limits") else { return limits }
        reader.warnUnknown(l, known: ["maxFileBytes", "maxAppFiles"], parent: "limits")
        limits.maxFileBytes = reader.int(l, "maxFileBytes", parent: "limits", range: 1...Int(Int32.max))
        limits.maxAppFiles = reader.int(l, "maxAppFiles", parent: "limits", range: 1...10_000_000)
        return limits
    }

    private static func parsePolicy(_ reader: YAMLReader, _ map: Node.Mapping) -> RollbackPolicy {
        var policy = RollbackPolicy()
        guard let node = reader.value(map, "policy", parent: ""), let p = reader.mapping(node, field: "policy") else { return policy }
        reader.warnUnknown(p, known: ["window", "cooldown", "maxPerHour", "soak", "crashLoopRestarts", "verify", "triggers"], parent: "policy")
        if let window = reader.duration(p, "window", parent: "policy") { policy.window = window }
        if let cooldown = reader.duration(p, "cooldown", parent: "policy") { policy.cooldown = cooldown }
        if let max = reader.int(p, "maxPerHour", parent: "policy", range: 0...1000) { policy.maxPerHour = max }
        if let soak = reader.duration(p, "soak", parent: "policy") { policy.soak = soak }
        if let restarts = reader.int(p, "crashLoopRestarts", parent: "policy", range: 1...100) { policy.crashLoopRestarts = restarts }
        if let verify = reader.string(p, "verify", parent: "policy") {
            if ["none", "head", "all"].contains(verify) {
                policy.verify = verify
            } else if let node = reader.value(p, "verify", parent: "policy") {
                reader.error(node, field: "policy.verify", "'\(verify)' is not one of none, head, all", hint: "write verify: head to require a signed tip")
            }
        }
        if let triggersNode = reader.value(p, "triggers", parent: "policy") {
            guard case .sequence(let list) = triggersNode else {
                reader.error(triggersNode, field: "policy.triggers", "expected a list of triggers")
                return policy
            }
            for (i, item) in list.enumerated() {
                if let trigger = parseTrigger(reader, item, field: "policy.triggers[\(i)]") { policy.triggers.append(trigger) }
            }
        }
        return policy
    }

    static func parseTrigger(_ reader: YAMLReader, _ node: Node, field: String) -> Trigger? {
        guard let t = reader.mapping(node, field: field) else { return nil }
        reader.warnUnknown(t, known: ["name", "query", "threshold", "comparison", "for", "action"], parent: field)
        let name = reader.string(t, "name", parent: field, required: true)
        let query = reader.string(t, "query", parent: field, required: true)
        let threshold = reader.double(t, "threshold", parent: field, required: true)
        let comparisonText = reader.string(t, "comparison", parent: field) ?? ">"
        let comparison = Trigger.Comparison(rawValue: comparisonText)
        if comparison == nil {
            reader.error(reader.value(t, "comparison", parent: field), field: "\(field).comparison", "'\(comparisonText)' is not a comparison", hint: "use >, >=, < or <=")
        }
        let forDuration = reader.duration(t, "for", parent: field) ?? Duration(milliseconds: 0)
        let actionText = reader.string(t, "action", parent: field) ?? "rollback"
        let action = Trigger.Action(rawValue: actionText)
        if action == nil {
            reader.error(reader.value(t, "action", parent: field), field: "\(field).action", "'\(actionText)' is not an action", hint: "use rollback, notify or log")
        }
        guard let name, let query, let threshold, let comparison, let action else { return nil }
        return Trigger(name: name, query: query, threshold: threshold, comparison: comparison, forDuration: forDuration, action: action)
    }

    /// What to write instead of a name `isValidAppName` refuses.
    static let appNameHint = "use lower-case letters, digits and dashes, starting with a letter or digit"

    /// Lower-case letters, digits and dashes, not starting with a dash, at most 63 bytes.
    public static func isValidAppName(_ name: String) -> Bool {
        guard let first = name.utf8.first, name.utf8.count <= 63 else { return false }
        let allowed = name.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 }
        return allowed && first != 45
    }

    static func isValidBranchName(_ name: String) -> Bool {
        !name.isEmpty && !name.hasPrefix("-") && !name.hasPrefix("/") && !name.hasSuffix("/") && !name.hasSuffix(".lock")
            && !name.contains("..") && !name.contains(" ") && !name.contains("~") && !name.contains("^") && !name.contains(":")
            && !name.contains("\\") && !name.contains("?") && !name.contains("*") && !name.contains("[") && !name.contains("@{")
    }
}

/// Checks and normalises repository-relative paths.
public enum RepoPath {
    /// Why `path` is not an acceptable repository-relative directory, or nil.
    public static func problem(_ path: String) -> String? {
        if path.isEmpty { return "path is empty" }
        if path.hasPrefix("/") { return "'\(path)' is an absolute path" }
        if path.contains("\\") { return "'\(path)' contains a backslash" }
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        if parts.contains("..") { return "'\(path)' contains '..'" }
        if parts.isEmpty || parts.allSatisfy({ $0 == "." }) { return "'\(path)' is the repository root" }
        if parts.first == ".git" { return "'\(path)' is inside .git" }
        return nil
    }

    /// `./apps//api/` becomes `apps/api`.
    public static func normalise(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }.joined(separator: "/")
    }
}
