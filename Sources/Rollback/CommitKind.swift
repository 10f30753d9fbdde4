import GitKit

/// What a commit is to Rewind, read from its message alone: a deploy, a
/// rollback (Rewind's or git's own revert), a pin or an unpin. The one
/// classifier behind releases, `show`, `wait` and the automatic-rollback
/// policy.
public struct CommitKind: Sendable, Equatable {
    public let kind: ReleaseKind
    /// Rewind's trailers, when the message has them.
    public let trailers: RollbackTrailers?
    /// The commit a `git revert` message names (only without trailers).
    public let revertTarget: OID?

    /// Classifies a commit message.
    public init(message: String) {
        trailers = RollbackTrailers.mayCarryTrailers(message) ? RollbackTrailers.parse(message) : nil
        revertTarget = trailers == nil ? RollbackTrailers.gitRevertTarget(message) : nil
        if let trailers {
            switch trailers.action {
            case .revert, .rollback: kind = .rollback
            case .pin: kind = .pin
            case .unpin: kind = .unpin
            case .update, .allow: kind = .deploy
            }
        } else {
            kind = revertTarget == nil ? .deploy : .rollback
        }
    }

    /// Classifies a commit.
    public init(_ commit: Commit) { self.init(message: commit.message) }

    /// The commit restored for `app` (nil: the first or only target).
    public func target(for app: String? = nil) -> OID? {
        if let trailers { return app.map { trailers.target(for: $0) } ?? trailers.targets.first }
        return revertTarget
    }

    /// A revert restores its target's parent exactly (Rewind's `revert`
    /// action, or git's own); a rollback restores the target's trees.
    public var isExactRevert: Bool { trailers?.action == .revert || revertTarget != nil }

    /// Returns to something that ran before: a rollback or a pin. The policy
    /// never rolls one of these back automatically (a failing one escalates).
    public var returnsToEarlier: Bool { kind == .rollback || kind == .pin }

    /// A rollback that automation wrote (an alert, the reconciler's analysis).
    public var isAutomaticRollback: Bool { kind == .rollback && trailers?.trigger.isAutomatic == true }

    /// Who wrote it: manual for anything without Rewind's trailers.
    public var trigger: RollbackTrailers.TriggerKind { trailers?.trigger ?? .manual }
}
