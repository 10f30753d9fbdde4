import DeployModel
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// The `process` platform: Rewind starts and supervises local processes.
///
/// Each process runs in its own session with the app's files as working
/// directory (or `process.workingDirectory`), its output appended to
/// `<state>/logs/<app>.log`, and PORT set to a fixed or assigned port
/// (`$PORT` in args is replaced too). Health is an HTTP GET of `health.http`
/// on that port (2xx), or `health.command` exiting 0; with neither, a process
/// still running after a second is healthy. Stopping sends SIGTERM to the
/// process group, then SIGKILL after the grace period.
public struct ProcessPlatform {
    let commands: CommandRunner
    /// How long a stopped process gets between SIGTERM and SIGKILL.
    public var graceMilliseconds: Int64 = 5_000

    /// A driver whose processes get `environment` plus the app's variables;
    /// commands given by name are looked up in `searchPath`, then $PATH.
    public init(environment: [String: String], searchPath: [String]) {
        commands = CommandRunner(baseEnvironment: environment, searchPath: searchPath)
    }

    public func start(_ deployment: Deployment, journal: (Instance) throws -> Void) throws -> Instance {
        guard let settings = deployment.spec.process else { throw PlatformError("\(deployment.app) has no process settings") }
        guard let port = settings.port ?? Loopback.freeAppPort() else { throw PlatformError("no free port on 127.0.0.1 for \(deployment.app)") }
        let portText = String(port)
        let arguments = settings.args.map { $0.replacingPort(portText) }
        var extra = settings.env.mapValues { $0.replacingPort(portText) }
        extra["PORT"] = portText
        // The intent first: what is about to start, and the token that finds it.
        let launch = ProcessProbe.launchToken()
        extra[ProcessProbe.launchVariable] = launch
        var intent = Instance(tree: deployment.tree, commit: deployment.commit, version: deployment.spec.version,
                              port: port, startedAt: Clock.wallMilliseconds())
        intent.launch = launch
        intent.platform = .process
        try journal(intent)
        var directory = deployment.files
        if let wd = settings.workingDirectory { directory = wd.hasPrefix("/") ? wd : "\(deployment.files)/\(wd)" }
        var options = SpawnOptions(program: commands.resolveRelative(settings.command, deployment), arguments: arguments,
                                   environment: commands.environment(deployment, extra: extra), directory: directory, outputFile: deployment.logFile)
        options.searchPath = commands.searchPath
        let pid: pid_t
        do {
            pid = try Spawn.start(options)
        } catch {
            throw PlatformError("cannot start \(deployment.app) \(deployment.spec.version): \(error)")
        }
        var instance = Instance(tree: deployment.tree, commit: deployment.commit, version: deployment.spec.version,
                                pid: pid, pidStartTime: ProcessProbe.startTime(pid), port: port, startedAt: Clock.wallMilliseconds())
        instance.launch = launch
        instance.platform = .process
        TestHook.killPoint("after-spawn")
        do {
            try journal(instance)
        } catch {
            // Never leave a process running that the state does not name.
            Spawn.stop(pid, graceMilliseconds: graceMilliseconds)
            throw error
        }
        return instance
    }

    public func healthProblem(_ instance: Instance, _ deployment: Deployment) -> String? {
        if case .exited(let why) = observe(instance, deployment, thorough: false) { return why }
        let health = deployment.spec.health
        if let path = health?.http {
            return HTTPHealth.problem(port: instance.port, path: path)
        }
        if let command = health?.command {
            do {
                let outcome = try commands.run(command, deployment, what: "health", timeout: health?.timeout ?? Duration(milliseconds: 30_000),
                                               extra: ["PORT": instance.port.map(String.init) ?? ""])
                guard let status = outcome.status else { return "health command timed out" }
                return status.succeeded ? nil : "health command \(status)\(ExecPlatform.lastLine(outcome.output))"
            } catch {
                return "\(error)"
            }
        }
        return Clock.wallMilliseconds() - instance.startedAt >= 1_000 ? nil : "starting"
    }

    public func observe(_ instance: Instance, _ deployment: Deployment, thorough: Bool) -> Observation {
        guard let pid = instance.pid else { return .exited("no process recorded") }
        if let status = Spawn.poll(pid) {
            return .exited(status == .exited(-1) ? "process \(pid) is gone" : "process \(pid) \(status)")
        }
        if let recorded = instance.pidStartTime, let actual = ProcessProbe.startTime(pid), recorded != actual {
            return .exited("process \(pid) was replaced by another program")
        }
        return .running
    }

    public func stop(_ instance: Instance) {
        guard let pid = instance.pid else {
            // Started, but killed before the pid was recorded: find it by its launch token.
            for orphan in instance.launch.map(ProcessProbe.processes(withLaunch:)) ?? [] { Spawn.stop(orphan, graceMilliseconds: graceMilliseconds) }
            return
        }
        if let ended = Spawn.poll(pid) {
            // Our child, just reaped: its group may still hold its children.
            if ended != .exited(-1) { kill(-pid, SIGKILL) }
            return
        }
        guard isStill(instance) else { return }
        Spawn.stop(pid, graceMilliseconds: graceMilliseconds)
    }

    /// Tells an instance's process group to stop, without waiting for it:
    /// several old versions retire at once, and `stop` then reaps each.
    public func requestStop(_ instance: Instance) {
        guard let pid = instance.pid, isStill(instance) else { return }
        kill(-pid, SIGTERM)
    }

    /// True when the instance's process still runs (a reconciler restarted and adopts it).
    public func isRunning(_ instance: Instance) -> Bool {
        guard let pid = instance.pid else { return false }
        return ProcessProbe.isAlive(pid) && ProcessProbe.startTime(pid) == instance.pidStartTime
    }

    /// True while the instance's pid is still its process: never signal a
    /// pid that now belongs to someone else.
    private func isStill(_ instance: Instance) -> Bool {
        guard let pid = instance.pid, let actual = ProcessProbe.startTime(pid) else { return false }
        return instance.pidStartTime == nil || instance.pidStartTime == actual
    }

    public func canOverlap(_ deployment: Deployment, with current: Instance) -> Bool {
        // Two versions can serve side by side unless both want the same fixed port.
        guard let fixed = deployment.spec.process?.port else { return true }
        return current.port != fixed
    }
}

extension String {
    func replacingPort(_ port: String) -> String {
        guard contains("$") else { return self }
        return replacing("${PORT}", with: port).replacing("$PORT", with: port)
    }
}

/// `health.http`: a GET of `path` on 127.0.0.1:`port`, healthy on 2xx.
public enum HTTPHealth {
    /// Nil when healthy, else why not.
    public static func problem(port: Int?, path: String) -> String? {
        guard let port else { return "no port to check \(path) on" }
        do {
            let response = try Loopback.get(port: port, path: path, timeoutMilliseconds: 2_000)
            return (200..<300).contains(response.status) ? nil : "GET \(path) answered \(response.status)"
        } catch {
            return "GET \(path): \(error)"
        }
    }
}
