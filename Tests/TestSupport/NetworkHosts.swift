import Foundation
import SystemSupport

/// Separate network hosts for the fleet tests: Linux network namespaces,
/// one for the git host and one per host, each host joined to the git host
/// by a veth pair of its own (host N is 10.77.N.2, and reaches the git host
/// at 10.77.N.1). Hosts share the file system (their state directories are
/// read from here) but not the network: a host's loopback, ports and link
/// are its own, and `cut` takes its link down.
///
/// `close()` kills every process in the namespaces and deletes them, also
/// after a failed test; namespaces a killed test run left behind are
/// deleted when the next one starts. Making namespaces needs root: without
/// it the initialiser throws, saying so (the tests fail; they do not skip).
public final class NetworkHosts {
    public struct Host {
        public let name: String
        public let namespace: String
        /// This host's address, and the git host's address as this host sees it.
        public let address: String
        public let gitAddress: String
        let link: String
    }

    public let gitNamespace: String
    public private(set) var hosts: [Host] = []
    private let id: String
    private nonisolated(unsafe) static var counter = 0
    private static let lock = NSLock()

    public init(hostNames: [String]) throws {
        guard getuid() == 0 else {
            throw TestFailure("the fleet tests make network namespaces (ip netns), which needs root; run them as root (CI does)")
        }
        Self.removeLeftovers()
        Self.lock.lock()
        Self.counter += 1
        id = "\(getpid() % 100_000)x\(Self.counter)"
        Self.lock.unlock()
        gitNamespace = "rwfleet-\(id)-git"
        do {
            try Self.ip(["netns", "add", gitNamespace])
            try Self.ip(["-n", gitNamespace, "link", "set", "lo", "up"])
            for (index, name) in hostNames.enumerated() {
                let n = index + 1
                let host = Host(name: name, namespace: "rwfleet-\(id)-\(n)", address: "10.77.\(n).2", gitAddress: "10.77.\(n).1", link: "rw\(id)h\(n)")
                let peer = "rw\(id)g\(n)"
                try Self.ip(["netns", "add", host.namespace])
                hosts.append(host)
                try Self.ip(["-n", host.namespace, "link", "set", "lo", "up"])
                try Self.ip(["link", "add", host.link, "netns", host.namespace, "type", "veth", "peer", "name", peer, "netns", gitNamespace])
                try Self.ip(["-n", host.namespace, "addr", "add", host.address + "/24", "dev", host.link])
                try Self.ip(["-n", gitNamespace, "addr", "add", host.gitAddress + "/24", "dev", peer])
                try Self.ip(["-n", host.namespace, "link", "set", host.link, "up"])
                try Self.ip(["-n", gitNamespace, "link", "set", peer, "up"])
            }
        } catch {
            close()
            throw error
        }
    }

    public func host(_ name: String) -> Host? { hosts.first { $0.name == name } }

    /// Starts a program inside `namespace` (a host's, or the git host's).
    public func start(in namespace: String, _ program: String, _ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment,
                      outputFile: String) throws -> pid_t {
        try Spawn.start(SpawnOptions(program: "/usr/sbin/ip", arguments: ["netns", "exec", namespace, program] + arguments,
                                     environment: environment, outputFile: outputFile))
    }

    /// Runs a program to completion inside `namespace`.
    @discardableResult
    public func run(in namespace: String, _ program: String, _ arguments: [String], in directory: String? = nil) throws -> ProcessResult {
        try TestSupport.run("/usr/sbin/ip", ["netns", "exec", namespace, program] + arguments, in: directory)
    }

    /// Cuts a host off the network (its link goes down), or brings it back.
    public func cut(_ name: String) throws {
        guard let host = host(name) else { throw TestFailure("no host \(name)") }
        try Self.ip(["-n", host.namespace, "link", "set", host.link, "down"])
    }

    public func reconnect(_ name: String) throws {
        guard let host = host(name) else { throw TestFailure("no host \(name)") }
        try Self.ip(["-n", host.namespace, "link", "set", host.link, "up"])
    }

    /// Kills everything in the namespaces and deletes them (and with them the veth pairs).
    public func close() {
        let namespaces = hosts.map(\.namespace) + [gitNamespace]
        for namespace in namespaces { Self.killAll(in: namespace) }
        for namespace in namespaces { _ = try? TestSupport.run("/usr/sbin/ip", ["netns", "delete", namespace]) }
        hosts = []
    }

    deinit { close() }

    /// Kills every process in `namespace`. Shells go last, after up to 10 s
    /// to end by themselves: an ssh session's shell runs the user's startup
    /// files (pyenv's rehash takes a lock file there), and one killed
    /// mid-way leaves the lock behind, which hangs every later ssh session
    /// on this machine (see `killTree`).
    private static func killAll(in namespace: String) {
        let deadline = Date().addingTimeInterval(10)
        while true {
            let pids = ((try? TestSupport.run("/usr/sbin/ip", ["netns", "pids", namespace]))?.stdout ?? "").split(separator: "\n").compactMap { pid_t($0) }
            if pids.isEmpty { return }
            let sparing = Date() < deadline
            for pid in pids where !(sparing && isShell(pid)) { kill(pid, SIGKILL) }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    private static func ip(_ arguments: [String]) throws {
        let result = try TestSupport.run("/usr/sbin/ip", arguments)
        guard result.status == 0 else { throw TestFailure("ip \(arguments.joined(separator: " ")) failed (\(result.status)): \(result.stderr)") }
    }

    /// Namespaces of test processes that no longer run (a run killed before its cleanup).
    private static func removeLeftovers() {
        let listed = ((try? TestSupport.run("/usr/sbin/ip", ["netns", "list"]))?.stdout ?? "").split(separator: "\n")
        for line in listed {
            let name = String(line.split(separator: " ").first ?? "")
            guard name.hasPrefix("rwfleet-"), let pid = pid_t(name.dropFirst("rwfleet-".count).prefix { $0.isNumber }) else { continue }
            // The name keeps the pid modulo 100,000; pid_max is lower here, so it is the pid.
            if pid == getpid() % 100_000 || kill(pid, 0) == 0 { continue }
            killAll(in: name)
            _ = try? TestSupport.run("/usr/sbin/ip", ["netns", "delete", name])
        }
    }
}
