import GitKit

/// What a release did to an app.
public enum ReleaseKind: String, Sendable, Codable, CaseIterable {
    case deploy, rollback, pin, unpin
}

/// One release of one app: a commit on the branch's first-parent chain that
/// changed the app's tree (or its pin).
public struct Release: Sendable {
    public let app: String
    /// 1..n per app, oldest first, like Helm revisions.
    public var number: Int
    public let commit: OID
    /// The app's tree id after this commit; nil when the app was removed.
    public let tree: OID?
    /// The app's tree id before this commit; nil when the app was new.
    public let previousTree: OID?
    public let kind: ReleaseKind
    /// For rollbacks and pins: the commit whose state was restored, or for
    /// reverts the commit that was reverted.
    public let target: OID?
    /// True when this release reverts `target` (rather than restoring it).
    public let reverts: Bool
    /// Author, email and summary are filled for the releases whose details
    /// were asked for (see `ReleaseHistory.load`), empty otherwise.
    public internal(set) var author: String
    public internal(set) var email: String
    public let time: Int64
    public let offsetMinutes: Int32
    public internal(set) var summary: String
    /// The later commit that rolled this release back, if any.
    public var rolledBackBy: OID?
    /// Where this release's strings live in the release index.
    let stringOffset: Int
    /// The `version` label of app.yaml after and before this release.
    public var version: String? = nil
    public var previousVersion: String? = nil
}
