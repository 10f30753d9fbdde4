import DeployModel
import GitKit
import Logging
import Platforms
import ReconcilerStatus
import Rollback

/// What a part of the reconciler asks for, in order: a deploy's
/// transition, the rollout controller's decisions, supervision's findings,
/// a gate's result. `carryOut` is the one place they are done.
enum Step {
    /// The state and its effects follow an outcome (`reduce`).
    case record(Outcome)
    /// Stop an instance once its proxy let go of it.
    case retire(app: String, Instance)
    /// A rollout's new version is out of traffic after a breach found at
    /// `detectedAt` (wall ms): say how long that took, and note it on the
    /// release (`fields` and `tookMs`).
    case takenOut(app: String, Instance, stable: String, fields: [(String, String)], on: OID, detectedAt: Int64)
    /// Failures found together go to the automatic rollback policy (step 8).
    case rollBack([Failure])
    /// The rollback commit of an operator's abort.
    case operatorRollback(app: String, to: String?, undoing: OID, RolloutRequest)
    /// `verified` (or `awaitingTriggers`), when the release is a rollback commit not verified here before.
    case verify(app: String, OID)
}

extension Reconciler {
    /// Records a gate's result; true when the pass goes on.
    func summarise(_ result: GateResult, of gate: Gate, tip: OID?) -> Bool {
        carryOut([.record(.gate(gate, result, tip: tip, apps: desired?.config.apps.map(\.name).joined(separator: ",") ?? ""))])
        return result == .proceed
    }

    /// Does the steps in order: each outcome is recorded (the state saved,
    /// then its effects run) before the step after it acts. Returns the
    /// rollback commit a step wrote, if one did.
    @discardableResult
    func carryOut(_ steps: [Step]) -> OID? {
        var written: OID?
        for step in steps {
            var outcome: Outcome?
            switch step {
            case .record(let recorded):
                outcome = recorded
            case let .retire(app, instance):
                retire(instance, of: app)
            case let .takenOut(app, canary, stable, fields, release, detectedAt):
                let zeroAt = clock.wallMilliseconds()
                if let problem = state.apps[app]?.trafficError { logger.critical("\(app): the abort could not reach the proxy: \(problem)") }
                logger.notice("\(app): \(canary.version) taken out of traffic \(zeroAt - detectedAt) ms after the breach; \(stable) serves everything")
                outcome = .noted([NoteRecorder.Entry(outcome: .aborted, app: app, fields: fields + [("tookMs", String(zeroAt - detectedAt))])], on: release)
            case .rollBack(let failures):
                written = rollBack(failures) ?? written
            case let .operatorRollback(app, target, undoing, request):
                written = writeOperatorRollback(app, to: target, undoing: undoing, request: request) ?? written
            case let .verify(app, release):
                outcome = verificationOutcome(app, release: release)
            }
            if let outcome { record(outcome) }
        }
        return written
    }

    /// The one place outcomes become the state and its effects: `reduce`
    /// says what the state becomes and what follows; the state is saved,
    /// then the effects run in order.
    private func record(_ outcome: Outcome) {
        let reduction = Self.reduce(state, outcome, now: clock.wallMilliseconds())
        state = reduction.state
        save()
        for effect in reduction.effects { run(effect) }
    }

    private func run(_ effect: Effect) {
        switch effect {
        case .followProxy(let app):
            // The proxy follows the saved state (a no-op unless what it should
            // route changed); its outcome is folded in here, not recorded again.
            if let outcome = syncProxy(app), let current = state.apps[app], outcome.problem != current.trafficError {
                state.apps[app]?.trafficError = outcome.problem
                save()
            }
        case let .note(entries, commit):
            note(entries, on: commit)
        case let .log(level, message):
            logger.log(level: level, "\(message)")
        case let .releaseApplied(app, outcome):
            options.observer.releaseApplied(app: app, outcome: outcome)
        case let .rollbackRecovered(app, milliseconds):
            options.observer.rollbackRecovered(app: app, milliseconds: milliseconds)
        case let .notify(event, incidentOf):
            var event = event
            if let rollback = incidentOf { event.incident = writeIncident(rollback) }
            options.notifier?.send(event)
        case let .prune(app, keep):
            AppFiles.prune(root: "\(store.filesDirectory)/\(app)", keep: keep)
        case .remember(let deployment):
            deployments[deployment.tree] = deployment
        case .probeNow(let app):
            supervisor.probeSoon(app)
        case .forgetProbeFailures(let app):
            rolloutProbeFailures[app] = nil
        case let .readFailed(why, logged):
            let attempt = (retry?.attempt ?? 0) + 1
            let delay = Self.retryBackoff.delay(attempt: attempt)
            if logged { logger.error("cannot read the branch: \(why); retrying in \(Duration(milliseconds: delay))") }
            retry = (attempt, clock.monotonicMilliseconds() + delay)
        case let .escalate(app, release, tree, why):
            store.recordEscalation(app: app, release: release.hex, tree: tree, reason: why)
        case .readSucceeded:
            retry = nil
        case .passSoon(let why):
            deferral.passes += deferral.at == nil ? 1 : 0
            let delay = Self.retryBackoff.delay(attempt: deferral.passes)
            deferral.at = clock.monotonicMilliseconds() + delay
            logger.log(level: deferral.passes == 1 ? .warning : .debug, "\(why); trying again in \(Duration(milliseconds: delay))")
        }
    }
}
