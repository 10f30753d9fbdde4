import Audit
import GitKit
import ReconcilerStatus
import Rollback

extension Reconciler {
    /// Writes the incident report of an automatic rollback as the note on
    /// `rollback` under refs/notes/rewind-incident (after the queued outcome
    /// notes, which it reads), through the notes' compare-and-swap. Returns
    /// its summary for the notification; nil (logged) when it cannot be written.
    func writeIncident(_ rollback: OID) -> String? {
        flushNotes()
        do {
            let report = try IncidentReport.write(repo, commit: rollback, through: notes)
            options.onWrite()
            logger.notice("incident report of \(rollback.short) written under \(ReleaseNote.incidentNotesRef): \(report.summary)")
            return report.summary
        } catch {
            logger.error("cannot write the incident report of \(rollback.short): \(error)")
            return nil
        }
    }
}
