import DeployModel
import GitKit
import Platforms
import ReconcilerStatus
import Rollback
import SystemSupport

extension Reconciler {
    /// Step 6 for one app; a failure when the release did not make it.
    func apply(_ step: PlannedStep, tip: OID) -> Failure? {
        switch step.action {
        case .none: return nil
        case .deploy: return deploy(step, tip: tip)
        case .verify: return verify(step, tip: tip)
        case .observe: return correctDrift(step, tip: tip)
        }
    }

    /// Starts the step's tree, waits until healthy, then retires the old
    /// instance: one app on its own (drift correction, a rollback to verify
    /// that is not running). A pass deploys its waves with `runWaves`.
    func deploy(_ step: PlannedStep, tip: OID) -> Failure? {
        var (machine, progress) = beginDeploy(step, tip: tip, background: false)
        while true {
            switch progress {
            case .done(let failure):
                return failure
            case .concluded:
                progress = drive(&machine, .proceed)
            case .waiting:
                progress = drive(&machine, .look(stopRequested: options.stop.requested))
                if case .waiting = progress { clock.sleep(milliseconds: 10) }
            }
        }
    }

    /// How long a new instance has to become healthy.
    static func healthTimeout(_ spec: AppSpec) -> Int64 { spec.health?.timeout.milliseconds ?? 60_000 }

    /// How often a new instance is probed until healthy: its health interval, at most 100 ms apart.
    static func probePause(_ spec: AppSpec) -> Int64 { min(spec.health?.interval.milliseconds ?? 1_000, 100) }

    /// `verified` when `release` is a rollback commit not verified here
    /// before. When Prometheus triggers apply, the queries must be back under
    /// their thresholds too: `awaitingTriggers`, and `analyse()` records
    /// `verified` once they are.
    func verificationOutcome(_ name: String, release: OID) -> Outcome? {
        guard let commit = try? repo.git.commit(release), CommitKind(commit).returnsToEarlier, !alreadyVerified(name, release) else { return nil }
        if metrics != nil, desired?.config.policy.triggers.isEmpty == false { return .rollback(.awaitingTriggers(app: name, rollback: release)) }
        return .rollback(.verified(app: name, commit, what: "healthy"))
    }

    /// True when this host recorded `verified` for this app on this commit
    /// before (a restart applying the rollback again): its timing, metrics
    /// and notification stay those of the first time.
    private func alreadyVerified(_ name: String, _ release: OID) -> Bool {
        let key = ReleaseNote.key(.verified, app: name)
        if state.pendingNotes.contains(where: { $0.commit == release.hex && $0.key == key }) { return true }
        let note = (try? repo.git.note(on: release, notesRef: ReleaseNote.notesRef)) ?? nil
        return note?.split(separator: "\n").contains { ReleaseNote.isLine($0, key: key, host: notes.host) } ?? false
    }

    /// A rollback commit that sets an app to the tree already running: check
    /// that it is healthy, and record `verified` (or escalate).
    private func verify(_ step: PlannedStep, tip: OID) -> Failure? {
        let name = step.ref.name
        guard let instance = state.apps[name]?.instance, let driver = drivers[step.spec.platform] else { return deploy(step, tip: tip) }
        let deployment: Deployment
        do { deployment = try makeDeployment(step, commit: tip) } catch { return fail(name, release: tip, tree: step.tree, reason: "\(error)") }
        if let problem = waitHealthy(driver, instance, deployment) {
            return fail(name, release: tip, tree: step.tree, reason: "still unhealthy after the rollback: \(problem)")
        }
        carryOut([.record(.release(.running(app: name, release: tip))), .verify(app: name, tip)])
        return nil
    }

    /// Full passes ask exec apps' observe command whether what runs is what was applied.
    private func correctDrift(_ step: PlannedStep, tip: OID) -> Failure? {
        let name = step.ref.name
        guard let instance = state.apps[name]?.instance, let driver = drivers[step.spec.platform],
              let deployment = try? makeDeployment(step, commit: instance.commit) else { return nil }
        guard case .drifted(let why) = driver.observe(instance, deployment, thorough: true) else { return nil }
        logger.warning("drift in \(name): \(why); applying \(step.spec.version) again")
        return deploy(step, tip: tip)
    }

    /// Polls health until healthy, the process ends, or the timeout passes.
    func waitHealthy(_ driver: any PlatformDriver, _ instance: Instance, _ deployment: Deployment, logStart: Int? = nil) -> String? {
        let deadline = clock.monotonicMilliseconds() + Self.healthTimeout(deployment.spec)
        let pause = Self.probePause(deployment.spec)
        while true {
            if let outcome = probe(driver, instance, deployment, deadline: deadline, logStart: logStart) { return outcome }
            if options.stop.requested { return "the reconciler was stopped while waiting for health" }
            clock.sleep(milliseconds: pause)
        }
    }

    /// A release failed: recorded, and returned for the policy.
    func fail(_ name: String, release: OID, tree: OID, reason: String) -> Failure {
        let (failure, outcome) = failed(name, release: release, tree: tree, reason: reason)
        carryOut([.record(outcome)])
        return failure
    }

    /// A release failed, then goes to the policy.
    func failing(_ name: String, release: OID, tree: OID, reason: String) -> [Step] {
        let (failure, outcome) = failed(name, release: release, tree: tree, reason: reason)
        return [.record(outcome), .rollBack([failure])]
    }

    /// The failure, and its outcome (`version`: the app.yaml's of the tree, when the desired state has one).
    private func failed(_ name: String, release: OID, tree: OID, reason: String) -> (Failure, Outcome) {
        let failure = Failure(app: name, release: release, reason: reason)
        return (failure, .release(.failed(failure, tree: tree, version: desired?.version(of: name, tree: tree))))
    }

    func releaseCommit(_ ref: AppRef, tree: OID, tip: OID) -> OID {
        RollbackHistory.releaseCommit(repo, ref, tree: tree, tip: tip)
    }
}
