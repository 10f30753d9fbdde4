import DeployModel
import SystemSupport

/// The `exec` platform: the user's own apply, observe and health commands
/// (wrangler, helm, kubectl, systemctl...). Each runs in a directory holding
/// the app's files at the commit, with REWIND_APP, REWIND_VERSION,
/// REWIND_COMMIT, REWIND_TREE and REWIND_APP_DIR set.
///
/// - apply must exit 0 within `exec.timeout`;
/// - health (`exec.health`, else `health.command`) is retried until it exits
///   0, up to `health.timeout`;
/// - observe, when given, runs on every full pass: it must exit 0 and print
///   the version label or the tree id that is deployed; anything else is
///   drift, and Rewind applies again.
public struct ExecPlatform {
    let commands: CommandRunner

    /// A driver that runs commands with `environment` plus the app's variables.
    public init(environment: [String: String], searchPath: [String]) {
        commands = CommandRunner(baseEnvironment: environment, searchPath: searchPath)
    }

    public func start(_ deployment: Deployment, journal: (Instance) throws -> Void) throws -> Instance {
        // The running apply is journaled, so that a reconciler killed
        // meanwhile stops it on restart before applying again.
        let applying = try startInBackground(deployment, journal: journal)
        var pause: Int64 = 1
        while true {
            if let instance = try poll(applying) { return instance }
            Clock.sleep(milliseconds: pause)
            pause = min(pause * 2, 20)
        }
    }

    /// Starts the apply command without waiting for it, so that several
    /// apps' applies can run at once; the intent and the pid are journaled.
    public func startInBackground(_ deployment: Deployment, journal: (Instance) throws -> Void) throws -> PendingStart {
        guard let exec = deployment.spec.exec else { throw PlatformError("\(deployment.app) has no exec settings") }
        try journal(Instance.exec(deployment))
        let (pid, output) = try commands.launch(exec.apply, deployment, what: "apply")
        try? journal(Instance.exec(deployment, applyPid: pid))
        return PendingStart(pid: pid, output: output, deadline: Clock.monotonicMilliseconds() + exec.timeout.milliseconds, deployment: deployment)
    }

    /// Nil while the apply runs; the instance once it succeeded; throws when
    /// it failed or timed out (and is then stopped).
    public func poll(_ apply: PendingStart) throws -> Instance? {
        if let started = apply.started { return started }
        let deployment = apply.deployment
        guard let pid = apply.pid else { return nil }
        guard let status = Spawn.poll(pid) else {
            guard Clock.monotonicMilliseconds() >= apply.deadline else { return nil }
            _ = Spawn.stop(pid, graceMilliseconds: 2_000)
            let outcome = commands.collect(deployment, what: "apply", output: apply.output, status: nil)
            let timeout = deployment.spec.exec?.timeout ?? Duration(milliseconds: 300_000)
            throw PlatformError("apply of \(deployment.app) \(deployment.spec.version) timed out after \(timeout)", output: outcome.output)
        }
        let outcome = commands.collect(deployment, what: "apply", output: apply.output, status: status)
        guard status.succeeded else {
            throw PlatformError("apply of \(deployment.app) \(deployment.spec.version) \(status)", output: outcome.output)
        }
        return Instance.exec(deployment)
    }

    public func healthProblem(_ instance: Instance, _ deployment: Deployment) -> String? {
        guard let command = deployment.spec.exec?.health ?? deployment.spec.health?.command else { return nil }
        let timeout = deployment.spec.exec?.timeout ?? Duration(milliseconds: 60_000)
        do {
            let outcome = try commands.run(command, deployment, what: "health", timeout: timeout)
            guard let status = outcome.status else { return "health command timed out after \(timeout)" }
            return status.succeeded ? nil : "health command \(status)\(Self.lastLine(outcome.output))"
        } catch {
            return "\(error)"
        }
    }

    public func observe(_ instance: Instance, _ deployment: Deployment, thorough: Bool) -> Observation {
        guard thorough, let exec = deployment.spec.exec, let observe = exec.observe else { return .running }
        do {
            let outcome = try commands.run(observe, deployment, what: "observe", timeout: exec.timeout)
            guard let status = outcome.status else { return .drifted("observe command timed out") }
            guard status.succeeded else { return .drifted("observe command \(status)\(Self.lastLine(outcome.output))") }
            let seen = outcome.output.trimmingTrailingNewlines
            let words = Set(seen.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init))
            if words.contains(deployment.spec.version) || words.contains(deployment.tree.hex) { return .running }
            return .drifted("observe reports '\(seen.prefix(80))', expected \(deployment.spec.version)")
        } catch {
            return .drifted("\(error)")
        }
    }

    /// An applied exec app is not stopped (its apply put it somewhere
    /// else); an apply command still running (its pid is recorded while it
    /// runs) is, if that pid is still its process.
    public func stop(_ instance: Instance) {
        guard let pid = instance.pid, let started = ProcessProbe.startTime(pid), instance.pidStartTime == nil || instance.pidStartTime == started else { return }
        _ = Spawn.stop(pid, graceMilliseconds: 2_000)
    }

    /// Stops an apply command that is no longer wanted.
    public func cancel(_ pending: PendingStart) {
        if let pid = pending.pid { _ = Spawn.stop(pid, graceMilliseconds: 2_000) }
    }

    /// An exec app runs where its apply put it: nothing to look for after a restart.
    public func isRunning(_ instance: Instance) -> Bool { true }

    /// An apply replaces what runs in place; nothing is stopped first.
    public func canOverlap(_ deployment: Deployment, with current: Instance) -> Bool { true }

    public static func lastLine(_ output: String) -> String {
        guard let line = output.split(separator: "\n").last else { return "" }
        return ": \(line.prefix(200))"
    }
}

extension Instance {
    /// An exec app's instance; while its apply runs, the apply's pid.
    static func exec(_ deployment: Deployment, applyPid: Int32? = nil) -> Instance {
        var instance = Instance(tree: deployment.tree, commit: deployment.commit, version: deployment.spec.version,
                                pid: applyPid, pidStartTime: applyPid.flatMap(ProcessProbe.startTime), startedAt: Clock.wallMilliseconds())
        instance.platform = .exec
        return instance
    }
}
