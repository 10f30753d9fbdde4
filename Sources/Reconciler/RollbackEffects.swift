import GitKit
import Logging
import ReconcilerStatus
import Rollback
import SystemSupport

/// What follows an automatic rollback's report, the same for the
/// reconciler (trigger `analysis`) and `rewind serve`'s alert desk (trigger
/// `alert`): the notes on the failed release, the metrics, the
/// notifications, the incident report, the escalation and the log lines.
/// Only where they are written differs, and the caller passes that in.
public struct RollbackEffects {
    public let trigger: RollbackTrailers.TriggerKind
    public let observer: any ReconcilerObserver
    public let notifier: Notifier?
    public let logger: Logger
    /// Adds outcome lines to a commit's notes.
    public var note: ([NoteRecorder.Entry], OID) -> Void
    /// Writes the incident report of an automatic rollback; its summary.
    public var incident: (OID) -> String?
    /// Reads a commit of the branch (is a failed release itself a rollback?).
    public var commit: (OID) -> Commit?
    /// Writes an escalation down where status reads it (a human takes over).
    public var escalate: (FailedRelease, String) -> Void

    public init(trigger: RollbackTrailers.TriggerKind, observer: any ReconcilerObserver, notifier: Notifier?, logger: Logger,
                note: @escaping ([NoteRecorder.Entry], OID) -> Void, incident: @escaping (OID) -> String?,
                commit: @escaping (OID) -> Commit?, escalate: @escaping (FailedRelease, String) -> Void) {
        self.trigger = trigger
        self.observer = observer
        self.notifier = notifier
        self.logger = logger
        self.note = note
        self.incident = incident
        self.commit = commit
        self.escalate = escalate
    }

    /// Records every verdict of `report`; `detectedAt` is when each failure
    /// was first seen (wall ms: the time to commit), `now` wall ms.
    public func record(_ report: RollbackReport, detectedAt: (FailedRelease) -> Int64?, now: Int64) {
        for (failure, verdict) in report.verdicts {
            switch verdict {
            case .committed(let commit):
                committed(failure, commit: commit, millisecondsToCommit: detectedAt(failure).map { now - $0 })
            case .alreadyDone(let why):
                observer.automaticRollback(app: failure.app, trigger: trigger.rawValue, outcome: "already-done", millisecondsToCommit: nil)
                logger.info("no automatic rollback of \(failure.app): \(why)")
            case .escalated(let why):
                escalated(failure, why, outcome: "escalated")
            case .refused(let why):
                escalated(failure, why, outcome: "refused")
            case .failed(let why):
                observer.automaticRollback(app: failure.app, trigger: trigger.rawValue, outcome: "failed", millisecondsToCommit: nil)
                logger.error("automatic rollback of \(failure.app) failed: \(why)")
            }
        }
    }

    /// A rollback commit was written for `failure`.
    func committed(_ failure: FailedRelease, commit: OID, millisecondsToCommit: Int64?) {
        var fields = [("by", commit.short)]
        if let good = failure.lastGood { fields.append(("to", good.version)) }
        note([NoteRecorder.Entry(outcome: .rolledBack, app: failure.app, fields: fields)], failure.release)
        observer.automaticRollback(app: failure.app, trigger: trigger.rawValue, outcome: "committed", millisecondsToCommit: millisecondsToCommit)
        logger.notice("rolled back \(failure.app)\(failure.lastGood.map { " to \($0.version)" } ?? "") with commit \(commit.short) (\(trigger.rawValue))")
        notifier?.send(RollbackEvent(.started, app: failure.app, trigger: trigger.rawValue, commit: commit.hex, reason: failure.summary, release: failure.release.hex))
    }

    /// Not rolled back: a human takes over. When the failed release is
    /// itself a rollback, that rollback failed (notified as such), and when
    /// automation wrote it, its incident report is written.
    public func escalated(_ failure: FailedRelease, _ why: String, outcome: String = "escalated") {
        escalate(failure, why)
        observer.automaticRollback(app: failure.app, trigger: trigger.rawValue, outcome: outcome, millisecondsToCommit: nil)
        let kind = commit(failure.release).map(CommitKind.init)
        if kind?.returnsToEarlier == true {
            notifier?.send(RollbackEvent(.failed, app: failure.app, trigger: trigger.rawValue, commit: failure.release.hex, reason: failure.reason,
                                         release: failure.release.hex))
        }
        note([NoteRecorder.Entry(outcome: .escalated, app: failure.app, fields: [("reason", why)])], failure.release)
        var event = RollbackEvent(.escalated, app: failure.app, trigger: trigger.rawValue, commit: failure.release.hex, reason: why, release: failure.release.hex)
        if kind?.isAutomaticRollback == true { event.incident = incident(failure.release) }
        notifier?.send(event)
        logger.critical("\(failure.app): \(why)")
    }
}
