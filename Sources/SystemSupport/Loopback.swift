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
        var address = loopbackAddress(port: 0)
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

    /// The result of one HTTP GET.
    public struct Response: Sendable {
        public let status: Int
        public let body: String
    }

    /// GETs `path` from 127.0.0.1:`port` with HTTP/1.0; throws a readable
    /// error on refusal, timeout or a malformed answer.
    public static func get(port: Int, path: String, timeoutMilliseconds: Int64) throws -> Response {
        let deadline = Clock.monotonicMilliseconds() + timeoutMilliseconds
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SpawnError("cannot create a socket") }
        defer { close(fd) }
        var address = loopbackAddress(port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 && errno != EINPROGRESS { throw SpawnError("connection to 127.0.0.1:\(port) refused") }
        try waitFor(fd, events: Int16(POLLOUT), until: deadline, what: "connecting to 127.0.0.1:\(port)")
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        if error != 0 { throw SpawnError("connection to 127.0.0.1:\(port) refused") }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            try waitFor(fd, events: Int16(POLLOUT), until: deadline, what: "sending to 127.0.0.1:\(port)")
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw SpawnError("connection to 127.0.0.1:\(port) closed while sending") }
            sent += n
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while received.count < 65_536 {
            try waitFor(fd, events: Int16(POLLIN), until: deadline, what: "waiting for 127.0.0.1:\(port)\(path)")
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
            if n <= 0 { break }
            received += buffer[0..<n]
        }
        let text = String(decoding: received, as: UTF8.self)
        let parts = text.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let status = Int(parts[1]) else {
            throw SpawnError("127.0.0.1:\(port)\(path) gave no HTTP answer")
        }
        let body = received.firstRange(of: Array("\r\n\r\n".utf8)).map { String(decoding: received[$0.upperBound...], as: UTF8.self) } ?? ""
        return Response(status: status, body: body)
    }

    private static func waitFor(_ fd: Int32, events: Int16, until deadline: Int64, what: String) throws {
        while true {
            let left = deadline - Clock.monotonicMilliseconds()
            if left <= 0 { throw SpawnError("timed out \(what)") }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let rc = Glibc.poll(&p, 1, Int32(min(left, 60_000)))
            if rc > 0 { return }
            if rc < 0 && errno != EINTR { throw SpawnError("poll failed \(what)") }
        }
    }

    static func loopbackAddress(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }
}
