// Progressive delivery
// ====================
//
// An app with `traffic:` in its app.yaml is reached through an HAProxy on
// its fixed `traffic.listen` port; its versions are dynamic servers behind
// it (runtime API, no reloads). A new release starts beside the running
// one on a port of its own and becomes healthy with no traffic. Then:
//
// - blueGreen: 100% switches to it at once; the old version drains and
//   stays warm for `scaleDownDelay`, then stops;
// - canary: it gets `steps[0]` percent, then each next step after
//   `interval`; at 100 it is promoted and the old version stops.
//
// While a rollout runs (`AppState.rollout`), the new version's health and
// the analysis queries (`traffic.analysis` plus `policy.triggers`, with
// `$app`, `$version` and `$stable` substituted) are checked every tick. A
// failure aborts it: the old version gets 100% at once (before anything is
// written), the new one stops, and then the rollback commit is written
// through the automatic rollback policy. The next pass finds the rollback's
// tree already running and verifies it.
//
// This file looks at a rollout (the new version's exit and probes, the
// queries); RolloutController.swift decides what follows, as pure functions
// returning the steps `carryOut` does. Routing.swift keeps the proxy
// following the state; RolloutRequests.swift answers the operators
// (promote, abort, pause, resume).

import DeployModel
import FoundationEssentials
import GitKit
import Platforms
import ReconcilerStatus
import Rollback
import SystemSupport
import Traffic

extension Reconciler {
    /// Canary and blue-green: health and analysis of the new version, then
    /// the next step when its time has come.
    func checkRollout(_ name: String) {
        guard let desired, let app = state.apps[name], let rollout = app.rollout, let instance = app.instance,
              let ref = desired.config.app(named: name), let driver = drivers[instance.runsOn],
              let canary = deployment(of: instance, ref), let traffic = app.traffic else { return }
        if app.trafficError != nil { return }  // held until the proxy routes again (superviseTraffic says why)
        let now = clock.wallMilliseconds()
        func abort(_ breach: String) {
            abortRollout(name, reason: "\(instance.version) \(Self.describe(rollout, traffic)): \(breach)", detectedAt: now, by: nil)
        }
        if case .exited(let why) = driver.observe(instance, canary, thorough: false) { return abort(why) }
        // The stable version is looked at when the canary is probed (at most every 250 ms), not every tick:
        // for a container that is a call to the engine.
        let probeDue = clock.monotonicMilliseconds() >= nextRolloutProbe[name] ?? 0
        if probeDue, !driver.isRunning(rollout.stable), let stable = deployment(of: rollout.stable, ref) {
            return restartStable(name, rollout, stable, driver)
        }
        if let breach = probeCanary(name, instance, canary, driver, traffic) ?? rolloutAnalysis(name, app, rollout, traffic, desired.config.policy) {
            return abort(breach)
        }
        carryOut(RolloutController.advance(name, app, traffic, now: now))
    }

    /// The version to return to must run: started again, at most once a
    /// second (not in a tight loop).
    private func restartStable(_ name: String, _ rollout: Rollout, _ stable: Deployment, _ driver: any PlatformDriver) {
        let mono = clock.monotonicMilliseconds()
        guard mono >= nextStableRestart[name] ?? 0 else { return }
        nextStableRestart[name] = mono + 1_000
        logger.warning("\(name): the stable version \(rollout.stable.version) is not running; starting it again")
        do {
            let restarted = try driver.start(stable) { pending in try journal(name, pending) }
            var moved = rollout
            moved.stable = restarted
            carryOut([.record(.traffic(.rollout(app: name, moved, note: nil, on: nil))), .record(.release(.pending(app: name, nil)))])
        } catch {
            logger.error("\(name): cannot start the stable version \(rollout.stable.version) again: \(error)")
        }
    }

    /// The new version's health, probed at most every 250 ms: the reason to
    /// abort once `failureLimit` probes in a row failed, else nil.
    private func probeCanary(_ name: String, _ instance: Instance, _ canary: Deployment, _ driver: any PlatformDriver, _ traffic: TrafficSettings) -> String? {
        let mono = clock.monotonicMilliseconds()
        guard mono >= nextRolloutProbe[name] ?? 0 else { return nil }
        nextRolloutProbe[name] = mono + min(canary.spec.health?.interval.milliseconds ?? 1_000, 250)
        guard let problem = driver.healthProblem(instance, canary), problem != "starting" else {
            rolloutProbeFailures[name] = nil
            return nil
        }
        let failures = (rolloutProbeFailures[name] ?? 0) + 1
        rolloutProbeFailures[name] = failures
        guard failures >= traffic.failureLimit else {
            logger.warning("\(name): \(instance.version) failed a health probe (\(failures) of \(traffic.failureLimit) in a row abort): \(problem)")
            return nil
        }
        rolloutProbeFailures[name] = nil
        return "unhealthy\(failures == 1 ? "" : " (\(failures) probes in a row)"): \(problem)"
    }

    /// "at step 2 of 4 (25%)", or "within its scaleDownDelay (blue-green)".
    static func describe(_ rollout: Rollout, _ traffic: TrafficSettings) -> String {
        switch rollout.strategy {
        case .canary: return "at canary step \(rollout.step + 1) of \(traffic.steps.count) (weight \(rollout.weight)%)"
        case .blueGreen: return "within its blue-green scaleDownDelay of \(traffic.scaleDownDelay)"
        }
    }

    /// The step's queries (`traffic.analysis`, then `policy.triggers` with
    /// action rollback), at most once a second: the breach that aborts, or nil.
    private func rolloutAnalysis(_ name: String, _ app: AppState, _ rollout: Rollout, _ traffic: TrafficSettings, _ policy: RollbackPolicy) -> String? {
        let triggers = traffic.analysis + policy.triggers.filter { $0.action == .rollback }
        guard !triggers.isEmpty, let client = metrics, let instance = app.instance else { return nil }
        let mono = clock.monotonicMilliseconds()
        guard mono >= nextRolloutAnalysis[name] ?? 0 else { return nil }
        nextRolloutAnalysis[name] = mono + min(options.analysisInterval, 1_000)
        let now = clock.wallMilliseconds()
        for trigger in triggers {
            let query = trigger.query.replacing("$version", with: instance.version).replacing("$stable", with: rollout.stable.version).replacing("$app", with: name)
            guard case .lasting(let value, _) = read(trigger, query: query, app: name, client: client, now: now, breaches: &rolloutBreaches) else { continue }
            rolloutBreaches[name] = nil
            return "query \(trigger.name) (\(query)) = \(value) \(trigger.comparison) \(trigger.threshold)"
        }
        return nil
    }

    /// Takes the new version out of traffic at once (the stable version gets
    /// everything), stops it, records the abort, then writes the rollback
    /// commit: through the automatic policy (`by` nil), or as the
    /// operator's (`rewind abort`). Returns the commit.
    @discardableResult
    func abortRollout(_ name: String, reason: String, detectedAt: Int64, by asked: RolloutRequest?) -> OID? {
        guard let app = state.apps[name] else { return nil }
        return carryOut(RolloutController.abort(name, app, reason: reason, detectedAt: detectedAt, by: asked))
    }
}
