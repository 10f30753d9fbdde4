import DeployModel
import GitKit
import Platforms
import ReconcilerStatus
import Rollback
import SystemSupport

/// The coordinated rollback sequence of seed 002, run by `begin` and
/// `finish` (Apply.swift) for a rollback across reversible migrations.
extension Reconciler {
    /// A coordinated rollback across reversible migrations (seed 002: stop
    /// traffic, reverse the migrations, deploy the old code, start traffic):
    /// `hooks.preRollback`, then traffic drained (the proxy's weights to 0;
    /// an app without a proxy is stopped), then the `down` commands of the
    /// migrations the target lacks, newest first, in the target's files.
    /// Each stage is a note on the rollback commit; the first failure stops
    /// it (traffic stays drained). Returns whether it ran, and the failure.
    func rollbackSequence(_ step: PlannedStep, _ deployment: Deployment, current: Instance, release: OID) -> (ran: Bool, failure: Failure?) {
        let name = step.ref.name
        let currentSpec = deployments[current.tree]?.spec ?? repo.appSpec(appTree: current.tree, app: step.ref)
        let downs = (currentSpec?.migrationsUndone(goingTo: step.spec) ?? []).filter { $0.down != nil }
        let hooks = step.spec.hooks
        guard !downs.isEmpty || hooks != nil else { return (false, nil) }
        logger.notice("\(name): coordinated rollback \(current.version) → \(step.spec.version): \(downs.count) down command(s)")
        if let pre = hooks?.preRollback {
            if let problem = runStageCommand(pre, deployment, what: "preRollback") {
                stage(name, release, [("stage", "hook"), ("name", "preRollback"), ("result", "failed"), ("reason", problem)])
                return (true, fail(name, release: release, tree: step.tree, reason: "hooks.preRollback failed: \(problem); nothing was drained or stopped"))
            }
            stage(name, release, [("stage", "hook"), ("name", "preRollback"), ("result", "ok")])
        }
        if step.spec.traffic != nil {
            // The proxy follows the state: weights to 0.
            record(.traffic(.held(app: name, "coordinated rollback \(current.version) → \(step.spec.version)")))
            if let problem = state.apps[name]?.trafficError {
                return (true, fail(name, release: release, tree: step.tree, reason: "cannot drain traffic: \(problem)"))
            }
        } else {
            stop(current, of: name)
        }
        stage(name, release, [("stage", "drain"), ("version", current.version)])
        for migration in downs {
            guard let down = migration.down else { continue }
            if let problem = runDown(down, deployment) {
                stage(name, release, [("stage", "down"), ("id", migration.id), ("result", "failed"), ("reason", problem)])
                return (true, fail(name, release: release, tree: step.tree,
                                   reason: "the down command of migration \(migration.id) failed: \(problem); traffic stays drained, a human must finish the rollback"))
            }
            stage(name, release, [("stage", "down"), ("id", migration.id), ("result", "ok")])
        }
        return (true, nil)
    }

    /// The coordinated rollback's end: the old version is healthy and
    /// serves again (traffic restored when it became healthy), then `hooks.postRollback`.
    func finishRollbackSequence(_ step: PlannedStep, _ deployment: Deployment, release: OID) {
        let name = step.ref.name
        stage(name, release, [("stage", "start"), ("version", step.spec.version), ("result", "healthy")])
        stage(name, release, [("stage", "restore"), ("version", step.spec.version)])
        guard let post = step.spec.hooks?.postRollback else { return }
        if let problem = runStageCommand(post, deployment, what: "postRollback") {
            logger.warning("\(name): hooks.postRollback failed: \(problem) (the rollback itself is done)")
            stage(name, release, [("stage", "hook"), ("name", "postRollback"), ("result", "failed"), ("reason", problem)])
        } else {
            stage(name, release, [("stage", "hook"), ("name", "postRollback"), ("result", "ok")])
        }
    }

    private func stage(_ name: String, _ release: OID, _ fields: [(String, String)]) {
        record(.rollback(.sequence(app: name, NoteRecorder.Entry(outcome: .sequence, app: name, fields: fields, distinctFields: 2), on: release)))
    }

    /// A `down` command: in a one-off container of the target's image on the
    /// container platform, else like a hook.
    private func runDown(_ command: [String], _ deployment: Deployment) -> String? {
        if let runner = drivers[deployment.spec.platform] as? any OneOffRunner {
            return runner.runOnce(command, deployment, what: "down", timeoutMilliseconds: 300_000)
        }
        return runStageCommand(command, deployment, what: "down")
    }

    /// Runs a hook or down command in the target's files; nil when it exited 0.
    private func runStageCommand(_ command: [String], _ deployment: Deployment, what: String) -> String? {
        do {
            let outcome = try commands.run(command, deployment, what: what, timeout: Duration(milliseconds: 300_000))
            guard let status = outcome.status else { return "\(what) command timed out after 5 minutes" }
            return status.succeeded ? nil : "\(what) command \(status)\(ExecPlatform.lastLine(outcome.output))"
        } catch {
            return "\(error)"
        }
    }
}
