import DeployModel
import FoundationEssentials
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Errors of the proxy: what failed, in words, with the socket or the
/// command it was about.
public struct TrafficError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// HAProxy's runtime API on its unix socket (`stats socket PATH level
/// admin`): dynamic servers and weights, no reload. One command per
/// connection, as `socat` sends them.
public struct HAProxyRuntime: Sendable {
    public let socket: String
    public var timeoutMilliseconds: Int64 = 2_000

    public init(socket: String) { self.socket = socket }

    /// What a server is to HAProxy (`show servers state`).
    public struct Server: Sendable, Equatable {
        public let name: String
        public let address: String
        public let port: Int
        /// The weight an operator (Rewind) set.
        public let weight: Int
        /// 0 stopped, 1 starting, 2 running, 3 stopping (HAProxy's srv_op_state).
        public let operationalState: Int
        /// A bit set: 1 forced maintenance, 8 forced drain, ... (srv_admin_state).
        public let adminState: Int

        public var inMaintenance: Bool { adminState & 0x01 != 0 || adminState & 0x20 != 0 }
        public var draining: Bool { adminState & 0x08 != 0 }
    }

    public enum State: String, Sendable {
        case ready, drain, maint
    }

    /// Sends one command; HAProxy's answer. Throws when the socket refuses.
    @discardableResult
    public func command(_ line: String) throws(TrafficError) -> String {
        guard !line.contains("\n"), !line.contains(";") else { throw TrafficError("refusing a proxy command with a newline or ';': \(Bounded.text(line, limit: 80))") }
        return try exchange(line + "\n")
    }

    /// A command that changes something: HAProxy answers nothing, or one of
    /// its success lines; anything else is its error message.
    func change(_ line: String) throws(TrafficError) {
        let text = try command(line).trimmingCharacters()
        guard text.isEmpty || ["New server registered.", "Server deleted."].contains(text) else {
            throw TrafficError("the proxy at \(socket) refused '\(line)': \(Bounded.text(text, limit: 300))")
        }
    }

    /// Adds a server to `backend` at `address:port` with `weight`, and
    /// enables it (HAProxy adds servers in maintenance).
    public func addServer(backend: String, name: String, address: String, port: Int, weight: Int) throws(TrafficError) {
        try Self.checkName(backend, "backend")
        try Self.checkName(name, "server")
        try change("add server \(backend)/\(name) \(address):\(port) weight \(weight)")
        try change("enable server \(backend)/\(name)")
    }

    /// Sets the weight (0 to 256): 0 sends it no new requests.
    public func setWeight(backend: String, server: String, weight: Int) throws(TrafficError) {
        guard (0...256).contains(weight) else { throw TrafficError("weight \(weight) of \(server) is not between 0 and 256") }
        try change("set server \(backend)/\(server) weight \(weight)")
    }

    /// ready, drain (no new connections; those open finish) or maint.
    public func setState(backend: String, server: String, _ state: State) throws(TrafficError) {
        try change("set server \(backend)/\(server) state \(state.rawValue)")
    }

    /// Removes a server: put in maintenance first, as HAProxy requires.
    public func deleteServer(backend: String, server: String) throws(TrafficError) {
        try setState(backend: backend, server: server, .maint)
        try change("del server \(backend)/\(server)")
    }

    /// The servers of `backend`.
    public func servers(backend: String) throws(TrafficError) -> [Server] {
        try Self.checkName(backend, "backend")
        return Self.parseServersState(try command("show servers state \(backend)"))
    }

    /// Parses `show servers state`: a version line, a `#` header naming the
    /// columns, then one line per server.
    static func parseServersState(_ text: String) -> [Server] {
        var columns: [String] = []
        var servers: [Server] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            if line.hasPrefix("#") { columns = Array(fields.dropFirst()); continue }
            guard !columns.isEmpty, fields.count >= columns.count else { continue }
            func field(_ name: String) -> String? { columns.firstIndex(of: name).map { fields[$0] } }
            guard let name = field("srv_name"), let address = field("srv_addr") else { continue }
            servers.append(Server(name: name, address: address, port: field("srv_port").flatMap { Int($0) } ?? 0, weight: field("srv_uweight").flatMap { Int($0) } ?? 0,
                                  operationalState: field("srv_op_state").flatMap { Int($0) } ?? 0, adminState: field("srv_admin_state").flatMap { Int($0) } ?? 0))
        }
        return servers
    }

    static func checkName(_ name: String, _ what: String) throws(TrafficError) {
        guard TrafficSettings.isProxyName(name) else {
            throw TrafficError("\(what) name '\(Bounded.text(name, limit: 64))' is not valid for the proxy (letters, digits, - _ .)")
        }
    }

    private func exchange(_ request: String) throws(TrafficError) -> String {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TrafficError("cannot create a socket for the proxy") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(socket.utf8)
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else { throw TrafficError("the proxy socket path \(socket) is too long") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.enumerated() { raw[i] = byte }
            raw[path.count] = 0
        }
        var timeout = timeval(tv_sec: Int(timeoutMilliseconds / 1000), tv_usec: Int((timeoutMilliseconds % 1000) * 1000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw TrafficError("the proxy socket \(socket) refuses connections (\(String(cString: strerror(errno))))") }
        guard FileIO.writeAll(fd, Array(request.utf8)[...]) else { throw TrafficError("cannot write to the proxy socket \(socket)") }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while answer.count < 16 << 20 {
            let n = read(fd, &buffer, buffer.count)
            if n == 0 { break }
            guard n > 0 else { throw TrafficError("no answer from the proxy socket \(socket) within \(timeoutMilliseconds) ms") }
            answer += buffer[0..<n]
        }
        // HAProxy answers every command with at least a newline: nothing at
        // all is a proxy that hung up (restarting, or not HAProxy).
        guard !answer.isEmpty else { throw TrafficError("the proxy socket \(socket) closed the connection without answering") }
        return String(decoding: answer, as: UTF8.self)
    }
}

/// What a sync did: the commands sent, and the servers that are out of
/// traffic (in maintenance) but could not be removed yet because requests
/// were still in flight on them (`del server` refuses then): a later sync
/// removes them.
public struct SyncResult: Sendable, Equatable {
    public var changes = 0
    public var leaving: [String] = []

    public init(changes: Int = 0, leaving: [String] = []) {
        self.changes = changes
        self.leaving = leaving
    }
}

/// A proxy's servers brought in line with what one backend should route:
/// servers added, re-weighted, drained and removed until HAProxy routes
/// what `wanted` says.
extension HAProxyRuntime {
    /// The order `sync` changes the wanted servers in: those that gain
    /// first (new ones, higher weights), then those that lose, so that at no
    /// moment does the backend have fewer servers taking requests.
    static func syncOrder(_ wanted: [String: TrafficState.Server], running: [String: Server]) -> [String] {
        func gains(_ name: String, _ server: TrafficState.Server) -> Bool {
            guard let current = running[name] else { return true }
            return server.weight >= current.weight && !server.draining
        }
        return wanted.sorted { a, b in
            let (ga, gb) = (gains(a.key, a.value), gains(b.key, b.value))
            return ga != gb ? ga : a.key < b.key
        }.map(\.key)
    }

    @discardableResult
    public func sync(backend: String, to wanted: [String: TrafficState.Server]) throws(TrafficError) -> SyncResult {
        let running = Dictionary(try servers(backend: backend).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var result = SyncResult()
        for name in Self.syncOrder(wanted, running: running) {
            guard let server = wanted[name] else { continue }
            guard let current = running[name] else {
                try addServer(backend: backend, name: name, address: server.address, port: server.port, weight: server.weight)
                if server.draining { try setState(backend: backend, server: name, .drain) }
                result.changes += 1
                continue
            }
            if current.weight != server.weight { try setWeight(backend: backend, server: name, weight: server.weight); result.changes += 1 }
            if current.draining != server.draining || current.inMaintenance { try setState(backend: backend, server: name, server.draining ? .drain : .ready); result.changes += 1 }
        }
        for name in running.keys.sorted() where wanted[name] == nil {
            if running[name]?.inMaintenance != true {
                try setState(backend: backend, server: name, .maint)
                result.changes += 1
            }
            do {
                try change("del server \(backend)/\(name)")
                result.changes += 1
            } catch {
                // Requests still in flight: it gets nothing new, and goes on a later sync.
                result.leaving.append(name)
            }
        }
        return result
    }
}

