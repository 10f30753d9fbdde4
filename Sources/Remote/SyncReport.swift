/// What one sync with the remote did.
public struct SyncReport: Sendable {
    /// True when the fetch reached the remote.
    public var fetched = false
    /// Branches moved to what the remote has.
    public var updated: [String] = []
    /// Commits the remote accepted in this sync.
    public var pushed: [String] = []
    /// Queued commits the remote turned out to have already (another
    /// writer pushed the identical commit first).
    public var alreadyOnRemote: [String] = []
    /// Queued rollbacks written again on top of a remote that had moved.
    public var replanned: [String] = []
    /// Queued rollbacks that were no longer needed, with the reason.
    public var alreadyDone: [String] = []
    /// Branches rollbacks were proposed on (protected followed branch).
    public var proposed: [String] = []
    /// Commits still waiting for the remote.
    public var unpushed = 0
    /// Why the sync did not finish; nil when it did.
    public var error: String?
    /// True when the host stalled: a deadline passed (or another process's sync stalled).
    public var timedOut = false
    /// The server's reason for the last push it rejected ("main: pre-receive hook declined").
    var lastRejection: String?

    public init() {}
}
