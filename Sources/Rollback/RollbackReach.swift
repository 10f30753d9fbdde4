import DeployModel
import GitKit

/// What a rollback could still return to: the app trees of every state of
/// the branch committed within the policy's window, and of the state just
/// before it (what the oldest release in the window would roll back to).
/// The artifact cache keeps their artifacts; `rewind validate --artifacts`
/// checks that their registry still has them.
public enum RollbackReach {
    /// Each app's distinct trees, newest state first, over at most `limit` commits.
    public static func trees(_ repo: DeployRepository, apps: [AppRef], from tip: OID, window: Duration, nowMilliseconds: Int64,
                             limit: Int = 1_000) -> [(app: AppRef, tree: OID)] {
        let since = nowMilliseconds / 1000 - window.milliseconds / 1000
        var found: [(app: AppRef, tree: OID)] = []
        var seen = Set<OID>()
        var next: OID? = tip
        for _ in 0..<limit {
            guard let id = next, let commit = try? repo.git.commit(id) else { break }
            for app in apps {
                if let tree = try? repo.appTree(app, in: commit.tree), seen.insert(tree).inserted { found.append((app, tree)) }
            }
            if commit.committer.time < since { break }
            next = commit.parents.first
        }
        return found
    }
}
