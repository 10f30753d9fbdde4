import DeployModel
import GitKit
import Rollback
import SystemSupport

/// A commit let through a change window by a human (`Rewind-Override: freeze`).
public struct OverrideRow: Sendable {
    public let commit: OID
    public let time: Int64
    public let summary: String
    public let author: String
    /// The apps it changed.
    public let apps: [String]

    var json: JSON {
        .object([("time", .string(Clock.iso8601UTC(milliseconds: time))), ("commit", .string(commit.hex)), ("summary", .string(summary)),
                 ("author", .string(author)), ("apps", .array(apps.map { .string($0) }))])
    }
}

extension AuditReport {
    /// The report's freeze overrides: the first-parent commits of its range
    /// (by committer time) that carry `Rewind-Override: freeze` and change
    /// one of its apps, newest first. Read from git each time, and only
    /// when the tip's rewind.yaml has `windows:` (a walk of the whole range
    /// would cost a history without freezes a read of every commit).
    public func withFreezeOverrides(_ repo: DeployRepository) -> AuditReport {
        guard let tree = try? repo.git.commit(tip).tree, let config = try? repo.config(tree: tree), !config.windows.isEmpty else { return self }
        var report = self
        report.overrides = Self.freezeOverrides(repo, tip: tip, since: query.since, until: query.until, apps: Set(apps))
        return report
    }

    static func freezeOverrides(_ repo: DeployRepository, tip: OID, since: Int64, until: Int64, apps: Set<String>) -> [OverrideRow] {
        var rows: [OverrideRow] = []
        var next: OID? = tip
        // First parents run back in time, give or take a clock: stop a day past the start.
        while let id = next, let commit = try? repo.git.commit(id), commit.committer.time * 1000 >= since - 86_400_000 {
            next = commit.parents.first
            let time = commit.committer.time * 1000
            guard time >= since, time < until, RollbackTrailers.overridesFreeze(commit.message), let parent = commit.parents.first,
                  let parentTree = try? repo.git.commit(parent).tree, let config = try? repo.config(tree: commit.tree) else { continue }
            let changed = config.apps.filter { apps.contains($0.name) && (try? repo.appTree($0, in: commit.tree)) != (try? repo.appTree($0, in: parentTree)) }
            guard !changed.isEmpty else { continue }
            rows.append(OverrideRow(commit: id, time: time, summary: commit.summary, author: "\(commit.author.name) <\(commit.author.email)>", apps: changed.map(\.name)))
        }
        return rows
    }
}
