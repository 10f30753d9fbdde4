import DeployModel
import GitKit
import Platforms
import ReconcilerStatus
import Rollback

/// The gates of a pass, in order.
enum Gate {
    /// Step 1: the branch can be read.
    case observe
    /// Step 2: the tip descends from the last commit applied.
    case ancestry
    /// Step 3: the tip's desired state is valid as a whole.
    case validation
    /// Step 3b: the tip's commits are signed as the policy requires.
    case signature
}

/// What a gate of a pass says: go on, or why the pass stops at it.
enum GateResult: Equatable {
    case proceed
    /// A human must act first (a rewritten history); nothing is applied until then.
    case halted(String)
    /// The tip is refused as a whole (invalid, unsigned); the last valid state stays.
    case refused(RefusedCommit)
    /// The repository could not be read; a pass tries again after a
    /// delay that grows with each failure in a row (`Reconciler.retryBackoff`).
    case retry(String)
}

/// What a step found out. Steps return these (in `Step`s, Record.swift);
/// `reduce` alone turns them into the next state and its effects (notes,
/// metrics, notifications, log lines, the proxy following), and `carryOut`
/// saves that state and runs the effects. Grouped by the step that finds them.
enum Outcome {
    /// What a gate of the pass said about the tip (`apps`: the apps a refusal concerns).
    case gate(Gate, GateResult, tip: OID?, apps: String)
    case release(ReleaseOutcome)
    case pin(PinOutcome)
    case rollback(RollbackOutcome)
    case supervision(SupervisionOutcome)
    case traffic(TrafficOutcome)
    /// Outcome lines for a commit's notes (an abort, an automatic rollback's effects).
    case noted([NoteRecorder.Entry], on: OID)
}

/// Deploys: a release begins, runs, fails or is stopped.
enum ReleaseOutcome {
    /// A deploy begins: the release that ran healthy until now is the one to return to.
    case deploying(app: String, lastGood: KnownGood?)
    /// What was started and is not yet confirmed (nil: nothing is).
    case pending(app: String, Instance?)
    /// A new instance is healthy: it replaces the old one.
    case healthy(PlannedStep, Instance, Deployment, release: OID, tookMilliseconds: Int64, rollout: Rollout? = nil)
    /// A release did not make it (`version`: its app.yaml's, when it has one).
    case failed(Failure, tree: OID, version: String?)
    /// A deploy the new tip no longer wants was stopped.
    case abandoned(app: String, version: String)
    /// The platform could not be reached: nothing was started, and the
    /// release is tried again soon (not failed).
    case deferred(app: String, why: String)
    /// An instance was stopped (to make room, or because its app is gone).
    case stopped(app: String, Instance)
    /// An app left rewind.yaml.
    case removed(app: String)
    /// The desired tree moved past a failed one: the failure is forgotten.
    case failureForgotten(app: String)
    /// A rollback commit runs and is healthy (the tree was running already).
    case running(app: String, release: OID)
    /// A staged rollout across hosts holds the app's new release here (nil:
    /// no longer); `skipped`: hosts it went on without (`onTimeout: proceed`).
    case staged(app: String, StageHold?, skipped: [String])
    /// A change window holds the app's new release (nil: no longer).
    case frozen(app: String, String?)
}

/// Pins, as planning finds them.
enum PinOutcome {
    /// The app's pin (nil: none) as the tip has it.
    case set(app: String, tree: OID?)
    /// A tip changed an app its pin holds: not applied.
    case held(app: String, pinTree: OID, version: String, tip: OID)
    /// The pin names a tree with no valid app.yaml.
    case invalid(app: String, String)
}

/// A failure's way through the policy, and a rollback's verification.
enum RollbackOutcome {
    /// A failure goes to the policy: its timeline starts.
    case failureNoticed(Failure)
    /// The policy's decision on a failure is made (committed, done, or escalated).
    case decided(Failure)
    /// The rollback commit written for a failure (its effects: `RollbackEffects`).
    case rolledBack(Failure, commit: OID)
    /// Not rolled back: a human takes over.
    case escalated(Failure, String)
    /// A healthy rollback waits for the triggers' queries to be back under their thresholds.
    case awaitingTriggers(app: String, rollback: OID)
    /// A rollback is verified: the app is healthy again (`what`).
    case verified(app: String, Commit, what: String)
    /// A stage of a coordinated rollback, noted on the rollback commit.
    case sequence(app: String, NoteRecorder.Entry, on: OID)
    /// A `notify` trigger breaches on the app's release: a human is offered the rollback (once per breach).
    case suggested(app: String, release: OID, reason: String)
}

/// Supervision of running processes.
enum SupervisionOutcome {
    /// A supervised process ended and restarts after `backoff`.
    case restarting(app: String, why: String, backoffMilliseconds: Int64, exits: [Int64])
    /// It ended too often within its soak window (a `failed` follows).
    case crashLooping(app: String, exits: [Int64])
    case restarted(app: String, Instance)
    case restartFailed(app: String, String, backoffMilliseconds: Int64)
    /// A process recorded by an earlier reconciler is gone: restarted by
    /// supervision, or (`reconcile --once`, which does not supervise)
    /// started again by the pass, as a deploy.
    case lost(app: String, Instance, restart: Bool)
    /// A supervision probe: nil when healthy, else the problem.
    case probed(app: String, Instance, problem: String?)
}

/// Traffic through the app's proxy, and rollouts.
enum TrafficOutcome {
    /// The traffic settings a deploy of the app starts with.
    case settings(app: String, TrafficSettings?)
    /// A rollout moved (a step, a pause) or ended (nil: promoted), with its note.
    case rollout(app: String, Rollout?, note: NoteRecorder.Entry?, on: OID?)
    /// A rollout ended with the stable version serving everything again.
    case aborted(app: String, stable: Instance, stableRelease: OID?)
    /// The proxy sends the app nothing (nil: traffic flows again).
    case held(app: String, String?)
    /// The proxy could not be synced (nil: it is again).
    case problem(app: String, String?)
}
