import DeployModel
import GitKit
@testable import Reconciler
import Rollback
import Testing

/// The automatic rollback policy as a pure function: one row per rule.
@Suite struct PolicyTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let releaseAge: Int64
        let isRollback: Bool
        let hasLastGood: Bool
        let recent: [Int64]
        /// Nil: rolled back; else a word the escalation must contain.
        let escalation: String?
        var testDescription: String { name }
    }

    static let now: Int64 = 1_800_000_000
    static let cases: [Case] = [
        Case(name: "young release, nothing recent", releaseAge: 60, isRollback: false, hasLastGood: true, recent: [], escalation: nil),
        Case(name: "a rollback is never rolled back", releaseAge: 60, isRollback: true, hasLastGood: true, recent: [], escalation: "rollback did not recover"),
        Case(name: "older than the window", releaseAge: 31 * 60, isRollback: false, hasLastGood: true, recent: [], escalation: "window"),
        Case(name: "nothing to return to", releaseAge: 60, isRollback: false, hasLastGood: false, recent: [], escalation: "no earlier healthy release"),
        Case(name: "within the cooldown", releaseAge: 60, isRollback: false, hasLastGood: true, recent: [now - 120], escalation: "cooldown"),
        Case(name: "after the cooldown", releaseAge: 60, isRollback: false, hasLastGood: true, recent: [now - 11 * 60], escalation: nil),
        Case(name: "max per hour reached", releaseAge: 60, isRollback: false, hasLastGood: true, recent: [now - 50 * 60, now - 40 * 60, now - 30 * 60], escalation: "maxPerHour"),
    ]

    @Test(arguments: cases)
    func decides(_ c: Case) {
        let policy = AutoRollbackPolicy(policy: RollbackPolicy())  // window 30m, cooldown 10m, 3 per hour
        let good = KnownGood(commit: OID(hex: String(repeating: "a", count: 40))!, tree: OID(hex: String(repeating: "1", count: 40))!, version: "1.0.0")
        let decision = policy.decide(app: "api", releaseTime: Self.now - c.releaseAge, isRollback: c.isRollback, failedTree: OID(hex: String(repeating: "2", count: 40))!,
                                     lastGood: c.hasLastGood ? good : nil, recent: c.recent, now: Self.now)
        switch (decision, c.escalation) {
        case (.rollback(let to), nil): #expect(to == good)
        case (.escalate(let why), let word?): #expect(why.contains(word), "\(why)")
        default: Issue.record("unexpected decision \(decision) for \(c.name)")
        }
    }
}
