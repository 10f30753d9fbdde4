import DeployModel
import GitKit

/// The rollback history as the memory of update proposals: the artifact
/// digests of an app's releases that a rollback undid, and the `allow`
/// commits that let one be proposed again. A digest stays blocked until an
/// allow commit for it comes after its newest rollback; a newer digest (a
/// new tag, or the same tag pushed with new content) is never blocked.
public struct RolledBackDigests: Sendable {
    /// One rolled-back digest, from its newest rollback.
    public struct Entry: Sendable, Equatable {
        public let digest: String
        /// The reference's tag and the version label of the release.
        public let tag: String?
        public let version: String?
        /// The release (number and commit) that was rolled back.
        public let release: Int
        public let commit: OID
        /// The commit that rolled it back.
        public let rolledBackBy: OID
        /// The allow commit after that rollback, if any: then it is not blocked.
        public let allowedBy: OID?

        /// Words for status, the UI and refusals.
        public func describe(app: String) -> String {
            let name = tag ?? version ?? String(digest.prefix(19))
            return "\(name) (\(digest.prefix(19))…) was rolled back by \(rolledBackBy.short) (release #\(release) of \(app))"
        }
    }

    public let app: String
    /// Newest rollback first, one entry per digest.
    public let entries: [Entry]

    /// The entry that blocks proposing `digest`, or nil.
    public func blocking(_ digest: String) -> Entry? {
        entries.first { $0.digest == digest && $0.allowedBy == nil }
    }

    /// The entry a user's `VERSION` names: a digest, a tag, or a version label.
    public func named(_ text: String) -> Entry? {
        entries.first { $0.digest == text || $0.tag == text || $0.version == text || (text.count >= 19 && $0.digest.hasPrefix(text)) }
    }

    /// Reads the memory of `app` up to `tip`: its rolled-back releases
    /// (from the release history) and the allow commits on the first-parent
    /// line back to the oldest of their rollbacks.
    public static func load(_ repo: DeployRepository, config: RepoConfig, tip: OID, app: AppRef) throws -> RolledBackDigests {
        let history = try ReleaseHistory.load(repo, config: config, tip: tip, details: false)
        var found: [(digest: String, tag: String?, version: String?, release: Release, by: OID)] = []
        for release in history.of(app.name) where release.kind == .deploy {
            guard let by = release.rolledBackBy, let tree = release.tree,
                  case .oci(let reference)? = repo.appSpec(appTree: tree, app: app)?.artifact?.source, let digest = reference.digest else { continue }
            found.append((digest, reference.tag, repo.appSpec(appTree: tree, app: app)?.version, release, by))
        }
        guard !found.isEmpty else { return RolledBackDigests(app: app.name, entries: []) }
        let (positions, allows) = try walk(repo, from: tip, until: Set(found.map(\.by)), app: app.name)
        var entries: [Entry] = []
        // Newest rollback first; a digest rolled back twice counts from its newest rollback.
        for item in found.sorted(by: { (positions[$0.by] ?? .max) < (positions[$1.by] ?? .max) }) where !entries.contains(where: { $0.digest == item.digest }) {
            let rollbackAt = positions[item.by] ?? .max
            let allow = allows.first { $0.digest == item.digest && $0.position < rollbackAt }
            entries.append(Entry(digest: item.digest, tag: item.tag, version: item.version, release: item.release.number, commit: item.release.commit,
                                 rolledBackBy: item.by, allowedBy: allow?.commit))
        }
        return RolledBackDigests(app: app.name, entries: entries)
    }

    /// Walks the first-parent line from `tip` (position 0) until every
    /// commit of `wanted` is seen: their positions, and the allow commits
    /// for `app` met on the way (nearest the tip first).
    private static func walk(_ repo: DeployRepository, from tip: OID, until wanted: Set<OID>, app: String) throws
        -> ([OID: Int], [(digest: String, commit: OID, position: Int)]) {
        var positions: [OID: Int] = [:]
        var allows: [(digest: String, commit: OID, position: Int)] = []
        var next: OID? = tip
        var position = 0
        while let id = next, positions.count < wanted.count {
            let commit = try gitStep("reading the history of \(repo.branchName)") { try repo.git.commit(id) }
            if wanted.contains(id) { positions[id] = position }
            if RollbackTrailers.mayCarryTrailers(commit.message), let trailers = RollbackTrailers.parse(commit.message),
               trailers.action == .allow, trailers.apps.contains(app), let digest = trailers.allowed {
                allows.append((digest, id, position))
            }
            next = commit.parents.first
            position += 1
        }
        return (positions, allows)
    }
}
