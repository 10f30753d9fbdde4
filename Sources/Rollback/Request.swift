import DeployModel
import GitKit

/// Where a rollback goes: a revision, or an app's release number (`#N`).
public enum TargetSpec: Sendable, Equatable, Codable {
    case revision(String)
    case release(Int)
    /// A revision for each app (automatic rollbacks of several failed apps in one commit).
    case perApp([String: String])

    /// Parses `#N` as a release number and anything else as a revision.
    public init(parsing text: String) {
        if text.hasPrefix("#"), let number = Int(text.dropFirst()) { self = .release(number) } else { self = .revision(text) }
    }
}

/// One rollback operation.
public enum Operation: Sendable, Equatable, Codable {
    case revert(String)
    case rollback(apps: [String], all: Bool, to: TargetSpec?)
    case pin(String, to: TargetSpec?)
    case unpin(String)
    /// Move an app's OCI artifact to `to` (tag and digest): an `updates:` proposal.
    case update(String, to: OCIReference)
    /// Let a rolled-back version (a digest, tag or version label) be proposed again.
    case allow(String, version: String)
}

/// A rollback operation with everything that goes into its commit.
public struct RollbackRequest: Sendable, Codable {
    public var operation: Operation
    public var reason: String?
    public var trigger: RollbackTrailers.TriggerKind = .manual
    public var alert: String?
    public var fingerprint: String?
    /// Override the irreversible-migration guard (humans only).
    public var force = false
    /// Directory for relative artifact paths; overrides rewind.yaml's `artifactRoot`.
    public var artifactRoot: String?
    /// Checks artifacts that are not files on this host (OCI, downloads):
    /// without one, a rollback to such a release is refused.
    public var artifacts: (any ArtifactAvailability)?
    /// For each app, the release (commit) this request set out to undo, set
    /// once the default target is resolved. When planning again (a lost
    /// race, a remote that moved), an app whose current release is no longer
    /// this one but a rollback was rolled back by someone else meanwhile.
    public var undoing: [String: String]?
    /// Who acts, for the `Rewind-Actor` trailer (automation, the API).
    public var actor: String?
    /// The actor is a break-glass account (`Rewind-Break-Glass`): the audit shows it as such.
    public var breakGlass = false

    /// Everything but the artifact checker, which belongs to the process.
    private enum CodingKeys: String, CodingKey {
        case operation, reason, trigger, alert, fingerprint, force, artifactRoot, undoing, actor, breakGlass
    }

    /// Creates a request written by `author`: every writer (the CLI, the
    /// API and web UI, automatic rollback, an operator's abort, the update
    /// proposer) says who it is and how artifacts are checked, here.
    public init(_ operation: Operation, reason: String?, by author: RequestAuthor) {
        self.operation = operation
        self.reason = reason
        trigger = author.trigger
        actor = author.actor
        artifactRoot = author.artifactRoot
        artifacts = author.artifacts
    }
}

/// Who writes a commit and how its artifacts are checked: the same for
/// every request one writer makes. No defaults: each writer decides.
public struct RequestAuthor: Sendable {
    public var trigger: RollbackTrailers.TriggerKind
    /// For the `Rewind-Actor` trailer (nil: the commit's author says who).
    public var actor: String?
    /// Directory for relative artifact paths (nil: rewind.yaml's `artifactRoot`).
    public var artifactRoot: String?
    /// Checks artifacts that are not files on this host (nil: a rollback to such a release is refused).
    public var artifacts: (any ArtifactAvailability)?

    public init(trigger: RollbackTrailers.TriggerKind, actor: String?, artifactRoot: String?, artifacts: (any ArtifactAvailability)?) {
        self.trigger = trigger
        self.actor = actor
        self.artifactRoot = artifactRoot
        self.artifacts = artifacts
    }
}

/// How one app changes in a planned commit.
public struct AppChange: Sendable {
    public let app: String
    public let fromTree: OID?
    public let toTree: OID?
    /// The parsed app.yaml before and after; nil where absent or invalid.
    let fromSpec: AppSpec?
    let toSpec: AppSpec?

    public var fromVersion: String? { fromSpec?.version }
    public var toVersion: String? { toSpec?.version }
}

/// A commit ready to be written on top of `parent`.
public struct PlannedCommit: Sendable {
    public let parent: OID
    public let parentTree: OID
    public let tree: OID
    public let message: String
    public let changes: [AppChange]
    /// Guards overridden with --force, in words.
    public let forced: [String]
    /// For each rolled-back app, the release this commit undoes.
    public var undoing: [String: OID] = [:]
    /// Apps named in the request that this commit leaves alone, and why.
    public var skipped: [String] = []
    /// The guards this commit passed, in words.
    public var guardsChecked: [String] = []
    /// With `CommitWriter.diffs`: the unified diff of each changed app's
    /// files (and of the pins file, under its name), in the order of `changes`.
    public var diffs: [(app: String, diff: String)] = []
}

/// What planning decided.
public enum PlanOutcome: Sendable {
    case commit(PlannedCommit)
    /// Nothing to write; the message says why (already rolled back, not pinned).
    case alreadyDone(String)
}
