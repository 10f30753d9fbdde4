import Audit
import DeployModel
import GitKit
import Logging
import Reconciler
import ReconcilerStatus
import Remote
import Rollback
import SystemSupport

/// Alertmanager's alerts at the desk: deduplicated, then through the
/// automatic rollback policy, the same service the reconciler uses.
extension RollbackDesk {
    /// Decides every alert of a webhook body.
    func handle(_ payload: AlertmanagerPayload, receivedAt: Int64) -> [AlertDecision] {
        payload.alerts.map { decide($0, groupKey: payload.groupKey, receivedAt: receivedAt) }
    }

    private func decide(_ alert: AlertmanagerPayload.Alert, groupKey: String, receivedAt: Int64) -> AlertDecision {
        // Labels come from outside: bounded before they reach a trailer, a note, a log line or the response.
        let name = Bounded.text(alert.labels["alertname"] ?? "unnamed")
        metrics.count("rewind_alerts_received_total", [("status", ["firing", "resolved"].contains(alert.status) ? alert.status : "other")])
        var decision = AlertDecision(alertname: name, app: alert.labels[options.appLabel].map { Bounded.text($0) },
                                     fingerprint: alert.fingerprint.map { Bounded.text($0) }, outcome: .ignored, reason: "")
        guard alert.status == "firing" else {
            decision.reason = "resolved alerts do nothing"
            return decision
        }
        guard let app = decision.app else {
            decision.reason = "no '\(options.appLabel)' label: Rewind cannot tell which app the alert is about"
            return decision
        }
        if !options.severities.isEmpty, !options.severities.contains(alert.labels["severity"] ?? "") {
            decision.reason = "severity '\(Bounded.text(alert.labels["severity"] ?? ""))' is not one of \(options.severities.sorted().joined(separator: ", "))"
            return decision
        }
        let key = "\(groupKey)|\(alert.fingerprint ?? alert.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))|\(alert.startsAt)"
        guard !seen.contains(key) else {
            metrics.count("rewind_alerts_deduplicated_total")
            decision.outcome = .duplicate
            decision.reason = "already handled (same groupKey, fingerprint and startsAt)"
            return decision
        }
        let decided = rollBack(app, alert: alert, decision: decision, receivedAt: receivedAt)
        // A failure (git, the file system) is not remembered: Alertmanager's next send retries it.
        if decided.outcome != .failed { seen.insert(key, now: receivedAt) }
        return decided
    }

    /// The policy, then the rollback commit: `AutomaticRollback`.
    private func rollBack(_ app: String, alert: AlertmanagerPayload.Alert, decision: AlertDecision, receivedAt: Int64) -> AlertDecision {
        var decision = decision
        let failed: FailedRelease
        let policy: RollbackPolicy
        do {
            guard let found = try failedRelease(app, alert: alert, alertname: decision.alertname) else {
                let apps = (try? repo.config(tree: try repo.git.commit(try repo.tip()).tree).apps.map(\.name)) ?? []
                decision.reason = "unknown app '\(app)'; apps in rewind.yaml: \(apps.joined(separator: ", "))"
                return decision
            }
            (failed, policy) = found
        } catch {
            decision.outcome = .failed
            logger.error("alert \(decision.alertname): \(error)")
            decision.reason = RequestError.publicText(error)
            return decision
        }
        var service = AutomaticRollback(repoPath: options.repoPath, branch: repo.branchRef, trigger: .alert)
        service.requireKnownGood = false
        service.alert = decision.alertname
        service.fingerprint = decision.fingerprint
        service.artifactRoot = options.artifactRoot
        service.artifacts = options.artifacts
        let written = DeskNotes(repoPath: options.repoPath, branch: repo.branchRef, logger: logger)
        // The alert is the release's failure: noted with its labels and
        // startsAt (the audit's time to detect, the incident's timeline).
        let labels = alert.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        written.note([NoteRecorder.Entry(outcome: .failed, app: app, fields: [
            ("reason", failed.reason), ("alert", decision.alertname), ("startsAt", Bounded.text(alert.startsAt)), ("labels", Bounded.text(labels, limit: Bounded.maxReasonLength)),
        ])], on: failed.release)
        let report = service.run([failed], policy: policy, history: repo, now: Clock.wallMilliseconds())
        let effects = RollbackEffects(trigger: .alert, observer: metrics, notifier: notifier, logger: logger,
                                      note: { written.note($0, on: $1) }, incident: { written.incident($0) },
                                      commit: { [repo] id in try? repo.git.commit(id) },
                                      escalate: { [store] failure, why in store.recordEscalation(app: failure.app, release: failure.release.hex, tree: failure.failedTree?.hex, reason: why) })
        effects.record(report, detectedAt: { _ in receivedAt }, now: Clock.wallMilliseconds())
        let verdict = report.verdicts.first?.verdict ?? .failed("no decision")
        if case .committed = verdict { options.syncLoop?.trigger() }
        return decision.deciding(verdict)
    }

    /// The release the alert is about (the app's at the tip) as a failure,
    /// and the policy; nil for an app rewind.yaml does not have.
    private func failedRelease(_ app: String, alert: AlertmanagerPayload.Alert, alertname: String) throws -> (FailedRelease, RollbackPolicy)? {
        let tip = try repo.tip()
        let config = try repo.config(tree: try repo.git.commit(tip).tree)
        guard let ref = config.app(named: app), let tree = try repo.appTree(ref, in: try repo.git.commit(tip).tree) else { return nil }
        let release = RollbackHistory.releaseCommit(repo, ref, tree: tree, tip: tip)
        let summary = alert.annotations?["summary"].map { ": \($0)" } ?? ""
        let failed = FailedRelease(app: app, release: release, reason: "alert \(alertname) firing", summary: "alert \(alertname) firing on \(app) release \(release.short)\(summary)",
                                   lastGood: store.loadApp(app)?.lastGood.flatMap { $0.tree == tree ? nil : $0 }, failedTree: tree)
        return (failed, config.policy)
    }
}

extension AlertDecision {
    /// The decision the policy's verdict makes.
    func deciding(_ verdict: RollbackVerdict) -> AlertDecision {
        var decision = self
        switch verdict {
        case .committed(let commit):
            decision.outcome = .rolledBack
            decision.commit = commit.hex
            decision.reason = "rolled back by commit \(commit.short)"
        case .alreadyDone(let why):
            decision.outcome = .alreadyRolledBack
            decision.reason = why
        case .escalated(let why):
            decision.outcome = .escalated
            decision.reason = why
        case .refused(let why):
            decision.outcome = .refused
            decision.reason = why
        case .failed:
            decision.outcome = .failed
            decision.reason = "internal error"
        }
        return decision
    }
}

/// The desk's notes and incident reports, each written at once through a
/// handle of its own (the desk's keeps new objects in memory, see
/// CommitWriter).
struct DeskNotes {
    let repoPath: String
    let branch: String?
    let logger: Logger

    /// Adds outcome lines to the notes (a handle of its own: the desk's
    /// keeps new objects in memory, see CommitWriter).
    func note(_ entries: [NoteRecorder.Entry], on commit: OID) {
        do {
            let recorder = NoteRecorder(git: try Repository.open(repoPath), host: Clock.hostName())
            try recorder.write(recorder.render(entries, on: commit))
        } catch {
            logger.error("cannot record \(entries.map(\.outcome.rawValue).joined(separator: ", ")) as a note on \(commit.short): \(error)")
        }
    }

    /// When the escalated release is itself an automatic rollback (it did
    /// not recover), its incident report goes under refs/notes/rewind-incident;
    /// returns the report's summary.
    func incident(_ release: OID) -> String? {
        do {
            let repo = try DeployRepository(path: repoPath, branch: branch)
            guard RollbackTrailers.parse(try repo.git.commit(release).message)?.trigger.isAutomatic == true else { return nil }
            return try IncidentReport.write(repo, commit: release, through: NoteRecorder(git: repo.git, host: Clock.hostName())).summary
        } catch {
            logger.error("cannot write the incident report of \(release.short): \(error)")
            return nil
        }
    }
}
