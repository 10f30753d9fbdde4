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

/// An HAProxy that Rewind starts and supervises: its configuration is
/// generated into a directory of the state, one frontend per app on the
/// app's fixed `listen` port and an empty backend that versions join as
/// dynamic servers.
public struct HAProxyConfig: Sendable {
    public struct Frontend: Sendable {
        public let app: String
        public let listenPort: Int
        public init(app: String, listenPort: Int) {
            self.app = app
            self.listenPort = listenPort
        }
    }

    public let directory: String
    public var frontends: [Frontend]

    public init(directory: String, frontends: [Frontend]) {
        self.directory = directory
        self.frontends = frontends
    }

    public var socket: String { directory + "/haproxy.sock" }
    public var file: String { directory + "/haproxy.cfg" }

    /// The configuration: the admin socket, HTTP mode, and per app a
    /// frontend on 127.0.0.1:listen and a round-robin backend without
    /// static servers.
    public var text: String {
        var out = """
        # Generated by Rewind; rewritten on start. Servers come and go through the runtime API.
        global
            stats socket \(socket) mode 600 level admin
            stats timeout 10s
            pidfile \(directory)/haproxy.pid

        defaults
            mode http
            timeout connect 2s
            timeout client 30s
            timeout server 30s
            option redispatch
            retries 2

        """
        for f in frontends {
            out += """

            frontend \(f.app)
                bind 127.0.0.1:\(f.listenPort)
                default_backend \(f.app)

            backend \(f.app)
                balance roundrobin

            """
        }
        return out
    }

    /// Writes the configuration and checks it with `haproxy -c`.
    public func write(haproxy: String = "haproxy") throws(TrafficError) {
        for f in frontends { try HAProxyRuntime.checkName(f.app, "app") }
        FileIO.makeDirectory(directory)
        guard FileIO.writeAtomically(file, text: text) else { throw TrafficError("cannot write the proxy configuration \(file)") }
        guard let program = Spawn.resolve(haproxy, searchPath: [], environment: Spawn.currentEnvironment()) else {
            throw TrafficError("the '\(haproxy)' program is not installed (apt-get install haproxy)")
        }
        let check = try? Spawn.run(SpawnOptions(program: program, arguments: ["-c", "-q", "-f", file], environment: Spawn.currentEnvironment(), outputFile: directory + "/haproxy-check.log"),
                                   timeoutMilliseconds: 10_000)
        guard check?.succeeded == true else {
            throw TrafficError("haproxy refuses the generated configuration \(file): \(FileIO.tail(directory + "/haproxy-check.log", maxBytes: 500))")
        }
    }

    /// Starts HAProxy in the foreground (`-db`) as a child; its pid.
    public func start(haproxy: String = "haproxy") throws(TrafficError) -> Int32 {
        for f in frontends where Loopback.canConnect(port: f.listenPort) {
            throw TrafficError("traffic.listen 127.0.0.1:\(f.listenPort) of \(f.app) is in use by another program: the proxy cannot listen there; nothing was changed")
        }
        try write(haproxy: haproxy)
        guard let program = Spawn.resolve(haproxy, searchPath: [], environment: Spawn.currentEnvironment()) else {
            throw TrafficError("the '\(haproxy)' program is not installed (apt-get install haproxy)")
        }
        unlink(socket)
        let pid: Int32
        do {
            pid = try Spawn.start(SpawnOptions(program: program, arguments: ["-db", "-f", file], environment: Spawn.currentEnvironment(), outputFile: directory + "/haproxy.log"))
        } catch {
            throw TrafficError("cannot start haproxy: \(error)")
        }
        let deadline = Clock.monotonicMilliseconds() + 5_000
        while Clock.monotonicMilliseconds() < deadline {
            if (try? HAProxyRuntime(socket: socket).command("show info")) != nil { return pid }
            if Spawn.poll(pid) != nil { break }
            Clock.sleep(milliseconds: 20)
        }
        _ = Spawn.stop(pid, graceMilliseconds: 1_000)
        throw TrafficError("haproxy did not open its socket \(socket) within 5 s: \(FileIO.tail(directory + "/haproxy.log", maxBytes: 500))")
    }
}

/// What the proxy should route, kept in `<directory>/traffic.json` so that
/// a restarted proxy (or a restarted Rewind) gets the last known weights.
public struct TrafficState: Codable, Sendable, Equatable {
    public struct Server: Codable, Sendable, Equatable {
        public var address: String
        public var port: Int
        public var weight: Int
        public var draining = false

        public init(address: String, port: Int, weight: Int, draining: Bool = false) {
            self.address = address
            self.port = port
            self.weight = weight
            self.draining = draining
        }
    }

    /// Backend (app) → server name → server.
    public var backends: [String: [String: Server]] = [:]

    public init() {}

    public static func load(_ file: String) -> TrafficState? {
        guard let bytes = FileIO.read(file) else { return nil }
        return try? JSONDecoder().decode(TrafficState.self, from: Data(bytes))
    }

    public func save(_ file: String) -> Bool {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(self) else { return false }
        return FileIO.writeAtomically(file, Array(data))
    }
}

/// What a sync did: the commands sent, and the servers that are out of
/// traffic (in maintenance) but could not be removed yet because requests
/// were still in flight on them (`del server` refuses then): a later sync
/// removes them.
public struct SyncResult: Sendable, Equatable {
    public var changes = 0
    public var leaving: [String] = []
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

/// Keeps a proxy Rewind started in line with a `TrafficState`: starts it
/// when it is not running (again after a crash), then syncs each backend.
/// The proxy's pid and start time are kept in `proxy.pid`, so that a
/// restarted Rewind adopts the proxy still running rather than starting a
/// second one on the same port.
public final class HAProxySupervisor: @unchecked Sendable {
    public private(set) var config: HAProxyConfig
    public let haproxy: String
    public private(set) var pid: Int32?
    private var startTime: UInt64?
    public var stateFile: String { config.directory + "/traffic.json" }
    var pidFile: String { config.directory + "/proxy.pid" }
    /// How many times the proxy was started (the first start included).
    public private(set) var starts = 0

    public init(config: HAProxyConfig, haproxy: String = "haproxy") {
        self.config = config
        self.haproxy = haproxy
        adopt()
    }

    /// Takes over a proxy that an earlier Rewind started on this directory
    /// with the same configuration, when it still runs and answers.
    private func adopt() {
        guard let text = FileIO.readText(pidFile) else { return }
        let parts = text.split(separator: " ")
        guard parts.count == 2, let pid = Int32(parts[0]), let time = UInt64(parts[1].trimmingCharacters()),
              ProcessProbe.isAlive(pid), ProcessProbe.startTime(pid) == time,
              FileIO.readText(config.file) == config.text, (try? HAProxyRuntime(socket: config.socket).command("show info")) != nil else { return }
        self.pid = pid
        startTime = time
    }

    /// True while the proxy this supervisor started (or adopted) runs.
    public var isRunning: Bool {
        guard let pid else { return false }
        if Spawn.poll(pid) != nil { return false }
        return startTime == nil || ProcessProbe.startTime(pid) == startTime
    }

    /// A new configuration (another listen port): the proxy restarts on the next `ensure`.
    public func reconfigure(_ new: HAProxyConfig) {
        guard new.text != config.text else { return }
        stop()
        config = new
    }

    /// Brings the proxy to `state` (and saves it): the commands' count (0
    /// when everything already matched), and the servers still leaving.
    @discardableResult
    public func ensure(_ state: TrafficState) throws(TrafficError) -> SyncResult {
        guard state.save(stateFile) else { throw TrafficError("cannot write \(stateFile)") }
        if !isRunning {
            let started = try config.start(haproxy: haproxy)
            pid = started
            startTime = ProcessProbe.startTime(started)
            starts += 1
            _ = FileIO.writeAtomically(pidFile, text: "\(started) \(startTime ?? 0)\n")
        }
        let runtime = HAProxyRuntime(socket: config.socket)
        var result = SyncResult()
        for (backend, wanted) in state.backends.sorted(by: { $0.key < $1.key }) {
            let synced = try runtime.sync(backend: backend, to: wanted)
            result.changes += synced.changes
            result.leaving += synced.leaving
        }
        return result
    }

    /// Stops the proxy (connections are cut).
    public func stop() {
        if let pid, isRunning { _ = Spawn.stop(pid, graceMilliseconds: 2_000) }
        pid = nil
        startTime = nil
        FileIO.removeTree(pidFile)
    }
}
