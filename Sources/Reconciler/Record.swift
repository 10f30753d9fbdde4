import DeployModel
import GitKit
import Logging
import Platforms
import ReconcilerStatus
import Rollback

extension Reconciler {
    /// Records a gate's result (`record(.gate)`); true when the pass goes on.
    func summarise(_ result: GateResult, of gate: Gate, tip: OID?) -> Bool {
        record(.gate(gate, result, tip: tip, apps: desired?.config.apps.map(\.name).joined(separator: ",") ?? ""))
        return result == .proceed
    }

    /// The one place outcomes become the state and its effects: `reduce`
    /// says what the state becomes and what follows; the state is saved,
    /// then the effects run in order.
    func record(_ outcome: Outcome) {
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
