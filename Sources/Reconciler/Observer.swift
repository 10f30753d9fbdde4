/// Told what the reconciler does, for metrics. Called from the reconciler's
/// thread; implementations must be thread-safe.
public protocol ReconcilerObserver: Sendable {
    /// A pass ended after `milliseconds`.
    func passFinished(milliseconds: Int64)
    /// A release of `app` was applied (`healthy`) or failed (`failed`).
    func releaseApplied(app: String, outcome: String)
    /// An automatic rollback decision: `committed`, `escalated` or `already-done`,
    /// with the time from the failure to the commit when one was written.
    func automaticRollback(app: String, trigger: String, outcome: String, millisecondsToCommit: Int64?)
    /// A rollback was verified, `milliseconds` after its trigger (or its commit's time).
    func rollbackRecovered(app: String, milliseconds: Int64?)
}

/// Observes nothing.
public struct NoObserver: ReconcilerObserver {
    public init() {}
    public func passFinished(milliseconds: Int64) {}
    public func releaseApplied(app: String, outcome: String) {}
    public func automaticRollback(app: String, trigger: String, outcome: String, millisecondsToCommit: Int64?) {}
    public func rollbackRecovered(app: String, milliseconds: Int64?) {}
}
