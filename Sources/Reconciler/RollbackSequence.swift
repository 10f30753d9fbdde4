import DeployModel
import GitKit
import Platforms
import ReconcilerStatus
import Rollback
import SystemSupport

/// The coordinated rollback of seed 002 (stop traffic, reverse the
/// migrations, deploy the old code, start traffic), as phases of a
/// rollback's deploy: `hooks.preRollback`, then traffic drained (the
/// proxy's weights to 0; an app without a proxy is stopped), then the
/// `down` commands of the migrations the target lacks, newest first, in the
/// target's files. Each stage is a note on the rollback commit; the first
/// failure stops it, and traffic stays drained. `finishSequence`
/// (DeployMachine.swift) notes the restore and runs `hooks.postRollback`.
extension DeployMachine {
    mutating func sequencePlanned(_ plan: SequencePlan?) -> Transition {
        guard let plan else { return beforeStart([]) }
        sequence = plan
        if let pre = plan.preRollback { return next(.sequenceHook, .runHook(pre, what: "preRollback")) }
        return drain([])
    }

    mutating func preRollbackRan(_ problem: String?) -> Transition {
        guard let problem else { return drain([stage([("stage", "hook"), ("name", "preRollback"), ("result", "ok")])]) }
        return failed("hooks.preRollback failed: \(problem); nothing was drained or stopped",
                      [stage([("stage", "hook"), ("name", "preRollback"), ("result", "failed"), ("reason", problem)])])
    }

    /// Behind a proxy, the proxy follows the state: weights to 0.
    private mutating func drain(_ outcomes: [Outcome]) -> Transition {
        guard let current else { return undo(0, outcomes) }
        guard step.spec.traffic != nil else { return next(.drainingByStop, .stop(current, because: nil), outcomes) }
        return next(.draining, .checkDrain, outcomes + [.traffic(.held(app: name, "coordinated rollback \(current.version) → \(step.spec.version)"))])
    }

    mutating func drained(_ app: AppState?) -> Transition {
        if let problem = app?.trafficError { return failed("cannot drain traffic: \(problem)") }
        return undo(0, [stage([("stage", "drain"), ("version", current?.version ?? "")])])
    }

    mutating func drainedByStop(_ old: Instance?) -> Transition {
        let version = current?.version ?? ""
        current = nil
        return undo(0, stopped(old) + [stage([("stage", "drain"), ("version", version)])])
    }

    private mutating func undo(_ index: Int, _ outcomes: [Outcome]) -> Transition {
        guard let downs = sequence?.downs, index < downs.count else { return beforeStart(outcomes) }
        return next(.undoing(index), .runDown(downs[index].command), outcomes)
    }

    mutating func undone(_ index: Int, _ problem: String?) -> Transition {
        let id = sequence?.downs[index].id ?? ""
        guard let problem else { return undo(index + 1, [stage([("stage", "down"), ("id", id), ("result", "ok")])]) }
        return failed("the down command of migration \(id) failed: \(problem); traffic stays drained, a human must finish the rollback",
                      [stage([("stage", "down"), ("id", id), ("result", "failed"), ("reason", problem)])])
    }

    mutating func postRollbackRan(_ problem: String?) -> Transition {
        let result = problem.map { [("result", "failed"), ("reason", $0)] } ?? [("result", "ok")]
        return next(.verifying, .verify, [stage([("stage", "hook"), ("name", "postRollback")] + result)])
    }
}

extension Reconciler {
    /// The running version's migrations the target lacks (with a down
    /// command) and the target's hooks; nil when there is nothing to run.
    func sequencePlan(_ step: PlannedStep, current: Instance) -> SequencePlan? {
        let currentSpec = deployments[current.tree]?.spec ?? repo.appSpec(appTree: current.tree, app: step.ref)
        let downs = (currentSpec?.migrationsUndone(goingTo: step.spec) ?? []).compactMap { migration in migration.down.map { (id: migration.id, command: $0) } }
        let hooks = step.spec.hooks
        guard !downs.isEmpty || hooks != nil else { return nil }
        logger.notice("\(step.ref.name): coordinated rollback \(current.version) → \(step.spec.version): \(downs.count) down command(s)")
        return SequencePlan(preRollback: hooks?.preRollback, postRollback: hooks?.postRollback, downs: downs)
    }

    /// A `down` command: in a one-off container of the target's image on the
    /// container platform, else like a hook.
    func runDown(_ command: [String], _ deployment: Deployment) -> String? {
        if let runner = drivers[deployment.spec.platform] as? any OneOffRunner {
            return runner.runOnce(command, deployment, what: "down", timeoutMilliseconds: 300_000)
        }
        return runStageCommand(command, deployment, what: "down")
    }

    /// Runs a hook or down command in the target's files; nil when it exited 0.
    func runStageCommand(_ command: [String], _ deployment: Deployment, what: String) -> String? {
        do {
            let outcome = try commands.run(command, deployment, what: what, timeout: Duration(milliseconds: 300_000))
            guard let status = outcome.status else { return "\(what) command timed out after 5 minutes" }
            return status.succeeded ? nil : "\(what) command \(status)\(ExecPlatform.lastLine(outcome.output))"
        } catch {
            return "\(error)"
        }
    }
}
