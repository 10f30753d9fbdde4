import Foundation
import Testing
import TestSupport
@testable import GitKit

/// `Repository.revert` answers most reverts from the entries the commit
/// changed, and hands the rest to libgit2's three-way merge. Both must give
/// the same tree: random histories over a few names (so that paths collide,
/// directories replace files, modes and symlinks change, and merges happen)
/// are reverted both ways, for every commit onto every other.
@Suite struct InMemoryRevertTests {
    @Test func theShortRevertGivesLibgit2sTree() throws {
        var agreed = 0
        var handedOver = 0
        for seed in UInt64(1)...16 {
            try withTemporaryDirectory { directory in
                let repo = try Repository.create(at: directory, bare: true)
                var random = SplitMix(state: seed)
                let commits = try randomHistory(repo, count: 14, random: &random)
                for target in commits where try !repo.commit(target).parents.isEmpty {
                    for onto in commits {
                        let merged = try repo.mergedRevert(target, onto: onto)
                        guard let short = try repo.revertedWhereUntouched(target, onto: onto) else {
                            handedOver += 1
                            continue
                        }
                        #expect(merged == .tree(short), "seed \(seed): reverting \(target.short) onto \(onto.short)")
                        agreed += 1
                    }
                }
            }
        }
        // Both paths must have been taken often, or the comparison proves little.
        #expect(agreed > 400, "short reverts: \(agreed), handed over: \(handedOver)")
        #expect(handedOver > 1000, "reverts handed to libgit2: \(handedOver)")
    }

    /// The files that differ between two trees, found without reading
    /// equal subtrees, are the ones `git diff-tree -r --name-only` lists.
    @Test func changedPathsListWhatGitDiffTreeLists() throws {
        var compared = 0
        for seed in UInt64(1)...3 {
            try withTemporaryDirectory { directory in
                let repo = try Repository.create(at: directory, bare: true)
                var random = SplitMix(state: seed)
                let trees = try randomHistory(repo, count: 10, random: &random).map { try repo.commit($0).tree }
                for (old, new) in Array(zip(trees, trees.dropFirst(3))) + Array(zip(trees.dropFirst(2), trees)) {
                    let oracle = try git(["diff-tree", "-r", "--name-only", old.hex, new.hex], in: directory)
                    #expect(try repo.changedPaths(from: old, to: new) == oracle.split(separator: "\n").map(String.init), "\(old.short)..\(new.short)")
                    compared += 1
                }
                #expect(try repo.changedPaths(from: nil, to: trees[9]) == git(["ls-tree", "-r", "--name-only", trees[9].hex], in: directory).split(separator: "\n").map(String.init))
            }
        }
        #expect(compared == 45)
    }

    @Test func aConflictStillListsItsPaths() throws {
        try withTemporaryDirectory { directory in
            let repo = try Repository.create(at: directory, bare: true)
            let sig = Signature(name: "T", email: "t@example.com", time: 1_700_000_000)
            var tree = try repo.emptyTree()
            var commits: [OID] = []
            for text in ["one\n", "two\n", "three\n"] {
                let blob = try repo.writeBlob(Array(text.utf8))
                tree = try repo.replacingEntry(in: tree, path: "apps/api/values.yaml", with: TreeEntry(name: "values.yaml", id: blob, kind: .blob, mode: 0o100644))
                commits.append(try repo.createCommit(tree: tree, parents: commits.suffix(1), message: text, author: sig, committer: sig))
            }
            #expect(try repo.revertedWhereUntouched(commits[1], onto: commits[2]) == nil)
            #expect(try repo.revert(commits[1], onto: commits[2]) == .conflicts(["apps/api/values.yaml"]))
        }
    }

    /// A linear history with a merge now and then; each commit sets,
    /// removes or re-modes one to three paths.
    private func randomHistory(_ repo: Repository, count: Int, random: inout SplitMix) throws -> [OID] {
        let names = ["a", "b", "a/x", "a/y", "a/c/x", "b/x", "d/e/f"]
        let texts = ["1\n", "2\n", "3\n"]
        let modes: [(EntryKind, UInt32)] = [(.blob, 0o100644), (.blob, 0o100644), (.blob, 0o100755), (.symlink, 0o120000)]
        var tree = try repo.emptyTree()
        var commits: [OID] = []
        for index in 0..<count {
            for _ in 0...Int.random(in: 0..<3, using: &random) {
                let path = names[Int.random(in: 0..<names.count, using: &random)]
                if Int.random(in: 0..<4, using: &random) == 0 {
                    tree = try repo.replacingEntry(in: tree, path: path, with: nil)
                } else {
                    let (kind, mode) = modes[Int.random(in: 0..<modes.count, using: &random)]
                    let blob = try repo.writeBlob(Array(texts[Int.random(in: 0..<texts.count, using: &random)].utf8))
                    let name = String(path.split(separator: "/").last ?? "")
                    tree = try repo.replacingEntry(in: tree, path: path, with: TreeEntry(name: name, id: blob, kind: kind, mode: mode))
                }
            }
            var parents = Array(commits.suffix(1))
            if commits.count > 3, Int.random(in: 0..<5, using: &random) == 0 { parents.append(commits[Int.random(in: 0..<commits.count - 1, using: &random)]) }
            let sig = Signature(name: "T", email: "t@example.com", time: 1_700_000_000 + Int64(index))
            commits.append(try repo.createCommit(tree: tree, parents: parents, message: "change \(index)\n", author: sig, committer: sig))
        }
        return commits
    }
}
