import DeployModel
import FoundationEssentials
import Synchronization
import SystemSupport
import WebClient

/// What Rewind asks the engine to run: one version of one app.
public struct ContainerSpec: Sendable, Equatable {
    public var name: String
    /// An image reference the engine has (a digest reference after a pull).
    public var image: String
    /// Replaces the image's entrypoint.
    public var entrypoint: [String]?
    /// Replaces the image's default arguments.
    public var command: [String]?
    /// `volume:/path` or `/host/dir:/path:ro`.
    public var binds: [String] = []
    public var environment: [String: String] = [:]
    public var labels: [String: String] = [:]
    /// The container's port, published on 127.0.0.1:`hostPort`.
    public var port: Int?
    public var hostPort: Int?
    public var user: String?
    public var memoryBytes: Int64?
    public var nanoCPUs: Int64?
    public var stopTimeoutSeconds: Int?
    /// `host`: the container shares the host's network (no published port needed).
    public var networkMode: String?

    public init(name: String, image: String) {
        self.name = name
        self.image = image
    }

    /// The body of `POST /containers/create`.
    var body: [UInt8] {
        var config: [(String, JSON)] = [("Image", .string(image)), ("Labels", .object(labels.keys.sorted().map { ($0, .string(labels[$0] ?? "")) }))]
        if let entrypoint { config.append(("Entrypoint", .array(entrypoint.map { .string($0) }))) }
        if let command { config.append(("Cmd", .array(command.map { .string($0) }))) }
        if !environment.isEmpty { config.append(("Env", .array(environment.keys.sorted().map { .string("\($0)=\(environment[$0] ?? "")") }))) }
        if let user { config.append(("User", .string(user))) }
        if let stopTimeoutSeconds { config.append(("StopTimeout", .number(Int64(stopTimeoutSeconds)))) }
        var host: [(String, JSON)] = []
        if let port, let hostPort {
            config.append(("ExposedPorts", .object([("\(port)/tcp", .object([]))])))
            host.append(("PortBindings", .object([("\(port)/tcp", .array([.object([("HostIp", .string("127.0.0.1")), ("HostPort", .string("\(hostPort)"))])]))])))
        }
        if !binds.isEmpty { host.append(("Binds", .array(binds.map { .string($0) }))) }
        if let memoryBytes { host.append(("Memory", .number(memoryBytes))) }
        if let nanoCPUs { host.append(("NanoCpus", .number(nanoCPUs))) }
        if let networkMode { host.append(("NetworkMode", .string(networkMode))) }
        config.append(("HostConfig", .object(host)))
        return JSON.object(config).bytes(indent: nil)
    }
}

/// A container as `GET /containers/{id}/json` describes it.
public struct ContainerState: Decodable, Sendable {
    public let Id: String
    public let Name: String
    public let Image: String
    public let State: Status
    public let Config: Config
    public let HostConfig: Host?

    public struct Status: Decodable, Sendable {
        public let Running: Bool
        public let ExitCode: Int
        public let Pid: Int?
        public let StartedAt: String?
        public let Status: String?
    }

    public struct Config: Decodable, Sendable {
        public let Labels: [String: String]?
    }

    public struct Host: Decodable, Sendable {
        public let PortBindings: [String: [Binding]?]?
    }

    public struct Binding: Decodable, Sendable {
        public let HostIp: String?
        public let HostPort: String?
    }

    /// The first port published on the host.
    public var hostPort: Int? {
        HostConfig?.PortBindings?.values.compactMap { $0?.first?.HostPort.flatMap { Int($0) } }.first
    }
}

/// A container as `GET /containers/json` lists it.
public struct ContainerSummary: Decodable, Sendable {
    public let Id: String
    public let Names: [String]?
    public let Labels: [String: String]?
    public let State: String?
}

extension ContainerEngine {
    /// Pulls `reference` (which names a digest) into the engine's store,
    /// with `auth` (an `X-Registry-Auth` value) for a registry that wants
    /// credentials. The engine streams progress; an error in the stream is the pull's error.
    public func pull(_ reference: OCIReference, auth: String? = nil, timeoutMilliseconds: Int64 = 600_000) throws(EngineError) {
        guard let digest = reference.digest else { throw EngineError("\(reference) names no digest: Rewind pulls images by digest") }
        let image = "\(reference.registry)/\(reference.repository)"
        let answer = try call("POST", "/images/create?fromImage=\(HTTPEndpoint.encode(image))&tag=\(HTTPEndpoint.encode(digest))", limit: 64 << 20,
                              timeout: timeoutMilliseconds, headers: auth.map { [("X-Registry-Auth", $0)] } ?? [])
        // Progress lines, one JSON object each; `{"error": …}` or `{"errorDetail": …}` mean it failed.
        for line in answer.body.split(separator: UInt8(ascii: "\n")) {
            if let progress = try? JSONDecoder().decode(PullProgress.self, from: Data(line)), let error = progress.error ?? progress.errorDetail?.message {
                throw EngineError("the container engine could not pull \(reference): \(Bounded.text(error, limit: 300))")
            }
        }
        guard hasImage(image + "@" + digest) else {
            throw EngineError("the container engine reported pulling \(reference), but does not have it")
        }
    }

    struct PullProgress: Decodable {
        let error: String?
        let errorDetail: Detail?
        struct Detail: Decodable { let message: String? }
    }

    /// True when the engine's store has `image` (a name with a tag or digest).
    public func hasImage(_ image: String) -> Bool {
        (try? call("GET", "/images/\(Self.path(image))/json")) != nil
    }

    /// Creates a container; returns its id.
    public func create(_ spec: ContainerSpec) throws(EngineError) -> String {
        let answer = try call("POST", "/containers/create?name=\(HTTPEndpoint.encode(spec.name))", body: spec.body)
        return try decode(Created.self, answer.body, what: "POST /containers/create").Id
    }

    struct Created: Decodable { let Id: String }

    public func start(_ id: String) throws(EngineError) { _ = try call("POST", "/containers/\(Self.path(id))/start") }

    /// Sends a signal to a container's main process without waiting.
    public func signal(_ id: String, _ name: String) throws(EngineError) {
        _ = try call("POST", "/containers/\(Self.path(id))/kill?signal=\(name)")
    }

    /// Whether the engine answers at all (`GET /_ping`: cheap, unlike `/version`).
    public func ping() throws(EngineError) { _ = try call("GET", "/_ping", versioned: false, timeout: 5_000) }

    /// Stops a container (SIGTERM, then SIGKILL after `timeoutSeconds`); a stopped one is fine.
    /// Without `timeoutSeconds`, the container's own stop timeout applies.
    public func stop(_ id: String, timeoutSeconds: Int? = nil) throws(EngineError) {
        do {
            let query = timeoutSeconds.map { "?t=\($0)" } ?? ""
            _ = try call("POST", "/containers/\(Self.path(id))/stop\(query)", timeout: Int64(timeoutSeconds ?? 300) * 1000 + timeoutMilliseconds)
        } catch where error.status == 304 {
            return
        }
    }

    /// Waits until a container is no longer running; returns its exit status.
    public func wait(_ id: String, timeoutMilliseconds: Int64) throws(EngineError) -> Int {
        let answer = try call("POST", "/containers/\(Self.path(id))/wait", timeout: timeoutMilliseconds)
        return try decode(Waited.self, answer.body, what: "POST /containers/…/wait").StatusCode
    }

    struct Waited: Decodable { let StatusCode: Int }

    public func remove(_ id: String, force: Bool = false) throws(EngineError) {
        _ = try call("DELETE", "/containers/\(Self.path(id))?force=\(force)&v=false")
    }

    public func inspect(_ id: String) throws(EngineError) -> ContainerState {
        try decode(ContainerState.self, try call("GET", "/containers/\(Self.path(id))/json").body, what: "GET /containers/…/json")
    }

    /// Every container (running or not) that has label `label`.
    public func list(label: String) throws(EngineError) -> [ContainerSummary] {
        let filters = JSON.object([("label", .array([.string(label)]))]).serialised
        return try decode([ContainerSummary].self, try call("GET", "/containers/json?all=true&filters=\(HTTPEndpoint.encode(filters))").body, what: "GET /containers/json")
    }

    /// Follows `GET /events` for `die` events of containers labelled
    /// `rewind.app` since `since` (seconds), calling `died` with each id and
    /// its labels, until the stream ends or fails (at most an hour).
    public func events(since: Int64, died: @escaping @Sendable (String, [String: String]) -> Void) {
        // Only the type is filtered by the engine: Podman names the event `died` in filters and `die` in the stream,
        // and matches a label filter only with a value. The rest is checked here.
        let filters = JSON.object([("type", .array([.string("container")]))]).serialised
        let partial = Mutex<[UInt8]>([])
        _ = try? client.stream("GET", url("/events?since=\(since)&filters=\(HTTPEndpoint.encode(filters))"), headers: Self.hostHeader, limit: .max,
                               timeoutMilliseconds: 3_600_000) { buffer in
            let lines: [[UInt8]] = partial.withLock { pending in
                pending += buffer.readableBytesView
                var complete: [[UInt8]] = []
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    complete.append(Array(pending[..<newline]))
                    pending.removeSubrange(...newline)
                }
                return complete
            }
            for line in lines {
                guard let event = try? JSONDecoder().decode(Event.self, from: Data(line)), (event.status ?? event.Action) == "die",
                      let labels = event.Actor?.Attributes, labels["rewind.app"] != nil, let id = event.id ?? event.Actor?.ID else { continue }
                died(id, labels)
            }
        }
    }

    /// Follows a container's output (`GET /containers/{id}/logs?follow`)
    /// since `since` (seconds), handing each piece of stdout and stderr to
    /// `output`, until the container ends or the stream fails.
    public func followLogs(_ id: String, since: Int64, output: @escaping @Sendable ([UInt8]) -> Void) {
        let frames = Mutex<[UInt8]>([])
        _ = try? client.stream("GET", url("/containers/\(Self.path(id))/logs?follow=true&stdout=true&stderr=true&since=\(since)"), headers: Self.hostHeader,
                               limit: .max, timeoutMilliseconds: 24 * 3_600_000) { buffer in
            let payloads = frames.withLock { pending in
                pending += buffer.readableBytesView
                return Self.demultiplex(&pending)
            }
            for payload in payloads where !payload.isEmpty { output(payload) }
        }
    }

    /// The last `lines` lines a container wrote (stdout and stderr), as text.
    public func lastOutput(_ id: String, lines: Int) -> String {
        guard var frames = try? call("GET", "/containers/\(Self.path(id))/logs?stdout=true&stderr=true&tail=\(lines)", limit: 1 << 20).body else { return "" }
        let text = Self.demultiplex(&frames).map { String(decoding: $0, as: UTF8.self) }.joined()
        return text.split(separator: "\n").suffix(lines).joined(separator: " | ")
    }

    /// Takes the complete frames off `pending`: without a terminal, the
    /// engine sends each write as an 8-byte header (stream, 0, 0, 0, length
    /// as 4 bytes big-endian) and the bytes.
    static func demultiplex(_ pending: inout [UInt8]) -> [[UInt8]] {
        var payloads: [[UInt8]] = []
        var offset = 0
        while pending.count - offset >= 8 {
            let length = pending[(offset + 4)..<(offset + 8)].reduce(0) { $0 << 8 | Int($1) }
            guard pending.count - offset - 8 >= length else { break }
            payloads.append(Array(pending[(offset + 8)..<(offset + 8 + length)]))
            offset += 8 + length
        }
        pending.removeFirst(offset)
        return payloads
    }

    struct Event: Decodable {
        let id: String?
        let status: String?
        let Action: String?
        let Actor: ActorInfo?
        struct ActorInfo: Decodable {
            let ID: String?
            let Attributes: [String: String]?
        }
    }

    /// A path segment: ids and names are hexadecimal or `[a-zA-Z0-9_.-]`; image references keep `/` and `:` and `@`.
    static func path(_ text: String) -> String {
        HTTPEndpoint.encode(text).replacing("%2F", with: "/").replacing("%3A", with: ":").replacing("%40", with: "@")
    }
}
