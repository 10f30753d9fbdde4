import GitKit
import Logging
import Reconciler
import ReconcilerStatus
import Rollback
import Synchronization
import Testing

/// What follows an automatic rollback's verdicts is one path for the
/// reconciler and serve's alert desk: only the trigger and where things are
/// written differ.
@Suite struct RollbackEffectsTests {
    final class Recorded: ReconcilerObserver, @unchecked Sendable {
        let lock = Mutex<[String]>([])
        var lines: [String] { lock.withLock { $0 } }
        func add(_ line: String) { lock.withLock { $0.append(line) } }
        func passFinished(milliseconds: Int64) {}
        func releaseApplied(app: String, outcome: String) {}
        func automaticRollback(app: String, trigger: String, outcome: String, millisecondsToCommit: Int64?) {
            add("metric \(app) \(trigger) \(outcome) \(millisecondsToCommit.map(String.init) ?? "-")")
        }
        func rollbackRecovered(app: String, milliseconds: Int64?) {}
    }

    static let failed = OID(hex: String(repeating: "a", count: 40))!
    static let written = OID(hex: String(repeating: "b", count: 40))!

    static func failure(_ app: String, lastGood: KnownGood?) -> FailedRelease {
        FailedRelease(app: app, release: failed, reason: "crash loop", summary: "\(app) failed", lastGood: lastGood, failedTree: OID(hex: String(repeating: "f", count: 40))!)
    }

    static func effects(_ trigger: RollbackTrailers.TriggerKind, _ recorded: Recorded, failedIsRollback: Bool = false) -> RollbackEffects {
        RollbackEffects(trigger: trigger, observer: recorded, notifier: nil, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                        note: { entries, commit in entries.forEach { recorded.add("note \($0.outcome.rawValue) \($0.app) \($0.summary) on \(commit.short)") } },
                        incident: { recorded.add("incident \($0.short)"); return "summary" },
                        commit: { _ in nil },
                        escalate: { failure, why in recorded.add("escalate \(failure.app): \(why)") })
    }

    @Test(arguments: [RollbackTrailers.TriggerKind.analysis, .alert])
    func everyVerdictHasItsNotesMetricsAndEscalation(trigger: RollbackTrailers.TriggerKind) {
        let recorded = Recorded()
        var report = RollbackReport()
        report.verdicts = [
            (Self.failure("api", lastGood: KnownGood(commit: OID(hex: String(repeating: "c", count: 40))!, tree: OID(hex: String(repeating: "0", count: 40))!, version: "1.1")), .committed(Self.written)),
            (Self.failure("web", lastGood: nil), .escalated("cooldown")),
            (Self.failure("db", lastGood: nil), .refused("a migration")),
            (Self.failure("jobs", lastGood: nil), .alreadyDone("someone did")),
            (Self.failure("cron", lastGood: nil), .failed("disk full")),
        ]
        Self.effects(trigger, recorded).record(report, detectedAt: { _ in 1_000 }, now: 4_000)
        let t = trigger.rawValue
        #expect(recorded.lines == [
            // Both triggers note what the rollback returned to.
            "note rolled-back api by=bbbbbbb to=1.1 on aaaaaaa",
            "metric api \(t) committed 3000",
            "escalate web: cooldown",
            "metric web \(t) escalated -",
            "note escalated web reason=cooldown on aaaaaaa",
            "escalate db: a migration",
            "metric db \(t) refused -",
            "note escalated db reason=a migration on aaaaaaa",
            "metric jobs \(t) already-done -",
            "metric cron \(t) failed -",
        ])
    }
}
