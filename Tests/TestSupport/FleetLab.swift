import Foundation
import ReconcilerStatus
import Rollback
import SystemSupport

/// A fleet on separate network hosts (`NetworkHosts`): a git daemon in the
/// git host's namespace serving a bare clone of a harness repository, and
/// one `rewind serve --host NAME` per host namespace, each following the
/// git host through a mirror of its own. The test writes commits in the
/// harness repository and pushes them to the bare one; it reads each
/// host's state directory and mirror from the shared file system.
public final class FleetLab {
    public let harness: ReconcilerHarness
    public let net: NetworkHosts
    /// The git host's repository (pushed to through the file system).
    public let bare: String
    private var daemon: pid_t?
    private var agents: [String: pid_t] = [:]
    /// With `ssh`: sshd in the git host's namespace, which the hosts follow instead of the git daemon.
    private var sshd: SSHServer?

    public init(hosts: [String], apps: [HarnessApp], rewindYAML: String, ssh: Bool = false) throws {
        harness = try ReconcilerHarness(apps: apps)
        do {
            try harness.write("rewind.yaml", rewindYAML)
            try harness.commit("the fleet")
            bare = harness.root + "/git/deploy.git"
            try FileManager.default.createDirectory(atPath: harness.root + "/git", withIntermediateDirectories: true)
            try git(["clone", "-q", "--bare", harness.repo, bare], in: harness.root)
            net = try NetworkHosts(hostNames: hosts)
        } catch {
            harness.close()
            throw error
        }
        do {
            try startGitHost()
            if ssh {
                let server = try SSHServer(directory: harness.root + "/sshd", namespace: net.gitNamespace)
                sshd = server
                try writeFile(harness.root + "/known_hosts", try net.hosts.map { try server.knownHostsLine(address: $0.gitAddress) }.joined())
            }
        } catch {
            close()
            throw error
        }
    }

    public func url(for host: String) -> String {
        let address = net.host(host)?.gitAddress ?? "?"
        return sshd.map { "ssh://root@\(address):\($0.port)\(bare)" } ?? "git://\(address)/deploy.git"
    }
    public func mirror(_ host: String) -> String { harness.root + "/\(host)/mirror" }
    public func stateDir(_ host: String) -> String { harness.root + "/\(host)/state" }
    public func log(_ host: String) -> String { (try? String(contentsOfFile: harness.root + "/\(host).log", encoding: .utf8)) ?? "" }

    /// The git daemon, inside the git host's namespace, on every address of it.
    public func startGitHost() throws {
        guard daemon == nil else { return }
        let base = harness.root + "/git"
        daemon = try net.start(in: net.gitNamespace, "/usr/bin/git", ["daemon", "--reuseaddr", "--export-all", "--enable=receive-pack", "--base-path=\(base)", base],
                               outputFile: harness.root + "/git-daemon.log")
        guard let first = net.hosts.first else { return }
        try waitFor("the git host answers", timeout: 15) {
            (try? net.run(in: first.namespace, "/usr/bin/git", ["ls-remote", url(for: first.name)]))?.status == 0
        }
    }

    public func stopGitHost() {
        guard let pid = daemon else { return }
        killTree(pid)
        daemon = nil
    }

    /// Starts `rewind serve --host NAME` in the host's namespace.
    public func startAgent(_ host: String, _ extra: [String] = []) throws {
        guard let spec = net.host(host) else { throw TestFailure("no host \(host)") }
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in TestEnvironment.git { environment[k] = v }
        environment["HARNESS_DIR"] = harness.root
        let access = sshd.map { ["--ssh-key", $0.userKey, "--known-hosts", harness.root + "/known_hosts"] } ?? []
        let arguments = ["serve", "--repo", url(for: host)] + access + [ "--mirror", mirror(host), "--state-dir", stateDir(host), "--host", host,
                         "--fetch-interval", "300ms", "--status-interval", "1s", "--address", "0.0.0.0", "--port", "8080", "--ui-public-read", "--log-level", "info"] + extra
        try? FileManager.default.removeItem(atPath: stateDir(host) + "/reconciler.pid")
        agents[host] = try net.start(in: spec.namespace, rewindBinary, arguments, environment: environment, outputFile: harness.root + "/\(host).log")
        try waitFor("\(host)'s reconciler runs", timeout: 30) { FileManager.default.fileExists(atPath: stateDir(host) + "/reconciler.pid") }
    }

    /// GET `path` from a host's `rewind serve` (port 8080 in its namespace); the body, empty on failure.
    public func get(_ host: String, _ path: String) -> String {
        guard let namespace = net.host(host)?.namespace else { return "" }
        return (try? net.run(in: namespace, "/usr/bin/curl", ["-s", "-m", "10", "http://127.0.0.1:8080" + path]))?.stdout ?? ""
    }

    /// kill -9 of a host's Rewind (its apps keep running).
    public func kill9(_ host: String) {
        guard let pid = agents.removeValue(forKey: host) else { return }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    /// Brings what the hosts wrote (a rollback commit) into the harness repository, before the next commit.
    public func pull() throws { try git(["pull", "-q", "--ff-only", bare, "main"], in: harness.repo) }

    /// Pushes the harness repository's main to the git host (through the file system).
    public func push() throws {
        do {
            try git(["push", "-q", bare, "main"], in: harness.repo)
        } catch {
            let log = (try? git(["log", "--format=%h %s%n%b", "-5", "main"], in: bare)) ?? ""
            throw TestFailure("\(error)\nthe git host's main:\n\(log)")
        }
    }

    /// A host's `rewind status --format json`, built in this process.
    public func status(_ host: String) -> [String: Any] {
        guard let repo = try? DeployRepository(path: mirror(host), branch: nil),
              let report = try? StatusReport.build(repo: repo, stateDirectory: stateDir(host)),
              let object = try? JSONSerialization.jsonObject(with: Data(report.json.pretty.utf8)) as? [String: Any] else { return [:] }
        return object
    }

    /// An app on a host as "VERSION HEALTH" ("-" when it does not run there).
    public func app(_ host: String, _ name: String) -> String {
        let apps = status(host)["apps"] as? [[String: Any]] ?? []
        guard let app = apps.first(where: { $0["app"] as? String == name }) else { return "-" }
        return "\((app["applied"] as? [String: Any])?["version"] as? String ?? "-") \(app["health"] as? String ?? "-")"
    }

    /// Why a host's app waits for other hosts (its `stage`), or nil.
    public func stage(_ host: String, _ name: String) -> String? {
        let apps = status(host)["apps"] as? [[String: Any]] ?? []
        return (apps.first { $0["app"] as? String == name }?["stage"] as? [String: Any])?["reason"] as? String
    }

    /// The apps a host's state knows.
    public func apps(_ host: String) -> [String] {
        ((status(host)["apps"] as? [[String: Any]]) ?? []).compactMap { $0["app"] as? String }.sorted()
    }

    /// What a host last published on the git host (`refs/rewind/hosts/NAME:status.json`).
    public func published(_ host: String) -> [String: Any]? {
        guard let text = try? git(["show", "refs/rewind/hosts/\(host):status.json"], in: bare) else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
    }

    /// One app of a host's published status.
    public func publishedApp(_ host: String, _ name: String) -> [String: Any]? {
        ((published(host)?["apps"] as? [[String: Any]]) ?? []).first { $0["app"] as? String == name }
    }

    /// The git host's rollback commits on main.
    public func rollbackCommits() throws -> [String] {
        try git(["log", "--format=%H", "--grep=^Rewind-Action: rollback", "main"], in: bare).split(separator: "\n").map(String.init)
    }

    /// Processes in a host's namespace whose command line holds `text`.
    public func processes(on host: String, matching text: String) -> [pid_t] {
        guard let namespace = net.host(host)?.namespace,
              let listed = try? TestSupport.run("/usr/sbin/ip", ["netns", "pids", namespace]) else { return [] }
        return listed.stdout.split(separator: "\n").compactMap { pid_t($0) }.filter { pid in
            let command = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))) ?? Data()
            return String(decoding: command, as: UTF8.self).replacingOccurrences(of: "\0", with: " ").contains(text)
        }
    }

    public func waitUntil(_ what: String, timeout: Double = 60, _ condition: () throws -> Bool) throws {
        do {
            try waitFor(what, timeout: timeout, condition)
        } catch {
            let logs = net.hosts.map { "--- \($0.name)\n" + String(log($0.name).suffix(3_000)) }.joined(separator: "\n")
            throw TestFailure("\(error)\n\(logs)")
        }
    }

    /// Stops everything: the agents and apps (every process in the namespaces), the namespaces, the directory.
    public func close() {
        sshd?.kill()
        net.close()
        for pid in agents.values {
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        agents = [:]
        if let pid = daemon {
            var status: Int32 = 0
            waitpid(pid, &status, WNOHANG)
        }
        daemon = nil
        harness.close()
    }
}
