import DeployModel
import FoundationEssentials
import SystemSupport
import WebClient

/// Why the container engine refused or could not be reached, in words that
/// say what to do.
public struct EngineError: Error, CustomStringConvertible, Sendable {
    public let description: String
    /// The engine's HTTP status, when it answered.
    public let status: Int?
    /// The call's deadline passed before the engine answered.
    public let timedOut: Bool
    /// No engine answered: the socket is missing, refuses, or the call failed on the way.
    public let unreachable: Bool
    init(_ description: String, status: Int? = nil, timedOut: Bool = false, unreachable: Bool = false) {
        self.description = description
        self.status = status
        self.timedOut = timedOut
        self.unreachable = unreachable
    }
}

/// The Docker Engine API over a unix socket: dockerd, or Podman's
/// compatible service (`podman system service`). Rewind speaks API version
/// 1.41, which dockerd 20.10 and later and Podman 4 accept. Synchronous:
/// the reconciler's thread waits for each answer.
public final class ContainerEngine: Sendable {
    /// The API version of every request.
    public static let apiVersion = "1.41"
    /// Where engines listen unless `--container-socket` says otherwise: Docker's socket, then Podman's.
    public static let defaultSockets = ["/var/run/docker.sock", "/run/podman/podman.sock"]

    public let socket: String
    /// A socket has no host name, and Go's HTTP server wants one (Docker's client says "docker").
    static let hostHeader = [("Host", "docker")]
    let client: WebClient
    /// How long one call may take (a pull has its own, longer deadline).
    let timeoutMilliseconds: Int64

    public init(socket: String, timeoutMilliseconds: Int64 = 30_000) throws(EngineError) {
        self.socket = socket
        self.timeoutMilliseconds = timeoutMilliseconds
        do {
            // Events, logs, wait and stop may be quiet for minutes: each call has a deadline instead of a read timeout.
            client = try WebClient.shared(quiet: true)
        } catch {
            throw EngineError("cannot make an HTTP client: \(error)")
        }
    }

    /// The first of `defaultSockets` that exists.
    public static func defaultSocket() -> String? { defaultSockets.first { FileIO.exists($0) } }

    /// `http+unix://` with the socket's path encoded as the host.
    func url(_ path: String, versioned: Bool = true) -> String {
        let host = HTTPEndpoint.encode(socket)
        return "http+unix://\(host)" + (versioned ? "/v\(Self.apiVersion)" : "") + path
    }

    /// One call; a refusal's message comes from the engine's `{"message": …}`.
    func call(_ method: String, _ path: String, body: [UInt8]? = nil, versioned: Bool = true, limit: Int = 8 << 20,
              timeout: Int64? = nil, headers: [(String, String)] = []) throws(EngineError) -> (status: Int, body: [UInt8]) {
        guard FileIO.exists(socket) else {
            throw EngineError("no container engine at \(socket): start dockerd or `podman system service`, or pass --container-socket", unreachable: true)
        }
        let answer: WebAnswer
        let began = Clock.monotonicMilliseconds()
        let deadline = timeout ?? timeoutMilliseconds
        do {
            answer = try client.exchange(method, url(path, versioned: versioned), headers: Self.hostHeader + headers, body: body, limit: limit,
                                         timeoutMilliseconds: deadline)
        } catch {
            throw EngineError("the container engine at \(socket) did not answer \(method) \(path.prefix { $0 != "?" }): \(error)",
                              timedOut: Clock.monotonicMilliseconds() - began >= deadline, unreachable: true)
        }
        guard (200..<300).contains(answer.status) else {
            let message = (try? JSONDecoder().decode(EngineMessage.self, from: Data(answer.body)))?.message
                ?? String(decoding: answer.body.prefix(300), as: UTF8.self)
            throw EngineError("the container engine refused \(method) \(path.prefix { $0 != "?" }) (\(answer.status)): \(Bounded.text(message, limit: 300))", status: answer.status)
        }
        return (answer.status, answer.body)
    }

    func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], what: String) throws(EngineError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw EngineError("the container engine at \(socket) answered \(what) with something Rewind cannot read: \(error)")
        }
    }

    struct EngineMessage: Decodable {
        let message: String
    }
}

/// What `GET /version` says.
public struct EngineVersion: Decodable, Sendable {
    public let Version: String
    public let ApiVersion: String
    public let MinAPIVersion: String?
    public let Components: [Component]?

    public struct Component: Decodable, Sendable {
        public let Name: String
    }

    /// "Podman Engine" or "Docker Engine", as the engine names itself.
    public var name: String {
        Components?.first { $0.Name.hasSuffix("Engine") }?.Name ?? "container engine"
    }
}

extension ContainerEngine {
    /// The engine's version; an engine whose API range does not hold 1.41 is
    /// refused, naming both.
    public func version() throws(EngineError) -> EngineVersion {
        let answer = try call("GET", "/version", versioned: false)
        let version = try decode(EngineVersion.self, answer.body, what: "GET /version")
        guard Self.accepts(min: version.MinAPIVersion ?? "1.12", max: version.ApiVersion) else {
            throw EngineError("\(version.name) \(version.Version) at \(socket) speaks API \(version.MinAPIVersion ?? "?") to \(version.ApiVersion); "
                              + "Rewind speaks \(Self.apiVersion): use dockerd 20.10 or later, or Podman 4 or later")
        }
        return version
    }

    /// True when `min` ≤ 1.41 ≤ `max` (versions compare part by part).
    static func accepts(min: String, max: String) -> Bool {
        func parts(_ text: String) -> [Int] { text.split(separator: ".").map { Int($0) ?? 0 } }
        let ours = parts(apiVersion)
        return !ours.lexicographicallyPrecedes(parts(min)) && !parts(max).lexicographicallyPrecedes(ours)
    }
}

/// What tests check of the version rule without an engine.
public enum ContainerEngineTestHooks {
    public static func accepts(min: String, max: String) -> Bool { ContainerEngine.accepts(min: min, max: max) }
}

extension ContainerEngineTestHooks {
    public static func demultiplex(_ pending: inout [UInt8]) -> [[UInt8]] { ContainerEngine.demultiplex(&pending) }
}
