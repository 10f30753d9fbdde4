import DeployModel
import GitKit

/// A commit that changes a pinned app without releasing the pin, or that
/// deploys an app inside a change window (`window`: why it is held).
public struct PinViolation: Sendable, Equatable {
    public let commit: OID
    public let summary: String
    public let app: String
    public var window: String? = nil
}

/// `rewind check RANGE`: for CI and pre-receive hooks, so that bots cannot
/// undo a pin. A commit violates a pin when its first parent pins an app,
/// the commit still pins it, and it changes the app's tree to one other than
/// the pinned tree. Commits that leave the app alone are never blamed, even
/// when the app had drifted from its pin earlier.
public enum RangeCheck {
    /// The violations in `range` (`A..B`, or one revision for all its history), oldest first.
    public static func violations(_ repo: DeployRepository, range: String) throws -> [PinViolation] {
        let commits: [OID]
        do {
            commits = try repo.git.commits(inRange: range)
        } catch {
            throw RewindError(.notFound, "cannot read the range '\(range)'", hint: "give OLD..NEW with revisions that exist, for example origin/main..HEAD", cause: error)
        }
        var found: [PinViolation] = []
        for id in commits {
            let commit = try gitStep("reading \(id.short)") { try repo.git.commit(id) }
            guard let parent = commit.parents.first else { continue }
            let parentTree = try gitStep("reading \(parent.short)") { try repo.git.commit(parent).tree }
            found += try windowViolations(repo, commit, parentTree: parentTree)
            let before = try repo.pins(tree: parentTree)
            guard !before.pins.isEmpty else { continue }
            let after = try repo.pins(tree: commit.tree)
            guard let config = try? repo.config(tree: commit.tree) else { continue }
            for name in before.pins.keys.sorted() {
                guard let still = after.pins[name], let app = config.app(named: name) else { continue }
                let tree = try repo.appTree(app, in: commit.tree)
                guard tree != (try repo.appTree(app, in: parentTree)) else { continue }
                if tree?.hex != still.tree {
                    found.append(PinViolation(commit: id, summary: commit.summary, app: name))
                }
            }
        }
        return found
    }

    /// A deploy commit (not a rollback or pin, unless the window holds
    /// those too) that changes an app inside one of the parent's change
    /// windows, at its committer time, without `Rewind-Override: freeze`.
    static func windowViolations(_ repo: DeployRepository, _ commit: Commit, parentTree: OID) throws -> [PinViolation] {
        guard let config = try? repo.config(tree: parentTree), !config.windows.isEmpty else { return [] }
        let changed = try config.apps.filter { try repo.appTree($0, in: commit.tree) != (try repo.appTree($0, in: parentTree)) }
        // The calendar searches each window minute by minute: only for a commit that changes an app, not for every commit of the range.
        guard !changed.isEmpty else { return [] }
        let kind = CommitKind(commit)
        let overridden = RollbackTrailers.overridesFreeze(commit.message)
        let calendar = ChangeCalendar(config.windows, at: commit.committer.time * 1000)
        return changed.compactMap { app in
            calendar.hold(app: app.name, rollback: kind.returnsToEarlier, overridden: overridden)
                .map { PinViolation(commit: commit.id, summary: commit.summary, app: app.name, window: $0) }
        }
    }
}
