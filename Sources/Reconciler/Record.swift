import DeployModel
import GitKit
import Platforms
import ReconcilerStatus
import Rollback
import SystemSupport

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

/// What a step found out about one app. Steps return these (and act on the
/// platform); `record` alone turns them into the state file, notes,
/// metrics, notifications and log lines, which is what status shows.
enum Outcome {
    /// A deploy begins: the release that ran healthy until now is the one to return to.
    case deploying(app: String, lastGood: KnownGood?)
    /// What was started and is not yet confirmed (nil: nothing is).
    case pending(app: String, Instance?)
    /// A new instance is healthy: it replaces the old one.
    case healthy(PlannedStep, Instance, Deployment, release: OID, tookMilliseconds: Int64, rollout: Rollout? = nil)
    /// A release did not make it.
    case failed(Failure, tree: OID)
    /// A deploy the new tip no longer wants was stopped.
    case abandoned(app: String, version: String)
    /// An instance was stopped (to make room, or because its app is gone).
    case stopped(app: String, Instance)
    /// An app left rewind.yaml.
    case removed(app: String)
    /// The desired tree moved past a failed one: the failure is forgotten.
    case failureForgotten(app: String)
    /// The app's pin (nil: none) as the tip has it.
    case pin(app: String, tree: String?)
    /// A tip changed an app its pin holds: not applied.
    case held(app: String, pinTree: OID, version: String, tip: OID)
    /// The pin names a tree with no valid app.yaml.
    case pinInvalid(app: String, String)
    /// A rollback commit runs and is healthy (the tree was running already).
    case running(app: String, release: OID)
    /// A healthy rollback waits for the triggers' queries to be back under their thresholds.
    case awaitingTriggers(app: String, rollback: OID)
    /// A rollback is verified: the app is healthy again (`what`).
    case verified(app: String, Commit, what: String)
    /// A failure goes to the policy: its timeline starts.
    case failureNoticed(Failure)
    /// The policy's decision on a failure is made (committed, done, or escalated).
    case decided(Failure)
    /// The rollback commit written for a failure (its effects: `RollbackEffects`).
    case rolledBack(Failure, commit: OID)
    /// Not rolled back: a human takes over.
    case escalated(Failure, String)
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
    /// What a gate of the pass said about the tip.
    case gate(Gate, GateResult, tip: OID?)
    /// The traffic settings a deploy of the app starts with.
    case traffic(app: String, TrafficSettings?)
    /// A rollout moved (a step, a pause) or ended (nil: promoted), with its note.
    case rollout(app: String, Rollout?, note: NoteRecorder.Entry?, on: OID?)
    /// A rollout ended with the stable version serving everything again.
    case aborted(app: String, stable: Instance, stableRelease: String?)
    /// The proxy sends the app nothing (nil: traffic flows again).
    case trafficHeld(app: String, String?)
    /// The proxy could not be synced (nil: it is again).
    case trafficProblem(app: String, String?)
    /// A stage of a coordinated rollback, noted on the rollback commit.
    case sequence(app: String, NoteRecorder.Entry, on: OID)
    /// Outcome lines for a commit's notes (an abort, an automatic rollback's effects).
    case noted([NoteRecorder.Entry], on: OID)
}

extension Reconciler {
    /// Records a gate's result (`record(.gate)`); true when the pass goes on.
    func summarise(_ result: GateResult, of gate: Gate, tip: OID?) -> Bool {
        record(.gate(gate, result, tip: tip))
        return result == .proceed
    }

    /// The one place outcomes become state, notes, metrics, notifications
    /// and log lines. The state is saved after each.
    func record(_ outcome: Outcome) {
        let now = clock.wallMilliseconds()
        switch outcome {
        case let .gate(gate, result, tip):
            recordGate(gate, result, tip: tip)
        case let .deploying(name, lastGood):
            update(name) { app in
                if let lastGood { app.lastGood = lastGood }
                app.lastError = nil
            }
        case let .pending(name, instance):
            update(name) { $0.pending = instance }
        case let .healthy(step, instance, deployment, release, took, rollout):
            let name = step.ref.name
            update(name) { app in
                app.instance = instance
                app.rollout = rollout
                app.traffic = step.spec.traffic
                app.trafficHeld = nil
                app.pending = nil
                app.release = release.hex
                app.health = .healthy
                app.healthySince = now
                app.exits = []
                app.restarts = 0
                app.nextRestartAt = nil
                app.unhealthySince = nil
                app.lastError = nil
                app.observes = step.spec.exec?.observe != nil
            }
            deployments[step.tree.hex] = deployment
            rolloutProbeFailures[name] = nil
            note([NoteRecorder.Entry(outcome: .applied, app: name, fields: [("version", step.spec.version), ("tree", step.tree.short), ("duration", "\(took)ms")]),
                  NoteRecorder.Entry(outcome: .healthy, app: name, fields: [("version", step.spec.version)])]
                 + (rollout.map { [Self.stepEntry(name, $0, step.spec.version)] } ?? []), on: release)
            options.observer.releaseApplied(app: name, outcome: "healthy")
            logger.info("\(name) \(step.spec.version) is healthy (\(took) ms)")
            AppFiles.prune(root: "\(store.filesDirectory)/\(name)", keep: Set([instance.tree, state.apps[name]?.lastGood?.tree].compactMap { $0 }))
        case let .failed(failure, tree):
            let name = failure.app
            update(name) { app in
                app.failedTree = tree.hex
                app.failedRelease = failure.release.hex
                app.undecidedFailure = failure.release.hex
                app.lastError = failure.reason
                app.pending = nil
                app.verifying = nil
                if app.instance == nil || app.instance?.tree == tree.hex || app.health == .starting { app.health = .failed }
            }
            let version = desired?.config.app(named: name).flatMap { desired?.spec($0, tree: tree) }?.version
            note([NoteRecorder.Entry(outcome: .failed, app: name, fields: [("version", version ?? tree.short), ("reason", failure.reason)])], on: failure.release)
            options.observer.releaseApplied(app: name, outcome: "failed")
            logger.error("\(name) release \(failure.release.short) failed: \(failure.reason)")
        case let .abandoned(name, version):
            logger.notice("\(name): the tip moved on; stopped waiting for \(version)")
            update(name) { $0.pending = nil }
        case let .stopped(name, instance):
            update(name) { app in
                if app.instance == instance { app.instance = nil; app.health = .stopped }
            }
        case let .removed(name):
            logger.notice("\(name) is no longer in \(RepoConfig.fileName): forgotten")
            state.apps[name] = nil
            save()
        case let .failureForgotten(name):
            update(name) { app in
                app.failedTree = nil
                app.failedRelease = nil
                app.needsHuman = nil
                app.lastError = nil
            }
        case let .pin(name, tree):
            update(name) { $0.heldByPin = tree }
        case let .held(name, pinTree, version, tip):
            note([NoteRecorder.Entry(outcome: .held, app: name, fields: [("pin", pinTree.short), ("version", version)])], on: tip)
            logger.notice("\(name) is held by a pin at \(version); the tip's change to it is not applied")
        case let .pinInvalid(name, why):
            update(name) { $0.lastError = why }
        case let .running(name, release):
            update(name) { app in
                app.release = release.hex
                app.health = .healthy
            }
        case let .awaitingTriggers(name, rollback):
            update(name) { $0.verifying = rollback.hex }
            logger.notice("\(name): rollback \(rollback.short) is healthy; waiting for the triggers' queries to be back under their thresholds")
        case let .verified(name, commit, what):
            if let timeline = state.apps[name]?.lastRollback, timeline.rollbackCommit == commit.id.hex {
                update(name) { $0.lastRollback?.healthyAt = now }
                options.observer.rollbackRecovered(app: name, milliseconds: now - timeline.failedAt)
            } else {
                // Written by serve or by hand: the commit's time stands for the trigger's (seconds).
                options.observer.rollbackRecovered(app: name, milliseconds: now - commit.committer.time * 1000)
            }
            update(name) { $0.verifying = nil }
            logger.notice("\(name): rollback \(commit.id.short) verified (\(what))")
            let trigger = RollbackTrailers.parse(commit.message)?.trigger ?? .manual
            note([NoteRecorder.Entry(outcome: .verified, app: name)], on: commit.id)
            var event = RollbackEvent(.completed, app: name, trigger: trigger.rawValue, commit: commit.id.hex, reason: "\(name) is \(what) again")
            if trigger.isAutomatic { event.incident = writeIncident(commit.id) }
            options.notifier?.send(event)
        case let .failureNoticed(failure):
            update(failure.app) { $0.lastRollback = RollbackTimeline(failedRelease: failure.release.hex, failedAt: now, reason: failure.reason) }
        case let .decided(failure):
            if state.apps[failure.app]?.undecidedFailure == failure.release.hex { update(failure.app) { $0.undecidedFailure = nil } }
        case let .rolledBack(failure, written):
            update(failure.app) { app in
                app.lastRollback?.rollbackCommit = written.hex
                app.lastRollback?.committedAt = now
            }
        case let .escalated(failure, why):
            // Its notes, notification and metrics: `RollbackEffects.escalated`.
            update(failure.app) { $0.needsHuman = why }
        case let .traffic(name, traffic):
            update(name) { $0.traffic = traffic }
        case let .rollout(name, rollout, entry, commit):
            update(name) { $0.rollout = rollout }
            if let entry, let commit { note([entry], on: commit) }
        case let .aborted(name, stable, stableRelease):
            update(name) { app in
                app.instance = stable
                app.release = stableRelease ?? stable.commit
                app.rollout = nil
                app.health = .healthy
                app.healthySince = now
                app.unhealthySince = nil
                app.exits = []
                app.verifying = nil
            }
        case let .trafficHeld(name, why):
            update(name) { $0.trafficHeld = why }
            if let why { logger.warning("\(name): traffic drained: \(why)") }
        case let .trafficProblem(name, problem):
            // The outcome of a sync that just ran: the proxy is not tried again for it.
            update(name, followedByProxy: false) { $0.trafficError = problem }
        case let .noted(entries, commit):
            note(entries, on: commit)
        case let .sequence(name, entry, commit):
            note([entry], on: commit)
            logger.notice("\(name): rollback sequence: \(entry.outcome.rawValue) \(entry.summary)")
        case let .restarting(name, why, backoff, exits):
            update(name) { app in
                app.exits = exits
                app.restarts += 1
                app.nextRestartAt = now + backoff
                app.health = .restarting
                app.lastError = "\(why); restarting in \(Duration(milliseconds: backoff))"
            }
            let app = state.apps[name]
            logger.warning("\(name) \(app?.instance?.version ?? ""): \(why); restarting in \(backoff) ms (restart \(app?.restarts ?? 0))")
        case let .crashLooping(name, exits):
            update(name) { $0.exits = exits }
            logger.error("\(name) \(state.apps[name]?.instance?.version ?? "") is crash-looping")
        case let .restarted(name, instance):
            update(name) { app in
                app.instance = instance
                app.health = .starting
                app.nextRestartAt = nil
            }
            nextProbe[name] = 0
            logger.info("restarted \(name) \(instance.version) (pid \(instance.pid ?? 0))")
        case let .restartFailed(name, why, backoff):
            update(name) { app in
                app.restarts += 1
                app.lastError = why
                app.nextRestartAt = now + backoff
            }
        case let .lost(name, instance, restart):
            logger.notice("\(name) \(instance.version) is not running; \(restart ? "restarting it" : "starting it again")")
            update(name) { app in
                app.health = restart ? .restarting : .stopped
                if restart { app.nextRestartAt = now }
            }
        case let .probed(name, instance, problem):
            update(name) { app in
                if let problem {
                    app.unhealthySince = app.unhealthySince ?? now
                    if app.health == .healthy { logger.warning("\(name) \(instance.version) is unhealthy: \(problem)") }
                    if app.health != .starting { app.health = .unhealthy }
                    app.lastError = problem
                } else {
                    if app.health != .healthy && app.health != .starting { logger.info("\(name) \(instance.version) is healthy again") }
                    app.health = .healthy
                    app.unhealthySince = nil
                    if app.healthySince == nil { app.healthySince = now }
                    if now - instance.startedAt >= 10_000 { app.restarts = 0 }
                }
            }
        }
    }

    /// A gate's result: the state's halted, refused or error line, logged
    /// and notified when it changes, or cleared by the gate that sets it.
    private func recordGate(_ gate: Gate, _ result: GateResult, tip: OID?) {
        switch result {
        case .proceed:
            switch gate {
            case .observe:
                state.lastError = nil
                retry = nil
            case .ancestry: state.halted = nil
            case .validation: state.invalid = nil
            case .signature: break
            }
            return
        case .halted(let why):
            if state.halted != why { logger.critical("\(why)") }
            state.halted = why
        case .refused(let refused):
            if state.invalid != refused {
                let details = refused.details.isEmpty ? "" : "\n" + refused.details.joined(separator: "\n")
                logger.error("refusing \(tip?.short ?? "the tip"): \(refused.message); the last valid state stays applied\(details)")
                if gate != .validation {
                    let apps = desired?.config.apps.map(\.name).joined(separator: ",") ?? ""
                    options.notifier?.send(RollbackEvent(.refused, app: apps, trigger: "signature", commit: tip?.hex, reason: refused.message))
                }
            }
            state.invalid = refused
            if let tip { state.tip = tip.hex }
        case .retry(let why):
            let attempt = (retry?.attempt ?? 0) + 1
            let delay = Self.retryBackoff.delay(attempt: attempt)
            if state.lastError != why { logger.error("cannot read the branch: \(why); retrying in \(Duration(milliseconds: delay))") }
            retry = (attempt, clock.monotonicMilliseconds() + delay)
            state.lastError = why
        }
        save()
    }

    /// Runs `body` on an app's state, creating it if needed, and saves
    /// when it changed: only `record` changes an app's state this way.
    /// Unless `followedByProxy` is false, the proxy then follows the change.
    private func update(_ app: String, followedByProxy: Bool = true, _ body: (inout AppState) -> Void) {
        let before = state.apps[app]
        var appState = before ?? AppState()
        body(&appState)
        guard appState != before else { return }
        state.apps[app] = appState
        save()
        // The proxy follows the saved state (a no-op unless what it should
        // route changed); its outcome is folded in here: no second
        // `record`, no recursion.
        if followedByProxy, appState.traffic != nil, let outcome = syncProxy(app), outcome.problem != appState.trafficError {
            state.apps[app]?.trafficError = outcome.problem
            save()
        }
    }
}
