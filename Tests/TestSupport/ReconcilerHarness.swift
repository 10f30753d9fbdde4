import Foundation
import ReconcilerStatus
import Rollback
import SystemSupport
import Traffic

/// One app of a harness repository.
public struct HarnessApp {
    public var name: String
    public var dependsOn: [String]
    /// The whole app.yaml.
    public var appYAML: String
    /// Extra files in the app directory (name → text); `.sh` files are executable.
    public var files: [String: String]

    public init(_ name: String, dependsOn: [String] = [], appYAML: String, files: [String: String] = [:]) {
        self.name = name
        self.dependsOn = dependsOn
        self.appYAML = appYAML
        self.files = files
    }
}

/// A deployment repository, an artifact root, a state directory and a
/// `rewind reconcile` process, all under one temporary directory. `close()`
/// stops the reconciler and every process the state file names, then
/// deletes the directory.
public final class ReconcilerHarness {
    public let root: String
    public let repo: String
    public let artifacts: String
    public let stateDir: String
    public let logFile: String
    private var reconciler: pid_t?
    /// The running reconciler's process id.
    public var pid: pid_t? { reconciler }
    /// When set, the reconciler follows this URL through a mirror at `mirror`
    /// instead of reading `repo` directly.
    public var remoteURL: String?
    /// The mirror of `remoteURL`; `status()` reads it.
    public var mirror: String { root + "/mirror" }
    /// Every pid seen in the state file, killed at the end in case.
    /// Every process the reconciler started that the harness has seen, with
    /// its start time: at close only those still the same process are
    /// killed (a pid may have been reused meanwhile by another test's process).
    private var seenPids: [Int32: UInt64] = [:]
    /// Added to the reconciler's environment when it starts.
    public var extraEnvironment: [String: String] = [:]

    /// Creates the repository with `apps` and the policy text (YAML under `policy:`) and commits it.
    public init(apps: [HarnessApp], policy: String = "  window: 30m\n  cooldown: 0s\n  maxPerHour: 3\n  soak: 1m\n  crashLoopRestarts: 3\n") throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("rewind-rec-\(UUID().uuidString.prefix(8))").path
        repo = root + "/repo"
        artifacts = root + "/artifacts"
        stateDir = root + "/state"
        logFile = root + "/reconciler.log"
        try FileManager.default.createDirectory(atPath: repo, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: artifacts, withIntermediateDirectories: true)
        try git(["init", "-q", "-b", "main", repo], in: root)
        var yaml = "apiVersion: rewind/v1\nbranch: main\napps:\n"
        for app in apps {
            yaml += "  - name: \(app.name)\n    path: apps/\(app.name)\n"
            if !app.dependsOn.isEmpty { yaml += "    dependsOn: [\(app.dependsOn.joined(separator: ", "))]\n" }
            try writeApp(app)
        }
        yaml += "policy:\n" + policy
        try write("rewind.yaml", yaml)
        try commit("initial")
    }

    /// Writes an app's app.yaml and files.
    public func writeApp(_ app: HarnessApp) throws {
        try write("apps/\(app.name)/app.yaml", app.appYAML)
        for (name, text) in app.files { try write("apps/\(app.name)/\(name)", text, executable: name.hasSuffix(".sh")) }
    }

    /// Writes a file in the working tree.
    public func write(_ path: String, _ text: String, executable: Bool = false) throws {
        try writeFile(repo + "/" + path, text, executable: executable)
    }

    /// Commits everything with the git CLI (current time); returns the commit id.
    @discardableResult
    public func commit(_ message: String) throws -> String {
        try git(["add", "-A"], in: repo)
        try git(["commit", "-q", "--allow-empty", "-m", message], in: repo)
        return try git(["rev-parse", "HEAD"], in: repo)
    }

    /// Creates an artifact file under the artifact root.
    public func publish(_ path: String) throws { try writeFile(artifacts + "/" + path, "artifact \(path)\n") }

    /// Starts `rewind serve --port 0` in the background; returns its address (host:port).
    @discardableResult
    public func startServe(_ extra: [String] = []) throws -> String {
        try? FileManager.default.removeItem(atPath: stateDir + "/serve.address")
        try start(extra, command: "serve", base: ["--port", "0"])
        var address = ""
        try waitUntil("rewind serve listens", timeout: 20) {
            address = ((try? String(contentsOfFile: stateDir + "/serve.address", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            return !address.isEmpty
        }
        return address
    }

    /// Serves a bare clone of the repository (`<root>/served/deploy.git`)
    /// through a git daemon, and follows it from now on (`remoteURL`);
    /// returns the daemon (stop it) and the bare repository's path.
    public func serveThroughGitDaemon() throws -> (daemon: GitDaemon, remote: String) {
        let served = root + "/served"
        try FileManager.default.createDirectory(atPath: served, withIntermediateDirectories: true)
        try git(["clone", "-q", "--bare", repo, served + "/deploy.git"], in: root)
        let daemon = try GitDaemon(base: served)
        remoteURL = daemon.url("deploy.git")
        return (daemon, served + "/deploy.git")
    }

    /// Starts `rewind reconcile` in the background.
    public func start(_ extra: [String] = []) throws { try start(extra, command: "reconcile", base: []) }

    private func start(_ extra: [String], command: String, base: [String]) throws {
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in TestEnvironment.git { environment[k] = v }
        environment["HARNESS_DIR"] = root
        for (k, v) in extraEnvironment { environment[k] = v }
        try? FileManager.default.removeItem(atPath: stateDir + "/reconciler.pid")
        let source = remoteURL.map { ["--repo", $0, "--mirror", mirror] } ?? ["--repo", repo]
        let arguments = [command] + source + ["--state-dir", stateDir, "--artifact-root", artifacts, "--log-level", "debug"] + base + extra
        // posix_spawn rather than Foundation's Process: the test reaps it itself.
        reconciler = try Spawn.start(SpawnOptions(program: rewindBinary, arguments: arguments, environment: environment, outputFile: logFile))
        try waitUntil("the reconciler wrote its pid", timeout: 15) { FileManager.default.fileExists(atPath: stateDir + "/reconciler.pid") }
    }

    /// Sends SIGKILL to the reconciler (its apps keep running).
    public func kill9() {
        guard let pid = reconciler else { return }
        collectPids()
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        reconciler = nil
    }

    /// Waits until the reconciler ends by itself (a test kill point, an
    /// error); its wait status's signal or exit code, nil on timeout.
    public func waitForExit(timeout: Double = 30) -> (signal: Int32, code: Int32)? {
        guard let pid = reconciler else { return nil }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                collectPids()
                reconciler = nil
                return (status & 0x7f, (status >> 8) & 0xff)
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return nil
    }

    /// Processes whose environment holds `NAME=value` exactly (to find orphans).
    public static func processes(withEnvironment entry: String) -> [Int32] {
        let wanted = Data(entry.utf8)
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { name in
            guard let pid = Int32(name), let data = FileManager.default.contents(atPath: "/proc/\(name)/environ") else { return nil }
            return data.split(separator: 0).contains { Data($0) == wanted } ? pid : nil
        }
    }

    /// Stops the reconciler with SIGTERM and waits; returns its exit status.
    @discardableResult
    public func stop() -> Int32? {
        guard let pid = reconciler else { return nil }
        collectPids()
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        reconciler = nil
        return status & 0x7f == 0 ? (status >> 8) & 0xff : -1
    }

    /// The reconciler's log so far.
    public var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    /// What `rewind status --format json` prints, built in this process
    /// from the same code (spawning `rewind status` every poll cost a
    /// process start each 20 ms and made waits depend on the machine's load).
    public func status() throws -> [String: Any] {
        let deployRepo = try DeployRepository(path: remoteURL == nil ? repo : mirror, branch: nil)
        let report = try StatusReport.build(repo: deployRepo, stateDirectory: stateDir)
        guard let object = try JSONSerialization.jsonObject(with: Data(report.json.pretty.utf8)) as? [String: Any] else {
            throw TestFailure("the status is not a JSON object")
        }
        collectPids()
        return object
    }

    /// One app's entry of the status.
    public func app(_ name: String) throws -> [String: Any] {
        let apps = try status()["apps"] as? [[String: Any]] ?? []
        guard let app = apps.first(where: { $0["app"] as? String == name }) else { throw TestFailure("no app \(name) in status") }
        return app
    }

    /// The applied version of an app, with its health.
    public func applied(_ name: String) throws -> (version: String?, health: String?, pid: Int32?) {
        let app = try app(name)
        let applied = app["applied"] as? [String: Any]
        return (applied?["version"] as? String, app["health"] as? String, (app["pid"] as? NSNumber)?.int32Value)
    }

    /// Polls `condition` every 20 ms until it holds, or fails after `timeout` seconds
    /// with the reconciler's log.
    public func waitUntil(_ what: String, timeout: Double = 30, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? condition()) == true { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw TestFailure("timed out after \(timeout) s waiting until \(what)\n--- reconciler log ---\n\(log.suffix(6000))")
    }

    /// Waits until an app runs `version` and is healthy.
    public func waitHealthy(_ name: String, _ version: String, timeout: Double = 30) throws {
        try waitUntil("\(name) runs \(version), healthy", timeout: timeout) {
            let a = try applied(name)
            return a.version == version && a.health == "healthy"
        }
    }

    /// The note on a commit once it holds every one of `expected` (or after
    /// `timeout` seconds, as it is then). The reconciler saves a state
    /// change first and writes its note right after: a test that saw the
    /// state must wait for the note, not read it at once.
    public func notes(on commit: String, waitingFor expected: [String], timeout: Double = 15) -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var text = notes(on: commit)
        while !expected.allSatisfy({ text.contains($0) }) && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.02)
            text = notes(on: commit)
        }
        return text
    }

    /// The note under refs/notes/rewind on a commit ("" when none).
    public func notes(on commit: String) -> String {
        (try? git(["notes", "--ref=rewind", "show", commit], in: repo)) ?? ""
    }

    /// Commit ids on main, newest first.
    public func commits() throws -> [String] {
        try git(["rev-list", "main"], in: repo).split(separator: "\n").map(String.init)
    }

    private func collectPids() {
        func see(_ object: Any?) {
            guard let object = object as? [String: Any], let pid = (object["pid"] as? NSNumber)?.int32Value,
                  let start = (object["pidStartTime"] as? NSNumber)?.uint64Value ?? ProcessProbe.startTime(pid) else { return }
            seenPids[pid] = seenPids[pid] ?? start
        }
        let directory = stateDir + "/apps"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            guard let data = FileManager.default.contents(atPath: directory + "/" + name),
                  let app = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { continue }
            see(app["instance"])
            see(app["pending"])
            see((app["rollout"] as? [String: Any])?["stable"])
        }
        // The proxies Rewind started for apps with traffic: `PID START-TIME`.
        let traffic = stateDir + "/traffic"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: traffic)) ?? [] {
            guard let text = try? String(contentsOfFile: "\(traffic)/\(name)/proxy.pid", encoding: .utf8) else { continue }
            let parts = text.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            if parts.count == 2, let pid = Int32(parts[0]), let start = UInt64(parts[1]) { seenPids[pid] = seenPids[pid] ?? start }
        }
    }

    /// The proxy's servers of `app` (the one Rewind started): name → weight, through its admin socket.
    public func proxyWeights(_ app: String) throws -> [String: Int] {
        let servers = try HAProxyRuntime(socket: "\(stateDir)/traffic/\(app)/haproxy.sock").servers(backend: app)
        var weights: [String: Int] = [:]
        // A server in maintenance (on its way out) gets nothing.
        for server in servers { weights[server.name] = server.inMaintenance ? 0 : server.weight }
        return weights
    }

    /// Stops everything and deletes the directory.
    public func close() {
        stop()
        collectPids()
        for (pid, start) in seenPids where pid > 1 && ProcessProbe.startTime(pid) == start {
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
        }
        // Whatever this harness's reconcilers started carries HARNESS_DIR=<root>: one left running here
        // escaped both (a stop mid-start; see the stop-33 note), and is said on stderr before it is killed.
        for pid in Self.processes(withEnvironment: "HARNESS_DIR=\(root)") where pid != getpid() {
            FileHandle.standardError.write(Data("warning: a process of \(root) outlived its reconciler (pid \(pid)); killing it\n".utf8))
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
        }
        try? FileManager.default.removeItem(atPath: root)
    }
}

/// Runs `body` with a harness, closing it afterwards whatever happens.
public func withReconciler<T>(apps: [HarnessApp], policy: String? = nil, _ body: (ReconcilerHarness) throws -> T) throws -> T {
    let harness = try policy.map { try ReconcilerHarness(apps: apps, policy: $0) } ?? ReconcilerHarness(apps: apps)
    defer { harness.close() }
    return try body(harness)
}

/// An app.yaml for the demo service on the process platform.
public func demoServiceYAML(version: String, args: [String] = [], artifact: String? = nil, healthTimeout: String = "10s", port: Int? = nil) -> String {
    let quoted = args.map { "\"\($0)\"" }.joined(separator: ", ")
    var yaml = "platform: process\nversion: \"\(version)\"\nprocess:\n  command: rewind-demo-service\n  args: [\(quoted)]\n"
    if let port { yaml += "  port: \(port)\n" }
    yaml += "health:\n  http: /health\n  timeout: \(healthTimeout)\n  interval: 200ms\n"
    if let artifact { yaml += "artifact:\n  path: \(artifact)\n" }
    return yaml
}

/// A script from fixtures/exec-scripts/.
public func execScript(_ name: String) throws -> String {
    try String(contentsOfFile: packageRoot + "/fixtures/exec-scripts/" + name, encoding: .utf8)
}

/// An app.yaml for the exec platform running fixture scripts.
public func execAppYAML(version: String, apply: String = "./apply.sh", health: String? = "./health.sh", observe: String? = nil, timeout: String = "10s", healthTimeout: String = "2s") -> String {
    var yaml = "platform: exec\nversion: \"\(version)\"\nexec:\n  apply: \(apply)\n  timeout: \(timeout)\n"
    if let health { yaml += "  health: \(health)\n" }
    if let observe { yaml += "  observe: \(observe)\n" }
    yaml += "health:\n  timeout: \(healthTimeout)\n  interval: 100ms\n"
    return yaml
}

/// An exec app with every fixture script in its directory.
public func execApp(_ name: String, version: String, dependsOn: [String] = [], apply: String = "./apply.sh", observe: String? = nil, timeout: String = "10s") throws -> HarnessApp {
    var files: [String: String] = [:]
    for script in ["apply.sh", "apply-fails.sh", "apply-hangs.sh", "apply-slow.sh", "health.sh", "observe.sh"] { files[script] = try execScript(script) }
    return HarnessApp(name, dependsOn: dependsOn, appYAML: execAppYAML(version: version, apply: apply, observe: observe, timeout: timeout), files: files)
}

/// Processes as the tests see them. A process that has ended but is not
/// reaped yet (a zombie) runs nothing: on a host whose PID 1 reaps late
/// (this VM's does), an orphan that ended stays a zombie for a while, and
/// `kill(pid, 0)` still succeeds for it.
public enum TestProcess {
    /// True when `pid` runs (not ended, not a zombie).
    public static func runs(_ pid: Int32) -> Bool { ProcessProbe.isAlive(pid) }

    /// `pid`'s state, parent and command line, for a failure message.
    public static func describe(_ pid: Int32) -> String {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return "pid \(pid): gone" }
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        let cmdline = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8))?.replacingOccurrences(of: "\0", with: " ") ?? ""
        return "pid \(pid): state \(fields.first ?? "?"), parent \(fields.count > 1 ? String(fields[1]) : "?"), command '\(cmdline)'"
    }
}

extension TestProcess {
    /// Waits until none of `pids` runs; on timeout the error says what each
    /// one is then, and `context` (a reconciler's log).
    public static func waitUntilEnded(_ pids: [Int32], _ what: String, timeout: Double = 15, context: () -> String = { "" }) throws {
        do {
            try waitFor(what, timeout: timeout) { pids.allSatisfy { !runs($0) } }
        } catch {
            throw TestFailure("\(error): \(pids.map(describe).joined(separator: "; "))\n\(context().suffix(2_000))")
        }
    }
}
