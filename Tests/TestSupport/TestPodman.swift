import Foundation
import SystemSupport

/// Debian's Podman serving the Docker Engine API (`podman system service`)
/// on a unix socket of its own, with its own storage: runc, cgroupfs, vfs,
/// and no default ulimits, which is what runs here (a normal host needs none
/// of these). `insecure` registries (the tests' plain-HTTP docker-registry)
/// are listed in its registries.conf. `close()` removes every container it
/// ran, stops it and deletes its files.
public final class TestPodman {
    public let root: String
    public var socket: String { root + "/podman.sock" }
    private var pid: pid_t?

    public init(insecure registries: [String] = []) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("rewind-podman-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try writeFile(root + "/containers.conf", "[containers]\ndefault_ulimits = []\n")
        try writeFile(root + "/registries.conf", "unqualified-search-registries = []\n" + registries.map { "[[registry]]\nlocation = \"\($0)\"\ninsecure = true\n" }.joined())
        try startService()
    }

    /// Starts the API service and waits until it answers `/_ping`.
    public func startService() throws {
        pid = try Spawn.start(SpawnOptions(program: "/usr/bin/podman", arguments: global + ["system", "service", "--time=0", "unix://\(socket)"],
                                           environment: environment, outputFile: root + "/service.log"))
        let deadline = Date().addingTimeInterval(30)
        while (try? run("/usr/bin/curl", ["-sf", "--unix-socket", socket, "http://d/_ping"]))?.stdout != "OK" {
            guard Date() < deadline else { throw TestFailure("podman system service did not answer on \(socket):\n\(log)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Stops the API service (the engine "restarts" or goes away): its
    /// containers keep running under their conmon, as under a real engine
    /// restart with live-restore; the socket is removed.
    public func stopService() {
        if let pid { Spawn.stop(pid, graceMilliseconds: 5_000) }
        pid = nil
        try? FileManager.default.removeItem(atPath: socket)
    }

    /// The flags every podman command here needs: this machine's quirks and the storage of its own.
    private var global: [String] {
        ["--runtime", "runc", "--cgroup-manager=cgroupfs", "--storage-driver=vfs", "--events-backend=file",
         "--root", root + "/storage", "--runroot", root + "/run", "--tmpdir", root + "/tmp"]
    }

    private var environment: [String: String] {
        ProcessInfo.processInfo.environment.merging(["CONTAINERS_CONF": root + "/containers.conf", "CONTAINERS_REGISTRIES_CONF": root + "/registries.conf"]) { _, new in new }
    }

    /// The podman CLI on the same storage, as an oracle.
    public func podman(_ arguments: [String]) throws -> ProcessResult {
        try run("/usr/bin/podman", global + arguments, environment: environment)
    }

    public var log: String { (try? String(contentsOfFile: root + "/service.log", encoding: .utf8)) ?? "" }

    public func close() {
        _ = try? podman(["rm", "--all", "--force", "--time", "0"])
        stopService()
        try? FileManager.default.removeItem(atPath: root)
    }
}

extension TestRegistry {
    /// Publishes an image whose one layer holds `program` and every shared
    /// library it loads (at their own paths), so that it runs in a container
    /// with nothing else in it; returns the manifest's digest.
    @discardableResult
    public func publishImage(_ repository: String, tag: String, program: String, files: [String: String] = [:], shell: Bool = false) throws -> String {
        let work = root + "/image-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: work) }
        let tree = work + "/tree"
        let libraries = try run("/usr/bin/ldd", [program]).stdout.split(separator: "\n").compactMap { line -> String? in
            line.split(whereSeparator: { $0 == " " || $0 == "\t" }).first { $0.hasPrefix("/") }.map(String.init)
        }
        for file in [program] + libraries {
            try FileManager.default.createDirectory(atPath: tree + (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            guard try run("/bin/cp", ["-L", file, tree + file]).status == 0 else { throw TestFailure("cannot copy \(file)") }
        }
        try FileManager.default.createDirectory(atPath: tree + "/tmp", withIntermediateDirectories: true)
        for (path, text) in files { try writeFile(tree + "/" + path, text) }
        if shell {
            // Debian's busybox-static as /bin/sh (and its applets through `sh -c`), for down commands and crashing scripts.
            try FileManager.default.createDirectory(atPath: tree + "/bin", withIntermediateDirectories: true)
            guard try run("/bin/cp", ["/bin/busybox", tree + "/bin/busybox"]).status == 0 else { throw TestFailure("cannot copy /bin/busybox (apt-get install busybox-static)") }
            try FileManager.default.createSymbolicLink(atPath: tree + "/bin/sh", withDestinationPath: "busybox")
        }
        let tar = try run("/usr/bin/tar", ["--owner=0", "--group=0", "--numeric-owner", "-cf", work + "/layer.tar", "-C", tree, "."])
        guard tar.status == 0 else { throw TestFailure("tar: \(tar.stderr)") }
        return try publishLayout(repository, tag: tag, layer: work + "/layer.tar", mediaType: "application/vnd.oci.image.layer.v1.tar", work: work,
                                 diffID: true)
    }
}
