import DeployModel
import GitKit
import Logging
import Platforms
import ReconcilerStatus
import Rollback
import SystemSupport

/// What follows a change of the state, run by `carryOut` in order once the
/// state is saved. `reduce` returns them; nothing else decides them.
enum Effect {
    /// The app's proxy routes what its new state says (its outcome is folded into the state).
    case followProxy(app: String)
    /// Outcome lines queued for a commit's notes.
    case note([NoteRecorder.Entry], on: OID)
    case log(Logger.Level, String)
    /// Metrics: a release was applied (`healthy`, `failed`).
    case releaseApplied(app: String, outcome: String)
    /// Metrics: a rollback was verified this long after its trigger.
    case rollbackRecovered(app: String, milliseconds: Int64)
    /// A notification; with `incidentOf`, the incident report of that
    /// rollback is written first and named in it.
    case notify(RollbackEvent, incidentOf: OID?)
    /// An app's unpacked files, less the trees still needed.
    case prune(app: String, keep: Set<String>)
    /// Supervision can restart this deployment.
    case remember(Deployment)
    /// The app's health is probed at once, and its rollout's failed probes are forgotten.
    case probeNow(app: String)
    case forgetProbeFailures(app: String)
    /// A human must look at the app's release (the one escalation store, shared with serve's desk).
    case escalate(app: String, release: OID, tree: String?, String)
    /// The branch could not be read: a pass tries again after a growing delay (`logged`: say so).
    case readFailed(String, logged: Bool)
    case readSucceeded
    /// A platform could not be reached: a pass tries the release again soon.
    case passSoon(String)
}

/// A state and the effects that follow it.
struct Reduction {
    var state: ReconcilerState
    var effects: [Effect] = []
    let now: Int64

    /// Runs `body` on an app's state, creating it if needed; when it
    /// changed, and the app has a proxy, the proxy follows (unless `followedByProxy` is false).
    mutating func update(_ app: String, followedByProxy: Bool = true, _ body: (inout AppState) -> Void) {
        let before = state.apps[app]
        var appState = before ?? AppState()
        body(&appState)
        guard appState != before else { return }
        state.apps[app] = appState
        if followedByProxy, appState.traffic != nil { effects.append(.followProxy(app: app)) }
    }

    mutating func note(_ entries: [NoteRecorder.Entry], on commit: OID) { effects.append(.note(entries, on: commit)) }
    mutating func log(_ level: Logger.Level, _ message: String) { effects.append(.log(level, message)) }
}

extension Reconciler {
    /// The next state after `outcome`, and what must follow it. Pure: the
    /// same state and outcome give the same answer, whatever the world does.
    static func reduce(_ state: ReconcilerState, _ outcome: Outcome, now: Int64) -> Reduction {
        var r = Reduction(state: state, now: now)
        switch outcome {
        case let .gate(gate, result, tip, apps): r.gate(gate, result, tip: tip, apps: apps)
        case .release(let release): r.release(release)
        case .pin(let pin): r.pin(pin)
        case .rollback(let rollback): r.rollback(rollback)
        case .supervision(let supervision): r.supervision(supervision)
        case .traffic(let traffic): r.traffic(traffic)
        case let .noted(entries, commit): r.note(entries, on: commit)
        }
        return r
    }
}

extension Reduction {
    /// A gate's result: the state's halted, refused or error line, logged
    /// and notified when it changes, or cleared by the gate that sets it.
    mutating func gate(_ gate: Gate, _ result: GateResult, tip: OID?, apps: String) {
        switch result {
        case .proceed:
            switch gate {
            case .observe:
                state.lastError = nil
                effects.append(.readSucceeded)
            case .ancestry: state.halted = nil
            case .validation: state.invalid = nil
            case .signature: break
            }
        case .halted(let why):
            if state.halted != why { log(.critical, why) }
            state.halted = why
        case .refused(let refused):
            if state.invalid != refused {
                let details = refused.details.isEmpty ? "" : "\n" + refused.details.joined(separator: "\n")
                log(.error, "refusing \(tip?.short ?? "the tip"): \(refused.message); the last valid state stays applied\(details)")
                if gate != .validation {
                    effects.append(.notify(RollbackEvent(.refused, app: apps, trigger: "signature", commit: tip?.hex, reason: refused.message), incidentOf: nil))
                }
            }
            state.invalid = refused
            if let tip { state.tip = tip }
        case .retry(let why):
            effects.append(.readFailed(why, logged: state.lastError != why))
            state.lastError = why
        }
    }

    mutating func release(_ outcome: ReleaseOutcome) {
        switch outcome {
        case let .deploying(name, lastGood):
            update(name) { app in
                if let lastGood { app.lastGood = lastGood }
                app.lastError = nil
            }
        case let .pending(name, instance):
            update(name) { $0.pending = instance }
        case let .healthy(step, instance, deployment, release, took, rollout):
            healthy(step, instance, deployment, release: release, took: took, rollout: rollout)
        case let .failed(failure, tree, version):
            failed(failure, tree: tree, version: version)
        case let .deferred(name, why):
            effects.append(.passSoon(why))
            update(name) { app in
                app.lastError = why
                app.pending = nil
            }
        case let .abandoned(name, version):
            log(.notice, "\(name): the tip moved on; stopped waiting for \(version)")
            update(name) { $0.pending = nil }
        case let .stopped(name, instance):
            update(name) { app in
                if app.instance == instance { app.instance = nil; app.health = .stopped }
            }
        case let .removed(name):
            log(.notice, "\(name) is no longer in \(RepoConfig.fileName): forgotten")
            state.apps[name] = nil
        case let .failureForgotten(name):
            update(name) { app in
                app.failedTree = nil
                app.failedRelease = nil
                app.lastError = nil
            }
        case let .running(name, release):
            update(name) { app in
                app.release = release
                app.health = .healthy
            }
        case let .staged(name, hold, skipped):
            staged(name, hold, skipped: skipped)
        case let .frozen(name, why):
            if let why { log(.notice, "\(name): \(why)") } else { log(.notice, "\(name): no change window holds it any more; applying") }
            // Told once when a hold begins, not again for each pass while it lasts.
            if let why, state.apps[name]?.freeze == nil {
                effects.append(.notify(RollbackEvent(.freezeHeld, app: name, trigger: "window", reason: why), incidentOf: nil))
            }
            update(name) { $0.freeze = why }
        }
    }

    private mutating func staged(_ name: String, _ hold: StageHold?, skipped: [String]) {
        let before = state.apps[name]?.stageHold
        if let hold, hold != before {
            log(hold.halted ? .warning : .notice, "\(name): \(hold.reason)")
        } else if hold == nil, before != nil {
            log(.notice, "\(name): the earlier stages are healthy; applying here")
        }
        if !skipped.isEmpty {
            log(.warning, "\(name): going on without \(skipped.joined(separator: ", ")), silent for longer than rollout.hostTimeout (onTimeout: proceed)")
        }
        update(name) { $0.stageHold = hold }
    }

    private mutating func healthy(_ step: PlannedStep, _ instance: Instance, _ deployment: Deployment, release: OID, took: Int64, rollout: Rollout?) {
        let name = step.ref.name
        let now = self.now
        update(name) { app in
            app.instance = instance
            app.rollout = rollout
            app.traffic = step.spec.traffic
            app.trafficHeld = nil
            app.pending = nil
            app.release = release
            app.health = .healthy
            app.healthySince = now
            app.exits = []
            app.restarts = 0
            app.nextRestartAt = nil
            app.unhealthySince = nil
            app.lastError = nil
            app.observes = step.spec.exec?.observe != nil
        }
        effects += [.remember(deployment), .forgetProbeFailures(app: name)]
        note([NoteRecorder.Entry(outcome: .applied, app: name, fields: [("version", step.spec.version), ("tree", step.tree.short), ("duration", "\(took)ms")]),
              NoteRecorder.Entry(outcome: .healthy, app: name, fields: [("version", step.spec.version)])]
             + (rollout.map { [RolloutController.stepEntry(name, $0, step.spec.version)] } ?? []), on: release)
        effects.append(.releaseApplied(app: name, outcome: "healthy"))
        effects.append(.notify(RollbackEvent(.deployed, app: name, trigger: "reconciler", commit: release.hex, reason: "\(name) \(step.spec.version) is healthy (\(took) ms)"),
                               incidentOf: nil))
        log(.info, "\(name) \(step.spec.version) is healthy (\(took) ms)")
        if let rollout {
            log(.notice, "\(name): \(rollout.strategy.rawValue) rollout of \(instance.version): \(rollout.weight)% of traffic, \(rollout.stable.version) keeps the rest")
        }
        effects.append(.prune(app: name, keep: Set([instance.tree.hex, state.apps[name]?.lastGood?.tree.hex].compactMap { $0 })))
    }

    private mutating func failed(_ failure: Failure, tree: OID, version: String?) {
        let name = failure.app
        update(name) { app in
            app.failedTree = tree
            app.failedRelease = failure.release
            app.undecidedFailure = failure.release
            app.lastError = failure.reason
            app.pending = nil
            app.verifying = nil
            if app.instance == nil || app.instance?.tree == tree || app.health == .starting { app.health = .failed }
        }
        note([NoteRecorder.Entry(outcome: .failed, app: name, fields: [("version", version ?? tree.short), ("reason", failure.reason)])], on: failure.release)
        effects.append(.releaseApplied(app: name, outcome: "failed"))
        let event = RollbackEvent(.releaseFailed, app: name, trigger: "reconciler", commit: failure.release.hex, reason: "\(name) \(version ?? tree.short): \(failure.reason)",
                                  release: failure.release.hex)
        effects.append(.notify(event, incidentOf: nil))
        log(.error, "\(name) release \(failure.release.short) failed: \(failure.reason)")
    }

    mutating func pin(_ outcome: PinOutcome) {
        switch outcome {
        case let .set(name, tree):
            update(name) { $0.heldByPin = tree }
        case let .held(name, pinTree, version, tip):
            note([NoteRecorder.Entry(outcome: .held, app: name, fields: [("pin", pinTree.short), ("version", version)])], on: tip)
            log(.notice, "\(name) is held by a pin at \(version); the tip's change to it is not applied")
        case let .invalid(name, why):
            update(name) { $0.lastError = why }
        }
    }

    /// `text` as one shell word: in single quotes, each ' written as '\''.
    static func shellQuoted(_ text: String) -> String { "'" + text.replacing("'", with: "'\\''") + "'" }

    mutating func rollback(_ outcome: RollbackOutcome) {
        let now = self.now
        switch outcome {
        case let .suggested(name, release, reason):
            log(.warning, "\(name): \(reason) (action notify): a human decides whether to roll back")
            var event = RollbackEvent(.suggested, app: name, trigger: "analysis", commit: release.hex, reason: reason, release: release.hex)
            event.command = "rewind rollback \(name) --reason \(Self.shellQuoted("\(reason) (suggested by Rewind)"))"
            effects.append(.notify(event, incidentOf: nil))
        case let .failureNoticed(failure):
            update(failure.app) { $0.lastRollback = RollbackTimeline(failedRelease: failure.release, failedAt: now, reason: failure.reason) }
        case let .decided(failure):
            if state.apps[failure.app]?.undecidedFailure == failure.release { update(failure.app) { $0.undecidedFailure = nil } }
        case let .rolledBack(failure, written):
            update(failure.app) { app in
                app.lastRollback?.rollbackCommit = written
                app.lastRollback?.committedAt = now
            }
        case let .escalated(failure, why):
            // Its notes, notification and metrics: `RollbackEffects.escalated`.
            effects.append(.escalate(app: failure.app, release: failure.release, tree: state.apps[failure.app]?.failedTree?.hex, why))
        case let .awaitingTriggers(name, rollback):
            update(name) { $0.verifying = rollback }
            log(.notice, "\(name): rollback \(rollback.short) is healthy; waiting for the triggers' queries to be back under their thresholds")
        case let .verified(name, commit, what):
            verified(name, commit, what: what)
        case let .sequence(name, entry, commit):
            note([entry], on: commit)
            log(.notice, "\(name): rollback sequence: \(entry.outcome.rawValue) \(entry.summary)")
        }
    }

    /// The app is healthy again after a rollback: the time it took (from
    /// the failure, or from the commit when serve or a human wrote it), the
    /// note, and the notification with the incident report of automation's.
    private mutating func verified(_ name: String, _ commit: Commit, what: String) {
        let now = self.now
        // The release this rollback undid, while its incident is open: the notification resolves it.
        let undid = state.apps[name]?.lastRollback.flatMap { $0.rollbackCommit == commit.id || $0.healthyAt == nil ? $0.failedRelease.hex : nil }
        if let timeline = state.apps[name]?.lastRollback, timeline.rollbackCommit == commit.id {
            update(name) { $0.lastRollback?.healthyAt = now }
            effects.append(.rollbackRecovered(app: name, milliseconds: now - timeline.failedAt))
        } else {
            effects.append(.rollbackRecovered(app: name, milliseconds: now - commit.committer.time * 1000))
        }
        update(name) { $0.verifying = nil }
        log(.notice, "\(name): rollback \(commit.id.short) verified (\(what))")
        let trigger = RollbackTrailers.parse(commit.message)?.trigger ?? .manual
        note([NoteRecorder.Entry(outcome: .verified, app: name)], on: commit.id)
        // The release the rollback undid: its incident (PagerDuty's dedup key) is resolved.
        let event = RollbackEvent(.completed, app: name, trigger: trigger.rawValue, commit: commit.id.hex, reason: "\(name) is \(what) again", release: undid)
        effects.append(.notify(event, incidentOf: trigger.isAutomatic ? commit.id : nil))
    }

    mutating func supervision(_ outcome: SupervisionOutcome) {
        let now = self.now
        switch outcome {
        case let .restarting(name, why, backoff, exits):
            update(name) { app in
                app.exits = exits
                app.restarts += 1
                app.nextRestartAt = now + backoff
                app.health = .restarting
                app.lastError = "\(why); restarting in \(Duration(milliseconds: backoff))"
            }
            let app = state.apps[name]
            log(.warning, "\(name) \(app?.instance?.version ?? ""): \(why); restarting in \(backoff) ms (restart \(app?.restarts ?? 0))")
        case let .crashLooping(name, exits):
            update(name) { $0.exits = exits }
            log(.error, "\(name) \(state.apps[name]?.instance?.version ?? "") is crash-looping")
        case let .restarted(name, instance):
            update(name) { app in
                app.instance = instance
                app.health = .starting
                app.nextRestartAt = nil
            }
            effects.append(.probeNow(app: name))
            log(.info, "restarted \(name) \(instance.version) (pid \(instance.pid ?? 0))")
        case let .restartFailed(name, why, backoff):
            update(name) { app in
                app.restarts += 1
                app.lastError = why
                app.nextRestartAt = now + backoff
            }
        case let .lost(name, instance, restart):
            log(.notice, "\(name) \(instance.version) is not running; \(restart ? "restarting it" : "starting it again")")
            update(name) { app in
                app.health = restart ? .restarting : .stopped
                if restart { app.nextRestartAt = now }
            }
        case let .probed(name, instance, problem):
            probed(name, instance, problem: problem)
        }
    }

    private mutating func probed(_ name: String, _ instance: Instance, problem: String?) {
        let now = self.now
        let health = state.apps[name]?.health
        if let problem {
            if health == .healthy { log(.warning, "\(name) \(instance.version) is unhealthy: \(problem)") }
            update(name) { app in
                app.unhealthySince = app.unhealthySince ?? now
                if app.health != .starting { app.health = .unhealthy }
                app.lastError = problem
            }
        } else {
            if health != .healthy && health != .starting { log(.info, "\(name) \(instance.version) is healthy again") }
            update(name) { app in
                app.health = .healthy
                app.unhealthySince = nil
                if app.healthySince == nil { app.healthySince = now }
                if now - instance.startedAt >= 10_000 { app.restarts = 0 }
            }
        }
    }

    /// A canary's next step, or a promotion, said in the log.
    private mutating func announce(_ name: String, _ rollout: Rollout?, _ outcome: NoteOutcome?) {
        guard let app = state.apps[name], let version = app.instance?.version else { return }
        if let rollout, outcome == .step {
            log(.notice, "\(name): canary \(version) at step \(rollout.step + 1) of \(app.traffic?.steps.count ?? 0): \(rollout.weight)%")
        } else if rollout == nil, outcome == .promoted, let stable = app.rollout?.stable {
            log(.notice, "\(name): \(version) promoted; stopping \(stable.version)")
        }
    }

    mutating func traffic(_ outcome: TrafficOutcome) {
        let now = self.now
        switch outcome {
        case let .settings(name, traffic):
            update(name) { $0.traffic = traffic }
        case let .rollout(name, rollout, entry, commit):
            announce(name, rollout, entry?.outcome)
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
        case let .held(name, why):
            update(name) { $0.trafficHeld = why }
            if let why { log(.warning, "\(name): traffic drained: \(why)") }
        case let .problem(name, problem):
            // The outcome of a sync that just ran: the proxy is not tried again for it.
            update(name, followedByProxy: false) { $0.trafficError = problem }
        }
    }
}
