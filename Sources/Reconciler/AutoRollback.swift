import DeployModel
import GitKit
import ReconcilerStatus
import Rollback
import SystemSupport

extension Reconciler {
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
}

extension Failure {
    init(_ failed: FailedRelease) { self.init(app: failed.app, release: failed.release, reason: failed.reason) }
}
