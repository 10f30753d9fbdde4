import GitKit
import Rollback
import Testing

/// One classifier for what a commit is: releases, show, wait and the policy read it.
@Suite struct CommitKindTests {
    static let target = "0123456789abcdef0123456789abcdef01234567"

    static func trailers(_ action: RollbackTrailers.Action, trigger: RollbackTrailers.TriggerKind) -> String {
        let trailers = RollbackTrailers(action: action, targets: [OID(hex: target)!], apps: ["api"], reason: "r", trigger: trigger)
        return "Roll back api\n\n\(trailers.rendered)\n"
    }

    @Test func deploysRollbacksPinsAndGitReverts() {
        let deploy = CommitKind(message: "api 1.2\n\nmentions Rewind-Action in prose only\n")
        #expect(deploy.kind == .deploy && !deploy.returnsToEarlier && deploy.target() == nil && !deploy.isAutomaticRollback)

        let revert = CommitKind(message: "Revert \"api 1.2\"\n\nThis reverts commit \(Self.target).\n")
        #expect(revert.kind == .rollback && revert.isExactRevert && revert.returnsToEarlier && revert.target()?.hex == Self.target)
        #expect(revert.trigger == .manual && !revert.isAutomaticRollback)

        let automatic = CommitKind(message: Self.trailers(.rollback, trigger: .analysis))
        #expect(automatic.kind == .rollback && !automatic.isExactRevert && automatic.isAutomaticRollback && automatic.target(for: "api")?.hex == Self.target)

        // A person's rollback through the API or the UI is not automation's.
        #expect(!CommitKind(message: Self.trailers(.rollback, trigger: .api)).isAutomaticRollback)
        #expect(!CommitKind(message: Self.trailers(.rollback, trigger: .ui)).isAutomaticRollback)
        #expect(CommitKind(message: Self.trailers(.revert, trigger: .alert)).isExactRevert)

        let pin = CommitKind(message: Self.trailers(.pin, trigger: .manual))
        #expect(pin.kind == .pin && pin.returnsToEarlier && !pin.isAutomaticRollback)
        let unpin = CommitKind(message: Self.trailers(.unpin, trigger: .manual))
        #expect(unpin.kind == .unpin && !unpin.returnsToEarlier)
    }
}
