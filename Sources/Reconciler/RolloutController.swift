import DeployModel
import GitKit
import Platforms
import ReconcilerStatus
import Rollback

/// The rollout controller's decisions (canary and blue-green, see
/// Rollouts.swift): pure functions of the app's state, the settings and
/// the time, each returning the steps that carry it out.
enum RolloutController {
    /// The new version leaves traffic at once (the stable version gets
    /// everything), stops, and its release fails: rolled back through the
    /// automatic policy (`by` nil), or with the operator's rollback commit.
    static func abort(_ name: String, _ app: AppState, reason: String, detectedAt: Int64, by asked: RolloutRequest?) -> [Step] {
        guard let rollout = app.rollout, let canary = app.instance, let release = app.release else { return [] }
        let who = asked.map { "aborted by \($0.actor)" + ($0.reason.map { ": \($0)" } ?? "") } ?? reason
        let failure = Failure(app: name, release: release, reason: asked == nil ? reason : who)
        let steps: [Step] = [
            // The proxy follows the state at once: the stable version gets everything.
            .record(.traffic(.aborted(app: name, stable: rollout.stable, stableRelease: rollout.stableRelease))),
            .takenOut(app: name, canary, stable: rollout.stable.version, fields: [("weight", String(rollout.weight)), ("version", canary.version), ("reason", who)],
                      on: release, detectedAt: detectedAt),
            .retire(app: name, canary),
            .record(.release(.failed(failure, tree: canary.tree, version: canary.version))),
        ]
        guard let asked else { return steps + [.rollBack([failure])] }
        return steps + [.record(.rollback(.decided(failure))), .operatorRollback(app: name, to: rollout.stableRelease?.hex, undoing: release, asked)]
    }

    /// The new version takes all traffic; the old one stops.
    static func promote(_ name: String, _ app: AppState, by asked: RolloutRequest?) -> [Step] {
        guard let rollout = app.rollout, let instance = app.instance, let release = app.release else { return [] }
        var fields = [("version", instance.version), ("from", rollout.strategy == .canary ? "\(rollout.weight)%" : "blue-green")]
        if let asked { fields.append(("by", asked.actor)) }
        if let reason = asked?.reason { fields.append(("reason", reason)) }
        return [.record(.traffic(.rollout(app: name, nil, note: NoteRecorder.Entry(outcome: .promoted, app: name, fields: fields), on: release))),
                .retire(app: name, rollout.stable)]
    }

    /// The tip returns to the tree the stable version runs (a rollback
    /// commit, Rewind's or a human's): traffic goes back to it at once,
    /// and nothing starts.
    static func switchBack(_ name: String, _ app: AppState, to release: OID) -> [Step] {
        guard let rollout = app.rollout, let canary = app.instance else { return [] }
        var steps: [Step] = [.record(.traffic(.aborted(app: name, stable: rollout.stable, stableRelease: release))), .retire(app: name, canary)]
        if let canaryRelease = app.release {
            let entry = NoteRecorder.Entry(outcome: .aborted, app: name, fields: [("weight", String(rollout.weight)), ("version", canary.version),
                                                                                  ("reason", "the branch returned to \(rollout.stable.version)")])
            steps.append(.record(.noted([entry], on: canaryRelease)))
        }
        return steps + [.record(.release(.running(app: name, release: release))), .verify(app: name, release)]
    }

    /// A newer release replaces the one rolled out: the stable version takes
    /// all traffic back first, and the new deploy starts from it.
    static func cancel(_ name: String, _ app: AppState) -> [Step] {
        guard let rollout = app.rollout, let canary = app.instance else { return [] }
        return [.record(.traffic(.aborted(app: name, stable: rollout.stable, stableRelease: rollout.stableRelease))), .retire(app: name, canary)]
    }

    /// Blue-green promotes after its scaleDownDelay; a canary moves to its
    /// next step after each interval, and is promoted after the last.
    static func advance(_ name: String, _ app: AppState, _ traffic: TrafficSettings, now: Int64) -> [Step] {
        guard let rollout = app.rollout, !rollout.paused, let instance = app.instance, let release = app.release else { return [] }
        switch rollout.strategy {
        case .blueGreen:
            return now - rollout.stepStartedAt >= traffic.scaleDownDelay.milliseconds ? promote(name, app, by: nil) : []
        case .canary:
            guard now - rollout.stepStartedAt >= traffic.interval.milliseconds else { return [] }
            let next = rollout.step + 1
            guard next < traffic.steps.count, traffic.steps[next] < 100 else { return promote(name, app, by: nil) }
            var moved = rollout
            moved.step = next
            moved.weight = traffic.steps[next]
            moved.stepStartedAt = now
            return [.record(.traffic(.rollout(app: name, moved, note: stepEntry(name, moved, instance.version), on: release)))]
        }
    }

    /// An operator's pause: the step's time stops; the analysis goes on.
    static func pause(_ name: String, _ app: AppState, _ request: RolloutRequest, now: Int64) -> [Step] {
        guard var moved = app.rollout, !moved.paused, let release = app.release else { return [] }
        moved.pausedAt = now
        return [.record(.traffic(.rollout(app: name, moved, note: requestEntry(.paused, name, app, request), on: release)))]
    }

    /// An operator's resume: the step's time runs on from where it paused.
    static func resume(_ name: String, _ app: AppState, _ request: RolloutRequest, now: Int64) -> [Step] {
        guard var moved = app.rollout, let pausedAt = moved.pausedAt, let release = app.release else { return [] }
        moved.pausedAt = nil
        moved.stepStartedAt += now - pausedAt
        return [.record(.traffic(.rollout(app: name, moved, note: requestEntry(.resumed, name, app, request), on: release)))]
    }

    private static func requestEntry(_ outcome: NoteOutcome, _ name: String, _ app: AppState, _ request: RolloutRequest) -> NoteRecorder.Entry {
        var fields = [("version", app.instance?.version ?? ""), ("weight", String(app.rollout?.weight ?? 0)), ("by", request.actor)]
        if let reason = request.reason { fields.append(("reason", reason)) }
        return NoteRecorder.Entry(outcome: outcome, app: name, fields: fields)
    }

    /// `step app=api weight=25 version=1.6.0 step=2/4`.
    static func stepEntry(_ name: String, _ rollout: Rollout, _ version: String) -> NoteRecorder.Entry {
        NoteRecorder.Entry(outcome: .step, app: name, fields: [("weight", String(rollout.weight)), ("version", version), ("strategy", rollout.strategy.rawValue)],
                           distinctFields: 1)
    }
}
