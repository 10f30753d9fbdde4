#if canImport(Glibc)
import Glibc
#endif

/// Small HTTP and port helpers for services on 127.0.0.1.
public enum Loopback {
    /// A TCP port that is free on 127.0.0.1 right now (the kernel's choice).
    public static func freePort() -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard let port = bindLoopback(fd, port: 0) else { return nil }
        return port
    }

    /// A port for an app to listen on, free right now, chosen at random
    /// below the kernel's ephemeral range (as Nomad's dynamic ports are):
    /// the app binds it a moment later, and in between no outgoing
    /// connection or `bind(0)` anywhere on the host can take it. Falls back
    /// to `freePort` when the ephemeral range leaves no room below it.
    public static func freeAppPort() -> Int? {
        let low = 20_000
        let high = min(32_767, ephemeralRangeStart() - 1)
        guard high - low >= 1_000 else { return freePort() }
        for _ in 0..<64 {
            let candidate = Int.random(in: low...high)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { return nil }
            let bound = bindLoopback(fd, port: candidate)
            close(fd)
            if bound != nil { return candidate }
        }
        return freePort()
    }

    /// The first port of the kernel's ephemeral range (32768 when it cannot be read).
    static func ephemeralRangeStart() -> Int {
        let text = FileIO.readText("/proc/sys/net/ipv4/ip_local_port_range") ?? ""
        return text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap { Int($0) } ?? 32_768
    }

    /// Binds `fd` to 127.0.0.1:`port` (0: the kernel picks); the port bound, or nil.
    private static func bindLoopback(_ fd: Int32, port: Int) -> Int? {
        var address = loopbackAddress(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { return nil }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return named == 0 ? Int(UInt16(bigEndian: address.sin_port)) : nil
    }

    /// True when something accepts TCP connections on 127.0.0.1:`port`.
    public static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopbackAddress(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// The result of one HTTP GET.
    public struct Response: Sendable {
        public let status: Int
        public let body: String
    }

    /// GETs `path` from 127.0.0.1:`port` with HTTP/1.0; throws a readable
    /// error on refusal, timeout or a malformed answer.
    public static func get(port: Int, path: String, timeoutMilliseconds: Int64) throws -> Response {
        try request("GET", host: "127.0.0.1", port: port, path: path, body: nil, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// One HTTP/1.0 request to an IPv4 address (or localhost): plain HTTP only.
    public static func request(_ method: String, host: String, port: Int, path: String, body: [UInt8]?, contentType: String = "application/json",
                               headers: [String: String] = [:], timeoutMilliseconds: Int64) throws -> Response {
        let deadline = Clock.monotonicMilliseconds() + timeoutMilliseconds
        var address = loopbackAddress(port: port)
        let ipv4 = host == "localhost" ? "127.0.0.1" : host
        guard inet_pton(AF_INET, ipv4, &address.sin_addr) == 1 else {
            throw SystemError("'\(host)' is not an IPv4 address (Rewind's HTTP client takes addresses such as 127.0.0.1)")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("cannot create a socket") }
        defer { close(fd) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 && errno != EINPROGRESS { throw SystemError("connection to \(host):\(port) refused") }
        try waitFor(fd, events: Int16(POLLOUT), until: deadline, what: "connecting to \(host):\(port)")
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        if error != 0 { throw SystemError("connection to \(host):\(port) refused") }
        var head = "\(method) \(path) HTTP/1.0\r\nHost: \(host):\(port)\r\nConnection: close\r\n"
        for (key, value) in headers.sorted(by: { $0.key < $1.key }) { head += "\(key): \(value)\r\n" }
        if let body { head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n" }
        let request = Array((head + "\r\n").utf8) + (body ?? [])
        var sent = 0
        while sent < request.count {
            try waitFor(fd, events: Int16(POLLOUT), until: deadline, what: "sending to \(host):\(port)")
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw SystemError("connection to \(host):\(port) closed while sending") }
            sent += n
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while received.count < 65_536 {
            try waitFor(fd, events: Int16(POLLIN), until: deadline, what: "waiting for \(host):\(port)\(path)")
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            if n <= 0 { break }
            received += buffer[0..<n]
        }
        let text = String(decoding: received, as: UTF8.self)
        let parts = text.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else {
            throw SystemError("\(host):\(port)\(path) gave no HTTP answer")
        }
        let body = received.firstRange(of: Array("\r\n\r\n".utf8)).map { String(decoding: received[$0.upperBound...], as: UTF8.self) } ?? ""
        return Response(status: status, body: body)
    }

    private static func waitFor(_ fd: Int32, events: Int16, until deadline: Int64, what: String) throws {
        while true {
            let left = deadline - Clock.monotonicMilliseconds()
            if left <= 0 { throw SystemError("timed out \(what)") }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let rc = Glibc.poll(&p, 1, Int32(min(left, 60_000)))
            if rc > 0 { return }
            if rc < 0 && errno != EINTR { throw SystemError("poll failed \(what)") }
        }
    }

    /// 127.0.0.1:`port` as a socket address.
    public static func loopbackAddress(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }
}

/// An `http://HOST:PORT/prefix` URL, as Rewind's small HTTP client takes it.
public struct HTTPEndpoint: Sendable, Equatable {
    public let host: String
    public let port: Int
    /// The path prefix, without a trailing slash ("" for none).
    public let prefix: String

    /// Parses a URL; nil (with no guessing) for anything but plain http to an IPv4 address or localhost.
    public init?(_ url: String) {
        guard url.hasPrefix("http://") else { return nil }
        let rest = url.dropFirst("http://".count)
        let hostPort = rest.prefix { $0 != "/" }
        var path = String(rest.dropFirst(hostPort.count))
        while path.hasSuffix("/") { path.removeLast() }
        let parts = hostPort.split(separator: ":")
        guard let first = parts.first, !hostPort.contains("@") else { return nil }
        host = String(first)
        port = parts.count == 2 ? Int(parts[1]) ?? -1 : 80
        prefix = path
        var probe = in_addr()
        guard (1...65535).contains(port), host == "localhost" || inet_pton(AF_INET, host, &probe) == 1 else { return nil }
    }

    /// Percent-encodes a query parameter value or a path segment (RFC 3986's
    /// unreserved characters kept).
    public static func encode(_ value: String) -> String {
        var out = ""
        for byte in value.utf8 {
            switch byte {
            case 48...57, 65...90, 97...122, 45, 46, 95, 126: out.append(Character(Unicode.Scalar(byte)))
            default: out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(2)
            }
        }
        return out
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
