import DeployModel
import GitKit
import SystemSupport

/// What one commit did to the apps, for `rewind show`.
public struct CommitDetails: Sendable {
    /// One app a commit changed.
    public struct Change: Sendable {
        public let app: String
        public let fromTree: OID?
        public let toTree: OID?
        public let fromVersion: String?
        public let toVersion: String?
        /// Changed files, relative to the repository root.
        public let files: [String]
    }

    public let commit: Commit
    public let kind: ReleaseKind
    public let target: OID?
    public let trailers: RollbackTrailers?
    public let apps: [Change]
    /// Set when the commit's rewind.yaml is broken (see `load`).
    public var warning: String?

    /// Compares a commit with its first parent, app by app (apps from the
    /// commit's rewind.yaml; when that is broken, from the newest valid one
    /// before it, and `warning` says so: a broken commit is what one most
    /// needs to see).
    public static func load(_ repo: DeployRepository, commit id: OID) throws -> CommitDetails {
        let commit = try gitStep("reading \(id.short)") { try repo.git.commit(id) }
        let parentTree = try commit.parents.first.map { p in try gitStep("reading \(p.short)") { try repo.git.commit(p).tree } }
        let (config, warning) = try repo.configForListing(at: id, naming: "")
        let files = try gitStep("comparing with the parent") { try repo.git.changedPaths(from: parentTree, to: commit.tree) }
        var apps: [Change] = []
        for app in config.apps {
            let before = try parentTree.flatMap { try repo.appTree(app, in: $0) }
            let after = try repo.appTree(app, in: commit.tree)
            guard before != after else { continue }
            apps.append(Change(app: app.name, fromTree: before, toTree: after,
                               fromVersion: repo.appSpec(appTree: before, app: app)?.version, toVersion: repo.appSpec(appTree: after, app: app)?.version,
                               files: files.filter { $0.hasPrefix(app.path + "/") }))
        }
        let kind = CommitKind(commit)
        var details = CommitDetails(commit: commit, kind: kind.kind, target: kind.target(), trailers: kind.trailers, apps: apps)
        details.warning = warning
        return details
    }
}

extension CommitDetails {
    /// `rewind show --format json` (and the API's release).
    public var json: JSON {
        .object(jsonFields)
    }

    public var jsonFields: [(String, JSON)] {
        [
            ("commit", .string(commit.id.hex)), ("parents", .array(commit.parents.map { .string($0.hex) })),
            ("author", .string(commit.author.name)), ("email", .string(commit.author.email)),
            ("date", .string(Dates.utc(commit.author.time))),
            ("summary", .string(commit.summary)), ("kind", .string(kind.rawValue)), ("target", .optional(target?.hex)),
            ("apps", .array(apps.map { c in
                .object([("app", .string(c.app)), ("versionBefore", .optional(c.fromVersion)), ("version", .optional(c.toVersion)),
                         ("treeBefore", .optional(c.fromTree?.hex)), ("tree", .optional(c.toTree?.hex)), ("files", .array(c.files.map { .string($0) }))])
            })),
        ]
    }
}
