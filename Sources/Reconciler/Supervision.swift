// A crash loop, from the process to the rollback commit and back
// ===============================================================
//
// Read top-down, in three files:
//
// 1. here: `supervise()` runs between passes. `Supervisor.look` (below)
//    restarts what crashed; `processEnded` fails a release whose process
//    exits `policy.crashLoopRestarts` times within the soak window. The
//    failures go to `rollBack`, which asks `AutomaticRollback` and records
//    its report (notes, state, metrics, notification, escalations);
// 2. Rollback/AutomaticRollback.swift: `run` decides each failure by the
//    policy (window, cooldown, maxPerHour, never a rollback of a rollback)
//    and writes one commit for the apps it allows, through `CommitWriter`
//    as `rewind rollback` does;
// 3. Pass.swift: `tick` passes again at once over the new tip, a rollback
//    commit. `pass` finds the apps it changes (`rollbackApps`), and
//    `runWaves` deploys them in reverse dependency order: each deploy's
//    `DeployMachine` says what to do next, and `perform` does it on the
//    platform driver (`start`), then `probe`s the release until healthy;
//    the rollback is then recorded as verified.
//
// Beneath these, and not needed to follow the path: `carryOut` and
// `reduce` (Record.swift, Reduce.swift) turn outcomes into the saved state
// and its effects; `CommitWriter` writes commits for every rollback;
// `plan` (Plan.swift) and `DeployMachine` are pure.

import DeployModel
import GitKit
import Platforms
import ReconcilerStatus
import Rollback
import SystemSupport

extension Reconciler {
    /// Between passes: supervision looks at the apps (`Supervisor.look`,
    /// below: a crash loop is found in `processEnded`), its outcomes are
    /// recorded, and the releases that failed go to the policy together
    /// (`rollBack`, next). Returns the rollback commit written, if one was:
    /// `tick` then passes over it at once (Pass.swift).
    @discardableResult
    package func supervise() -> OID? {
        guard let desired else { return nil }
        let world = SupervisedWorld(desired: desired, drivers: drivers, deployment: { [unowned self] in deployment(of: $0, $1) },
                                    wall: clock.wallMilliseconds(), monotonic: clock.monotonicMilliseconds())
        let outcomes = supervisor.look(at: state.apps, in: world)
        carryOut(outcomes.map(Step.record))
        let failures = outcomes.compactMap { outcome -> Failure? in
            if case .release(.failed(let failure, _, _)) = outcome { return failure }
            return nil
        }
        return rollBack(failures)
    }

    /// Step 8 (`Step.rollBack`): every failure found together (one pass
    /// over a release, one round of supervision) goes to
    /// `AutomaticRollback`, the service serve's alert desk uses too: one
    /// commit for the apps it allows, an escalation for each of the others.
    /// Its report is recorded through `RollbackEffects`, which the desk
    /// shares, and the state. No failed app is left behind unsaid. Returns
    /// the commit written, if one was.
    func rollBack(_ failures: [Failure]) -> OID? {
        guard let desired, !failures.isEmpty else { return nil }
        carryOut(failures.map { .record(.rollback(.failureNoticed($0))) })
        var service = AutomaticRollback(repoPath: options.repoPath, branch: repo.branchRef, trigger: .analysis)
        service.artifactRoot = options.artifactRoot
        service.artifacts = rollbackArtifacts
        service.limits = options.limits
        if let host = options.host { service.host = host }
        let failed = failures.map { failedRelease($0, summary: "\($0.app) release \($0.release.short) failed: \($0.reason)") }
        // The failure's notes reach the disk before the commit that answers them.
        flushNotes()
        var report = service.run(failed, policy: desired.config.policy, history: repo, now: clock.wallMilliseconds())
        // The reconciler does not retry a failed write: a human takes over.
        report.verdicts = report.verdicts.map { failure, verdict in
            if case .failed(let why) = verdict { return (failure, .escalated("automatic rollback failed: \(why)")) }
            return (failure, verdict)
        }
        carryOut(report.verdicts.compactMap { failed, verdict in
            guard case .committed(let commit) = verdict else { return nil }
            return .record(.rollback(.rolledBack(Failure(failed), commit: commit)))
        })
        rollbackEffects.record(report, detectedAt: { [state] in state.apps[$0.app]?.lastRollback?.failedAt }, now: clock.wallMilliseconds())
        carryOut(report.verdicts.map { .record(.rollback(.decided(Failure($0.failure)))) })
        if report.written != nil { options.onWrite() }
        return report.written
    }

    /// A human takes over `failure`: the state says so, and the effects
    /// every automatic rollback decision has follow (notes, notification,
    /// incident, metrics).
    func escalate(_ failure: Failure, _ why: String) {
        rollbackEffects.escalated(failedRelease(failure, summary: failure.reason), why)
    }

    /// A failure as the automatic rollback takes it, with what the app's
    /// state knows: the release to return to and the failed tree.
    private func failedRelease(_ failure: Failure, summary: String) -> FailedRelease {
        let app = state.apps[failure.app] ?? AppState()
        return FailedRelease(app: failure.app, release: failure.release, reason: failure.reason, summary: summary,
                             lastGood: app.lastGood, failedTree: app.failedTree)
    }

    /// The reconciler's side of `RollbackEffects`: notes queued with the
    /// state, escalations in the app's state.
    var rollbackEffects: RollbackEffects {
        RollbackEffects(trigger: .analysis, observer: options.observer, notifier: options.notifier, logger: logger,
                        note: { [self] entries, commit in carryOut([.record(.noted(entries, on: commit))]) },
                        incident: { [self] commit in writeIncident(commit) },
                        commit: { [repo] id in try? repo.git.commit(id) },
                        escalate: { [self] failure, why in carryOut([.record(.rollback(.escalated(Failure(failure), why)))]) })
    }

    /// The deployment a running instance was started from (rebuilt after a restart).
    func deployment(of instance: Instance, _ ref: AppRef) -> Deployment? {
        if let known = deployments[instance.tree] { return known }
        guard let spec = repo.appSpec(appTree: instance.tree, app: ref) else { return nil }
        let step = PlannedStep(ref: ref, spec: spec, tree: instance.tree, action: .none)
        guard let deployment = try? makeDeployment(step, commit: instance.commit) else { return nil }
        deployments[instance.tree] = deployment
        return deployment
    }
}

extension Failure {
    init(_ failed: FailedRelease) { self.init(app: failed.app, release: failed.release, reason: failed.reason) }
}


/// Watches running processes between passes, with timers of its own. It
/// acts on the platform (a restart) and returns what it found; the
/// reconciler records the outcomes and hands failed releases to the policy.
protocol Supervising {
    /// One look at the apps: restarts that are due, exits, health probes
    /// that are due. Failed releases come back as `.release(.failed)`.
    mutating func look(at apps: [String: AppState], in world: SupervisedWorld) -> [Outcome]
    /// Probe the app at the next look (it was just started).
    mutating func probeSoon(_ app: String)
}

/// What supervision sees of the reconciler: the desired state, the
/// drivers, the deployments of running instances, and the time.
struct SupervisedWorld {
    let desired: DesiredView
    let drivers: [Platform: any PlatformDriver]
    /// The deployment an instance was started from (rebuilt after a restart).
    let deployment: (Instance, AppRef) -> Deployment?
    /// Wall and monotonic milliseconds.
    let wall: Int64
    let monotonic: Int64
}

/// Restarts crashed processes with capped exponential backoff, probes
/// health, and fails a release that crash-loops or stays unhealthy within
/// its soak window.
struct Supervisor: Supervising {
    /// Restarts of a crashed process: 0.5 s, 1 s, 2 s... up to the cap.
    let restartBackoff: Backoff
    /// When each app's health is probed next (monotonic ms).
    private var nextProbe: [String: Int64] = [:]

    init(maxRestartBackoff: Int64) {
        restartBackoff = Backoff(base: 500, cap: maxRestartBackoff)
    }

    mutating func probeSoon(_ app: String) { nextProbe[app] = 0 }

    mutating func look(at apps: [String: AppState], in world: SupervisedWorld) -> [Outcome] {
        var outcomes: [Outcome] = []
        for (name, app) in apps.sorted(by: { $0.key < $1.key }) {
            // A rollout's new version is checked by `superviseTraffic`: a failure aborts it at once.
            guard app.rollout == nil, let instance = app.instance, instance.runsOn.isSupervised, app.health != .failed, app.health != .stopped,
                  let ref = world.desired.config.app(named: name), let driver = world.drivers[instance.runsOn],
                  let deployment = world.deployment(instance, ref) else { continue }
            if app.health == .restarting {
                if world.wall >= app.nextRestartAt ?? 0 { outcomes.append(restart(name, app, deployment, driver)) }
                continue
            }
            switch driver.observe(instance, deployment, thorough: false) {
            case .exited(let why), .drifted(let why):
                outcomes += processEnded(name, app, instance, why: why, world)
            case .running:
                outcomes += probeIfDue(name, app, instance, deployment, driver, world)
            }
        }
        return outcomes
    }

    /// A supervised process ended: restart it later, or, when it keeps
    /// crashing within the soak window, fail its release.
    private func processEnded(_ name: String, _ app: AppState, _ instance: Instance, why: String, _ world: SupervisedWorld) -> [Outcome] {
        let now = world.wall
        let soak = world.desired.config.policy.soak.milliseconds
        let soakStart = app.healthySince ?? now
        let exits = (app.exits + [now]).filter { $0 >= soakStart && now - $0 <= soak }
        if now - soakStart <= soak && exits.count >= world.desired.config.policy.crashLoopRestarts {
            let reason = "crash-looping: exited \(exits.count) times within \(Int(Double(now - soakStart) / 1000))s of becoming healthy (last: \(why))"
            return [.supervision(.crashLooping(app: name, exits: exits)), failed(name, app, tree: instance.tree, reason: reason, world)]
        }
        return [.supervision(.restarting(app: name, why: why, backoffMilliseconds: restartBackoff.delay(attempt: app.restarts + 1), exits: exits))]
    }

    private func restart(_ name: String, _ app: AppState, _ deployment: Deployment, _ driver: any PlatformDriver) -> Outcome {
        // What is left of the instance that ended goes first (an exited container; nothing for a process).
        if let ended = app.instance { driver.stop(ended) }
        do {
            return .supervision(.restarted(app: name, try driver.start(deployment) { _ in }))
        } catch {
            return .supervision(.restartFailed(app: name, "\(error)", backoffMilliseconds: restartBackoff.delay(attempt: app.restarts + 1)))
        }
    }

    /// Probes health every `health.interval` (faster while starting). A
    /// release unhealthy for `health.timeout` within its soak window fails.
    private mutating func probeIfDue(_ name: String, _ app: AppState, _ instance: Instance, _ deployment: Deployment, _ driver: any PlatformDriver,
                                     _ world: SupervisedWorld) -> [Outcome] {
        guard world.monotonic >= nextProbe[name] ?? 0 else { return [] }
        let interval = deployment.spec.health?.interval.milliseconds ?? 1_000
        nextProbe[name] = world.monotonic + (app.health == .healthy ? interval : min(interval, 100))
        let problem = driver.healthProblem(instance, deployment)
        if problem == "starting" { return [] }
        let probed = Outcome.supervision(.probed(app: name, instance, problem: problem))
        // Unhealthy since the first failed probe in a row (as `reduce` records it).
        let now = world.wall
        let timeout = deployment.spec.health?.timeout.milliseconds ?? 60_000
        guard let problem, let soakStart = app.healthySince, now - soakStart <= world.desired.config.policy.soak.milliseconds,
              case let since = app.unhealthySince ?? now, now - since >= timeout else { return [probed] }
        return [probed, failed(name, app, tree: instance.tree, reason: "unhealthy for \(Duration(milliseconds: now - since)) during its soak window: \(problem)", world)]
    }

    /// The app's release failed (`version`: its app.yaml's, when the desired state has one).
    private func failed(_ name: String, _ app: AppState, tree: OID, reason: String, _ world: SupervisedWorld) -> Outcome {
        .release(.failed(Failure(app: name, release: app.release ?? tree, reason: reason), tree: tree, version: world.desired.version(of: name, tree: tree)))
    }
}
