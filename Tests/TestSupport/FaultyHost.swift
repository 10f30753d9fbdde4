import Foundation
import Synchronization
import SystemSupport

/// A TCP listener on loopback that stands in for a git host (or any peer)
/// failing the way real hosts fail. Stopped by `stop()` or when released.
public final class FaultyHost: Sendable {
    public enum Behaviour: Sendable {
        /// Accepts every connection and never sends a byte (an overloaded host).
        case silent
        /// Accepts, reads what the client sends first, then resets the
        /// connection (SO_LINGER 0: the client sees ECONNRESET or EPIPE).
        case hangsUp
        /// Never accepts, with a full backlog: a connect never completes
        /// (the SYN is dropped), like a host behind a black hole.
        case blackHole
    }

    public let port: Int
    public let behaviour: Behaviour
    private let listener: Int32
    private let held = Mutex<[Int32]>([])
    private let accepted = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)
    private let fillers = Mutex<[Int32]>([])

    /// Listens on `port`; when nil, on a port the kernel picks at bind time
    /// (asking for a free port first and binding it later races with any
    /// other process on the machine doing the same).
    public init(_ behaviour: Behaviour, port: Int? = nil) throws {
        self.behaviour = behaviour
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = Loopback.loopbackAddress(port: port ?? 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, behaviour == .blackHole ? 0 : 64) == 0 else {
            let why = errno
            close(fd)
            throw TestFailure("cannot listen on 127.0.0.1:\(port ?? 0): errno \(why)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
        if behaviour == .blackHole {
            // Fill the backlog (0 admits one); later SYNs are dropped.
            for _ in 0..<2 {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                fillers.withLock { $0.append(fd) }
            }
            usleep(100_000)
            return
        }
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// Listens on a unix socket at `unixPath` (`.silent` or `.hangsUp`):
    /// an HAProxy runtime socket that never answers or hangs up.
    public init(_ behaviour: Behaviour, unixPath: String) throws {
        self.behaviour = behaviour
        port = 0
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(unixPath.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.enumerated() where i < raw.count - 1 { raw[i] = byte }
        }
        unlink(unixPath)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(listener, 64) == 0 else {
            close(listener)
            throw TestFailure("cannot listen on \(unixPath): errno \(errno)")
        }
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    /// How many connections it has accepted.
    public var connections: Int { accepted.load(ordering: .acquiring) }

    private func acceptLoop() {
        while !stopped.load(ordering: .acquiring) {
            var pollfd = Glibc.pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&pollfd, 1, 50) > 0 else { continue }
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { continue }
            accepted.add(1, ordering: .releasing)
            switch behaviour {
            case .silent, .blackHole:
                held.withLock { $0.append(fd) }
            case .hangsUp:
                var buffer = [UInt8](repeating: 0, count: 4096)
                var readable = Glibc.pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&readable, 1, 2_000) > 0 { _ = recv(fd, &buffer, buffer.count, 0) }
                var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
                close(fd)
            }
        }
    }

    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        usleep(60_000)
        close(listener)
        held.withLock { fds in fds.forEach { close($0) }; fds = [] }
        fillers.withLock { fds in fds.forEach { close($0) }; fds = [] }
    }

    deinit { stop() }
}
