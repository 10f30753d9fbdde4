import CLibGit2

/// Reverting a commit in memory.
///
/// libgit2's `git_revert_commit` merges three whole trees: it walks every
/// entry of the commit's tree, its parent's and the tip's. In a deployment
/// repository an old commit's trees sit deep in the pack's delta chains, so
/// a revert 1,000 commits back inflated about 3,000 objects (4 ms, as long
/// as `git revert` takes in all). Most reverts need none of that: the tip
/// still has what the commit wrote, and the revert puts back what was
/// there before. That case is answered here from the entries that differ
/// between the commit and its parent, and every other case goes to libgit2.
extension Repository {
    /// Reverts `commit` against `onto` in memory, as `git revert` would
    /// (mainline 1 for merge commits). Writes the tree on success; on
    /// conflicts writes nothing and lists the conflicting paths.
    public func revert(_ commit: OID, onto: OID) throws -> RevertOutcome {
        if let tree = try revertedWhereUntouched(commit, onto: onto) { return .tree(tree) }
        return try mergedRevert(commit, onto: onto)
    }

    /// The revert when the tip still holds, at every path the commit
    /// changed, exactly what the commit wrote: the three-way merge then
    /// takes the parent's side at those paths and the tip's everywhere else,
    /// whatever rename detection finds. Nil when that does not hold, or
    /// when an entry changes between a directory and anything else.
    func revertedWhereUntouched(_ commit: OID, onto: OID) throws -> OID? {
        let (tree, parent) = try withCommit(commit) { c -> (OID, OID?) in
            (OID(git_commit_tree_id(c)), git_commit_parentcount(c) > 0 ? OID(git_commit_parent_id(c, 0)) : nil)
        }
        guard let parent else { return nil }
        let parentTree = try withCommit(parent) { OID(git_commit_tree_id($0)) }
        let ontoTree = try withCommit(onto) { OID(git_commit_tree_id($0)) }
        guard let changes = try changedEntries(from: tree, to: parentTree) else { return nil }
        for change in changes {
            // Same path, so same name: the whole entry compares.
            guard try entry(in: ontoTree, path: change.path) == change.before else { return nil }
            if change.before == nil, try !directoriesAllowed(above: change.path, in: ontoTree) { return nil }
        }
        var result = ontoTree
        for change in changes {
            result = try replacingEntry(in: result, path: change.path, with: change.after)
        }
        return result
    }

    /// The entries that differ from `old` to `new`, descending only into
    /// directories present on both sides (a directory added or removed whole
    /// is one difference). Nil when a name is a directory on one side and
    /// something else on the other.
    func changedEntries(from old: OID, to new: OID) throws -> [Difference]? {
        var changes: [Difference] = []
        var kindChanged = false
        try forEachDifference(from: old, to: new) { difference in
            switch (difference.before?.kind, difference.after?.kind) {
            case (.tree?, .tree?):
                return true
            case (.tree?, .some), (.some, .tree?):
                kindChanged = true
            default:
                changes.append(difference)
            }
            return false
        }
        return kindChanged ? nil : changes
    }

    /// Whether every directory above `path` is a directory in `tree`, or absent.
    private func directoriesAllowed(above path: String, in tree: OID) throws -> Bool {
        var prefix = ""
        for component in path.split(separator: "/").dropLast() {
            prefix += (prefix.isEmpty ? "" : "/") + component
            guard let existing = try entry(in: tree, path: prefix) else { return true }
            if existing.kind != .tree { return false }
        }
        return true
    }

    /// libgit2's three-way revert.
    func mergedRevert(_ commit: OID, onto: OID) throws -> RevertOutcome {
        try withCommit(commit) { revertCommit in
            try withCommit(onto) { ourCommit in
                let mainline: UInt32 = git_commit_parentcount(revertCommit) > 1 ? 1 : 0
                var index: OpaquePointer?
                try check(git_revert_commit(&index, handle, revertCommit, ourCommit, mainline, nil), "git_revert_commit")
                defer { git_index_free(index) }
                if git_index_has_conflicts(index) != 0 {
                    return .conflicts(try conflictPaths(index))
                }
                var out = git_oid()
                try check(git_index_write_tree_to(&out, index, handle), "git_index_write_tree_to")
                return .tree(OID(out))
            }
        }
    }

    private func conflictPaths(_ index: OpaquePointer?) throws -> [String] {
        var iterator: OpaquePointer?
        try check(git_index_conflict_iterator_new(&iterator, index), "git_index_conflict_iterator_new")
        defer { git_index_conflict_iterator_free(iterator) }
        var paths: [String] = []
        while true {
            var ancestor: UnsafePointer<git_index_entry>?
            var ours: UnsafePointer<git_index_entry>?
            var theirs: UnsafePointer<git_index_entry>?
            let rc = git_index_conflict_next(&ancestor, &ours, &theirs, iterator)
            if rc == GIT_ITEROVER.rawValue { break }
            try check(rc, "git_index_conflict_next")
            if let entry = ours ?? theirs ?? ancestor, let path = entry.pointee.path {
                paths.append(String(cString: path))
            }
        }
        return paths
    }
}
