
/// The platforms an app can run on.
public enum Platform: String, Sendable, Codable, CaseIterable {
    case process, exec, container

    /// Rewind keeps what it started running: it watches it, restarts it with
    /// backoff and counts crash loops (processes and containers; exec apps
    /// are the user's commands).
    public var isSupervised: Bool { self != .exec }
}

/// Settings of the `process` platform: Rewind runs and supervises the process.
public struct ProcessSettings: Sendable, Equatable, Codable {
    public var command: String
    public var args: [String] = []
    public var env: [String: String] = [:]
    /// A fixed port, or nil to let Rewind assign one.
    public var port: Int?
    public var workingDirectory: String?
}

/// Settings of the `exec` platform: the user's own commands.
public struct ExecSettings: Sendable, Equatable, Codable {
    public var apply: [String]
    public var observe: [String]?
    public var health: [String]?
    public var timeout: Duration = Duration(milliseconds: 300_000)
}

/// How to tell that an app is healthy.
public struct HealthCheck: Sendable, Equatable, Codable {
    /// An HTTP path checked on the app's port (expects 2xx).
    public var http: String?
    /// A command that exits 0 when healthy.
    public var command: [String]?
    public var timeout: Duration = Duration(milliseconds: 60_000)
    public var interval: Duration = Duration(milliseconds: 1_000)
}

/// A database or data migration that a version carries.
public struct Migration: Sendable, Equatable, Codable {
    public var id: String
    /// False for a migration that cannot be undone (dropped columns, rewritten data).
    public var reversible: Bool
    /// The command that reverses it, run by a rollback across it (newest first).
    public var down: [String]? = nil
}

/// Commands run around a rollback of the app (`hooks:`).
public struct RollbackHooks: Sendable, Equatable, Codable {
    /// Runs first, before traffic is drained; a failure stops the rollback.
    public var preRollback: [String]?
    /// Runs last, once the old version serves again.
    public var postRollback: [String]?

    public var isEmpty: Bool { preRollback == nil && postRollback == nil }
}

/// How a new version of a `process` app takes traffic (`traffic:`): behind
/// an HAProxy that listens on the app's fixed address.
public struct TrafficSettings: Sendable, Equatable, Codable {
    public enum Strategy: String, Sendable, Codable, CaseIterable { case blueGreen, canary }

    /// Where clients connect: a port on 127.0.0.1.
    public var listenPort: Int
    public var strategy: Strategy
    /// Canary weights in percent, increasing, ending at 100.
    public var steps: [Int] = []
    /// How long each canary step is held and analysed.
    public var interval: Duration = Duration(milliseconds: 60_000)
    /// Blue-green: how long the old version stays warm after the switch.
    public var scaleDownDelay: Duration = Duration(milliseconds: 30_000)
    /// Failed health probes in a row of the new version that abort a rollout
    /// (one blip is noise; a crash aborts at once).
    public var failureLimit = 2
    /// Step-level queries, evaluated at every step besides policy.triggers
    /// (`$app` and `$version` are substituted).
    public var analysis: [Trigger] = []
    /// An existing HAProxy to drive instead of one Rewind starts: its
    /// admin socket and the backend of this app.
    public var proxySocket: String?
    public var proxyBackend: String?

    /// A name HAProxy takes for a backend or server: letters, digits, `-`, `_` and `.`, at most 64.
    public static func isProxyName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy { (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || $0 == 45 || $0 == 95 || $0 == 46 }
    }
}

/// `app.yaml`: one app's desired state.
public struct AppSpec: Sendable, Equatable, Codable {
    public static let fileName = "app.yaml"
    /// The largest `app.yaml` Rewind reads.
    public static let maxBytes = 1 << 20

    public var platform: Platform
    public var version: String
    public var process: ProcessSettings?
    public var exec: ExecSettings?
    public var health: HealthCheck?
    public var artifact: Artifact?
    /// Every migration this version has applied, oldest first (cumulative).
    public var migrations: [Migration]
    public var traffic: TrafficSettings? = nil
    public var hooks: RollbackHooks? = nil
    /// New versions of the OCI artifact, proposed as commits by `serve`.
    public var updates: UpdatePolicy? = nil
    /// The `container` platform's image and settings.
    public var container: ContainerSettings? = nil

    /// The migrations this version has that `target` does not: the ones a
    /// rollback to `target` undoes, newest first.
    public func migrationsUndone(goingTo target: AppSpec) -> [Migration] {
        let kept = Set(target.migrations.map(\.id))
        return migrations.filter { !kept.contains($0.id) }.reversed()
    }

    /// Ids of the migrations that cannot be undone.
    public var irreversibleMigrations: Set<String> {
        Set(migrations.filter { !$0.reversible }.map(\.id))
    }

    /// Parses and validates `app.yaml`.
    public static func parse(_ text: String, file: String) -> (spec: AppSpec?, diagnostics: [Diagnostic]) {
        let reader = YAMLReader(file: file)
        guard let root = reader.compose(text), let map = reader.mapping(root, field: "") else {
            return (nil, reader.diagnostics)
        }
        reader.warnUnknown(map, known: ["platform", "version", "process", "exec", "container", "health", "artifact", "migrations", "traffic", "hooks", "updates", "demo"], parent: "")
        let platformText = reader.string(map, "platform", parent: "", required: true)
        let platform = platformText.flatMap(Platform.init(rawValue:))
        if let platformText, platform == nil {
            reader.error(reader.value(map, "platform", parent: ""), field: "platform", "unknown platform '\(platformText)'", hint: "use one of: \(Platform.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let version = reader.string(map, "version", parent: "", required: true)
        let process = parseProcess(reader, map, required: platform == .process)
        let exec = parseExec(reader, map, required: platform == .exec)
        let container = parseContainer(reader, map, required: platform == .container)
        let health = parseHealth(reader, map)
        let artifact = parseArtifact(reader, map)
        let migrations = parseMigrations(reader, map)
        let traffic = parseTraffic(reader, map, platform: platform, process: process)
        let hooks = parseHooks(reader, map)
        let updates = parseUpdates(reader, map, artifact: artifact)
        guard let platform, let version, !reader.diagnostics.contains(where: { $0.severity == .error }) else {
            return (nil, reader.diagnostics)
        }
        var spec = AppSpec(platform: platform, version: version, process: process, exec: exec, health: health, artifact: artifact, migrations: migrations,
                           traffic: traffic, hooks: hooks, updates: updates)
        spec.container = container
        return (spec, reader.diagnostics)
    }

    private static func parseProcess(_ reader: YAMLReader, _ map: Node.Mapping, required: Bool) -> ProcessSettings? {
        guard let node = reader.value(map, "process", parent: "", required: required), let p = reader.mapping(node, field: "process") else { return nil }
        reader.warnUnknown(p, known: ["command", "args", "env", "port", "workingDirectory"], parent: "process")
        let command = reader.string(p, "command", parent: "process", required: true)
        let args = reader.stringList(p, "args", parent: "process") ?? []
        let env = reader.stringMap(p, "env", parent: "process") ?? [:]
        let port = reader.int(p, "port", parent: "process", range: 1...65535)
        let workingDirectory = reader.string(p, "workingDirectory", parent: "process")
        if let workingDirectory, RelativePath.leaves(workingDirectory) {
            reader.error(reader.value(p, "workingDirectory", parent: "process"), field: "process.workingDirectory",
                         "'\(workingDirectory)' leaves the app's files", hint: "name a directory inside the app directory, such as bin or .")
        }
        if let command { checkProgram(reader, reader.value(p, "command", parent: "process"), command, field: "process.command") }
        guard let command else { return nil }
        return ProcessSettings(command: command, args: args, env: env, port: port, workingDirectory: workingDirectory)
    }

    private static func parseExec(_ reader: YAMLReader, _ map: Node.Mapping, required: Bool) -> ExecSettings? {
        guard let node = reader.value(map, "exec", parent: "", required: required), let e = reader.mapping(node, field: "exec") else { return nil }
        reader.warnUnknown(e, known: ["apply", "observe", "health", "timeout"], parent: "exec")
        let apply = commandList(reader, e, "apply", parent: "exec", required: true)
        var settings = ExecSettings(apply: apply ?? [])
        settings.observe = commandList(reader, e, "observe", parent: "exec", required: false)
        settings.health = commandList(reader, e, "health", parent: "exec", required: false)
        if let timeout = reader.duration(e, "timeout", parent: "exec") { settings.timeout = timeout }
        return apply == nil ? nil : settings
    }

    /// A command given as a list (argv) or as one string (run by /bin/sh -c).
    private static func commandList(_ reader: YAMLReader, _ map: Node.Mapping, _ key: String, parent: String, required: Bool) -> [String]? {
        guard let node = reader.value(map, key, parent: parent, required: required) else { return nil }
        if case .scalar(let scalar) = node {
            return ["/bin/sh", "-c", scalar.string]
        }
        let list = reader.stringList(map, key, parent: parent)
        if let list, list.isEmpty {
            reader.error(node, field: reader.join(parent, key), "command must not be empty")
            return nil
        }
        if let program = list?.first { checkProgram(reader, node, program, field: reader.join(parent, key)) }
        return list
    }

    /// A program is a name looked up on PATH, an absolute path, or a path
    /// inside the app's files; `../` out of them is refused, because what it
    /// reaches depends on where the files are deployed.
    private static func checkProgram(_ reader: YAMLReader, _ node: Node?, _ program: String, field: String) {
        guard program.contains("/"), !program.hasPrefix("/"), RelativePath.leaves(program) else { return }
        reader.error(node, field: field, "program '\(program)' leaves the app's files",
                     hint: "put the program in the app directory (./bin/tool), name it on PATH, or give its absolute path")
    }

    private static func parseHealth(_ reader: YAMLReader, _ map: Node.Mapping) -> HealthCheck? {
        guard let node = reader.value(map, "health", parent: ""), let h = reader.mapping(node, field: "health") else { return nil }
        reader.warnUnknown(h, known: ["http", "command", "timeout", "interval"], parent: "health")
        var check = HealthCheck()
        check.http = reader.string(h, "http", parent: "health")
        if let http = check.http, !http.hasPrefix("/") {
            reader.error(reader.value(h, "http", parent: "health"), field: "health.http", "'\(http)' is not a path", hint: "write a path such as /health")
        }
        check.command = commandList(reader, h, "command", parent: "health", required: false)
        if let timeout = reader.duration(h, "timeout", parent: "health") { check.timeout = timeout }
        if let interval = reader.duration(h, "interval", parent: "health") { check.interval = interval }
        return check
    }

    /// `artifact:` is a path (a string, or `path:`), a download (`url:`
    /// with its `sha256:`), or an OCI artifact (`oci:` pinned by digest).
    private static func parseArtifact(_ reader: YAMLReader, _ map: Node.Mapping) -> Artifact? {
        guard let node = reader.value(map, "artifact", parent: "") else { return nil }
        if case .scalar(let scalar) = node { return checkedPath(reader, node, scalar.string, sha256: nil) }
        guard let a = reader.mapping(node, field: "artifact") else { return nil }
        reader.warnUnknown(a, known: ["path", "url", "oci", "sha256"], parent: "artifact")
        let sha = reader.string(a, "sha256", parent: "artifact")
        if let sha, !Artifact.isSHA256(sha) {
            reader.error(reader.value(a, "sha256", parent: "artifact"), field: "artifact.sha256", "expected 64 lower-case hex digits",
                         hint: "`sha256sum FILE` prints it")
        }
        let kinds = ["path", "url", "oci"].filter { reader.value(a, $0, parent: "artifact") != nil }
        guard kinds.count == 1, let kind = kinds.first, let text = reader.string(a, kind, parent: "artifact", required: true) else {
            reader.error(node, field: "artifact", kinds.isEmpty ? "artifact names nothing" : "artifact has \(kinds.joined(separator: " and ")); give exactly one",
                         hint: "use path: FILE, url: https://… with sha256:, or oci: REGISTRY/REPOSITORY:TAG@sha256:DIGEST")
            return nil
        }
        let field = reader.value(a, kind, parent: "artifact")
        switch kind {
        case "url":
            guard text.hasPrefix("https://") || text.hasPrefix("http://"), text.count > 8 else {
                reader.error(field, field: "artifact.url", "'\(text)' is not an http:// or https:// URL")
                return nil
            }
            guard sha != nil else {
                reader.error(node, field: "artifact.sha256", "a download needs its sha256: nothing unchecked is deployed", hint: "add sha256: with the file's `sha256sum`")
                return nil
            }
            return Artifact(.url(text), sha256: sha)
        case "oci":
            switch OCIReference.parse(text) {
            case .failure(let error):
                reader.error(field, field: "artifact.oci", error.message, hint: error.hint)
                return nil
            case .success(let reference):
                guard reference.digest != nil else {
                    reader.error(field, field: "artifact.oci", "'\(text)' names a tag but no digest: a tag can move, so Rewind deploys only digests",
                                 hint: "pin it: append @sha256:DIGEST (`skopeo inspect --format '{{.Digest}}' docker://\(reference)` prints it)")
                    return nil
                }
                if sha != nil {
                    reader.error(reader.value(a, "sha256", parent: "artifact"), field: "artifact.sha256", "an OCI artifact is checked by the digest in its reference",
                                 hint: "remove sha256:")
                    return nil
                }
                return Artifact(.oci(reference))
            }
        default:
            return checkedPath(reader, field ?? node, text, sha256: sha)
        }
    }

    private static func checkedPath(_ reader: YAMLReader, _ node: Node, _ path: String, sha256: String?) -> Artifact? {
        if path.isEmpty || (path.contains("://") && !path.hasPrefix("file://")) {
            reader.error(node, field: "artifact", "'\(path)' is not a file path", hint: "use an absolute path, a file:// URL, or a path relative to artifactRoot; a download is url: with sha256:")
            return nil
        }
        return Artifact(.path(path), sha256: sha256)
    }

    private static func parseMigrations(_ reader: YAMLReader, _ map: Node.Mapping) -> [Migration] {
        guard let node = reader.value(map, "migrations", parent: "") else { return [] }
        guard case .sequence(let list) = node else {
            reader.error(node, field: "migrations", "expected a list of {id, reversible}")
            return []
        }
        var result: [Migration] = []
        for (i, item) in list.enumerated() {
            let field = "migrations[\(i)]"
            guard let m = reader.mapping(item, field: field) else { continue }
            reader.warnUnknown(m, known: ["id", "reversible", "down"], parent: field)
            guard let id = reader.string(m, "id", parent: field, required: true) else { continue }
            let reversible = reader.bool(m, "reversible", parent: field) ?? true
            let down = commandList(reader, m, "down", parent: field, required: false)
            if down != nil && !reversible {
                reader.error(reader.value(m, "down", parent: field), field: "\(field).down", "migration '\(id)' is irreversible but has a down command",
                             hint: "remove down, or set reversible: true if the command really undoes it")
            }
            result.append(Migration(id: id, reversible: reversible, down: down))
        }
        return result
    }

    private static func parseHooks(_ reader: YAMLReader, _ map: Node.Mapping) -> RollbackHooks? {
        guard let node = reader.value(map, "hooks", parent: ""), let h = reader.mapping(node, field: "hooks") else { return nil }
        reader.warnUnknown(h, known: ["preRollback", "postRollback"], parent: "hooks")
        let hooks = RollbackHooks(preRollback: commandList(reader, h, "preRollback", parent: "hooks", required: false),
                                  postRollback: commandList(reader, h, "postRollback", parent: "hooks", required: false))
        return hooks.isEmpty ? nil : hooks
    }

    /// The top-level `version:` of an app.yaml without composing the whole
    /// document: the fast path for listing thousands of releases. Nil when the
    /// line is absent or quoted in a way this scan does not handle.
    public static func quickVersion(_ bytes: [UInt8]) -> String? {
        let key = Array("version:".utf8)
        var lineStart = 0
        while lineStart < bytes.count {
            var lineEnd = lineStart
            while lineEnd < bytes.count && bytes[lineEnd] != 10 { lineEnd += 1 }
            // A flow collection at the top reads lines differently: leave it to the parser.
            if bytes[lineStart] == UInt8(ascii: "{") || bytes[lineStart] == UInt8(ascii: "[") { return nil }
            // `version:` then a space: `version:x: 1` is another key (a colon ends a key only before a space).
            if lineEnd - lineStart > key.count && bytes[lineStart..<(lineStart + key.count)].elementsEqual(key) && bytes[lineStart + key.count] == UInt8(ascii: " ") {
                let raw = bytes[(lineStart + key.count)..<lineEnd]
                // Only plain ASCII: tabs, control characters and other
                // whitespace are where a quick scan and YAML could differ.
                guard raw.allSatisfy({ ($0 >= 0x20 && $0 < 0x7f) || $0 == 13 }) else { return nil }
                // An indented next line continues the value (or comments it): the parser decides.
                if lineEnd + 1 < bytes.count, bytes[lineEnd + 1] == UInt8(ascii: " ") || bytes[lineEnd + 1] == 9 { return nil }
                var value = String(decoding: raw, as: UTF8.self)
                if let hash = value.firstRange(of: " #") { value = String(value[..<hash.lowerBound]) }
                value = value.trimmingSpaces
                guard let first = value.first, !"&*!|>[]{}%@`,#?:-".contains(first) else { return nil }
                if first == "\"" || first == "'" {
                    guard value.count >= 2, value.last == first else { return nil }
                    value = String(value.dropFirst().dropLast())
                    if value.contains("\\") || value.contains(first) { return nil }
                }
                return value.isEmpty ? nil : value
            }
            lineStart = lineEnd + 1
        }
        return nil
    }
}
