import DeployModel
import GitKit
import Platforms

/// What a deploy asks the reconciler to do next.
enum DeployAction {
    /// The step's tree is the rollout's stable version: traffic goes back to it (`.acted`).
    case switchBack
    /// A newer release replaces the rollout under way (`.acted`).
    case cancelRollout(String)
    /// Fetch the artifact and unpack the files (`.prepared` or `.failed`).
    case prepare
    /// Route the app's proxy with its new settings, forced (`.routed`).
    case route
    /// A coordinated rollback's commands, from the running version's app.yaml (`.sequencePlanned`).
    case planSequence(Instance)
    /// A hook of a coordinated rollback (`.ran`).
    case runHook([String], what: String)
    /// A migration's down command, in the target's files or image (`.ran`).
    case runDown([String])
    /// Nothing: the proxy followed the drain just recorded; the machine looks at how it went (`.acted`).
    case checkDrain
    /// Stop an old instance (`.stopped`); `because` says why first.
    case stop(Instance, because: String?)
    /// Start the new instance (`.started`, `.startedInBackground`, `.notStarted`, `.unavailable`, `.failed`).
    case start
    /// Has the background start ended (`.polled` or `.failed`)?
    case poll(PendingStart)
    /// One health probe (`.probed`).
    case probe(Instance)
    /// Stop the new instance, or cancel its start (`.newStopped`).
    case stopNew
    /// Stop the old instance once its proxy let go of it (`.stopped`).
    case retire(Instance)
    /// The app has no proxy any more: stop it (`.acted`).
    case leaveProxy
    /// Is this release a rollback that is now verified (`.verification`)?
    case verify
    /// Nothing until the next event from outside (`look`, `proceed`, `abandon`).
    case pause
    /// The deploy is over: the failure, if it failed.
    case done(Failure?)
    /// An event the phase does not expect (a defect): the deploy stops here.
    case unexpected(String)
}

/// What the last action came to, or what the reconciler tells a deploy.
enum DeployEvent {
    case begin
    /// Time to look at a started deploy again.
    case look(stopRequested: Bool)
    /// Confirm a concluded deploy.
    case proceed
    /// The tip no longer wants this tree.
    case abandon
    case acted(Failure?)
    case prepared(Deployment, overlap: Bool)
    /// The action failed: the release failed for this reason.
    case failed(String)
    case routed(problem: String?)
    /// Nil: nothing to run (no hooks, no down commands).
    case sequencePlanned(SequencePlan?)
    /// A command ended: nil when it exited 0, else the problem.
    case ran(problem: String?)
    /// An old instance was stopped (nil: no driver could stop it).
    case stopped(Instance?)
    case started(Instance, logStart: Int)
    case startedInBackground(PendingStart, logStart: Int)
    /// The state could not journal the start: nothing runs.
    case notStarted
    /// The platform could not be reached.
    case unavailable(String)
    case polled(Instance?)
    /// Nil while the instance may still become healthy; else nil inside when it is, or the problem.
    case probed(String??)
    case newStopped(stopRequested: Bool)
    case verification(Outcome?)
}

/// A coordinated rollback's commands (seed 002), from the running version's app.yaml.
struct SequencePlan {
    var preRollback: [String]?
    var postRollback: [String]?
    /// The down commands of the migrations the target lacks, newest first.
    var downs: [(id: String, command: [String])]
}
