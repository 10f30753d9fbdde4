import Foundation
import Testing
import TestSupport
@testable import GitKit

@Suite struct GitKitTests {
    /// A writer killed between taking a ref's lock and renaming it leaves
    /// `NAME.lock`: found when a reconciler killed with -9 mid-notes-write
    /// could never write notes again ("refs/notes/rewind kept moving"). A
    /// lock older than 10 s is such a leftover and is removed; a fresh one
    /// belongs to a live writer and is respected.
    @Test func aLeftoverRefLockIsRemovedAndALiveOneRespected() throws {
        try withFixtureRepo("three-apps") { fixture in
            let repo = try Repository.open(fixture.path)
            let tip = try repo.resolveCommit("main")
            let older = try repo.resolveCommit("main~1")
            let lock = fixture.path + "/.git/refs/heads/main.lock"
            try writeFile(lock, "")
            #expect(throws: GitError.self) { try repo.updateReference("refs/heads/main", to: older, expecting: tip, logMessage: "live lock") }
            #expect(try FileManager.default.fileExists(atPath: lock) && repo.referenceTarget("refs/heads/main") == tip, "a fresh lock is a live writer's")
            try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-120)], ofItemAtPath: lock)
            try repo.updateReference("refs/heads/main", to: older, expecting: tip, logMessage: "leftover lock")
            #expect(try repo.referenceTarget("refs/heads/main") == older)
            #expect(!FileManager.default.fileExists(atPath: lock))
            #expect(try git(["rev-parse", "main"], in: fixture.path) == older.hex, "git agrees")
        }
    }

    @Test func compareAndSwapRefusesAStaleExpectation() throws {
        try withFixtureRepo("three-apps") { fixture in
            let repo = try Repository.open(fixture.path)
            let tip = try repo.resolveCommit("main")
            let older = try repo.resolveCommit("main~1")
            let tree = try repo.commit(tip).tree
            let sig = Signature(name: "T", email: "t@example.com", time: 1_700_000_000)
            let commit = try repo.createCommit(tree: tree, parents: [tip], message: "x\n", author: sig, committer: sig)
            #expect(throws: GitError.self) { try repo.updateReference("refs/heads/main", to: commit, expecting: older, logMessage: "stale") }
            #expect(try repo.referenceTarget("refs/heads/main") == tip)
            try repo.updateReference("refs/heads/main", to: commit, expecting: tip, logMessage: "fresh")
            #expect(try repo.referenceTarget("refs/heads/main") == commit)
        }
    }

    /// A push of a commit the remote already has at that reference (another
    /// writer pushed the identical commit first) says so: the Mirror must not
    /// report it as pushed by this writer.
    @Test func aPushTheRemoteAlreadyHasIsToldApart() throws {
        try withFixtureRepo("three-apps") { fixture in
            let remote = fixture.path + "-remote.git"
            try TestSupport.git(["clone", "-q", "--bare", fixture.path, remote], in: "/")
            defer { try? FileManager.default.removeItem(atPath: remote) }
            let repo = try Repository.open(fixture.path)
            let tip = try repo.resolveCommit("main")
            let sig = Signature(name: "T", email: "t@example.com", time: 1_700_000_000)
            let commit = try repo.createCommit(tree: try repo.commit(tip).tree, parents: [tip], message: "same\n", author: sig, committer: sig)
            try repo.updateReference("refs/heads/main", to: commit, expecting: tip, logMessage: "test")
            let first = try repo.push(url: remote, refspecs: ["refs/heads/main:refs/heads/main"], hooks: TransportHooks())
            #expect(first == PushOutcome())
            #expect(try TestSupport.git(["rev-parse", "main"], in: remote) == commit.hex)
            let second = try repo.push(url: remote, refspecs: ["refs/heads/main:refs/heads/main"], hooks: TransportHooks())
            #expect(second.rejections.isEmpty)
            #expect(second.alreadyThere == ["refs/heads/main"])
        }
    }

    /// Pushes are never forced, except to the one prefix a caller names (a
    /// fleet host's own status ref): a forced branch, or a forced wildcard,
    /// is refused before anything is sent, and the remote does not move.
    @Test func aForcedPushIsRefusedOutsideTheNamedPrefix() throws {
        try withFixtureRepo("three-apps") { fixture in
            let remote = fixture.path + "-remote.git"
            try TestSupport.git(["clone", "-q", "--bare", fixture.path, remote], in: "/")
            defer { try? FileManager.default.removeItem(atPath: remote) }
            let repo = try Repository.open(fixture.path)
            let before = try TestSupport.git(["rev-parse", "main"], in: remote)
            for spec in ["+refs/heads/main:refs/heads/main", "+refs/rewind/hosts/*:refs/rewind/hosts/*"] {
                #expect(throws: GitError.self, "\(spec)") {
                    try repo.push(url: remote, refspecs: [spec], hooks: TransportHooks(), forcing: "refs/rewind/hosts/")
                }
            }
            #expect(throws: GitError.self) { try repo.push(url: remote, refspecs: ["+refs/heads/main:refs/rewind/hosts/a"], hooks: TransportHooks()) }
            let status = try repo.createCommit(tree: try repo.emptyTree(), parents: [], message: "status\n",
                                               author: Signature(name: "T", email: "t@example.com", time: 1_700_000_000),
                                               committer: Signature(name: "T", email: "t@example.com", time: 1_700_000_000))
            try repo.updateReference("refs/rewind/hosts/a", to: status, expecting: nil, logMessage: "test")
            _ = try repo.push(url: remote, refspecs: ["+refs/rewind/hosts/a:refs/rewind/hosts/a"], hooks: TransportHooks(), forcing: "refs/rewind/hosts/")
            #expect(try TestSupport.git(["rev-parse", "refs/rewind/hosts/a"], in: remote) == status.hex)
            #expect(try TestSupport.git(["rev-parse", "main"], in: remote) == before)
        }
    }

    @Test func replacingEntryMatchesGitsOwnTree() throws {
        try withFixtureRepo("three-apps") { fixture in
            let repo = try Repository.open(fixture.path)
            let tip = try repo.commit(try repo.resolveCommit("main")).tree
            let old = try repo.commit(try repo.resolveCommit(fixture.commits[0])).tree
            let oldApi = try #require(try repo.entry(in: old, path: "apps/api"))
            let replaced = try repo.replacingEntry(in: tip, path: "apps/api", with: oldApi)
            // The oracle: git itself, restoring the directory and writing a tree.
            try fixture.git("rm", "-rq", "apps/api")
            try fixture.git("checkout", fixture.commits[0], "--", "apps/api")
            #expect(replaced.hex == (try fixture.git("write-tree")))
            try fixture.git("reset", "-q", "--hard")
            let removed = try repo.replacingEntry(in: tip, path: "apps/web", with: nil)
            try fixture.git("rm", "-rq", "apps/web")
            #expect(removed.hex == (try fixture.git("write-tree")))
        }
    }

    @Test func stagedObjectsStayInMemoryUntilPersisted() throws {
        try withFixtureRepo("three-apps") { fixture in
            let repo = try Repository.open(fixture.path)
            try repo.stageObjectsInMemory()
            let discarded = try repo.writeBlob(Array("discarded\n".utf8))
            #expect(try repo.blob(discarded) == Array("discarded\n".utf8))
            repo.discardStagedObjects()
            #expect(try run("/usr/bin/git", ["cat-file", "-e", discarded.hex], in: fixture.path).status != 0)
            let kept = try repo.writeBlob(Array("kept\n".utf8))
            let tip = try repo.resolveCommit("main")
            let tree = try repo.replacingEntry(in: try repo.commit(tip).tree, path: "apps/new/file", with: TreeEntry(name: "file", id: kept, kind: .blob, mode: 0o100644))
            let sig = Signature(name: "T", email: "t@example.com", time: 1_700_000_000)
            let commit = try repo.createCommit(tree: tree, parents: [tip], message: "new\n", author: sig, committer: sig)
            let looseBefore = try fixture.git("count-objects")
            try repo.persistStagedObjects(reachableFrom: commit)
            #expect(try fixture.git("cat-file", "-p", "\(commit.hex):apps/new/file") == "kept")
            // Exactly the new objects: the commit, three trees (root, apps, apps/new) and the blob.
            let count = { (text: String) in Int(text.split(separator: " ").first ?? "") ?? -1 }
            #expect(count(try fixture.git("count-objects")) == count(looseBefore) + 5)
            try fixture.git("update-ref", "refs/heads/main", commit.hex)
            try fixture.git("fsck", "--full", "--strict")
        }
    }

    @Test func descendantMatchesGitMergeBaseIsAncestor() throws {
        try withFixtureRepo("three-apps") { fixture in
            let repo = try Repository.open(fixture.path)
            try fixture.git("checkout", "-q", "-b", "side", fixture.commits[2])
            try fixture.commitChange("side work") { try writeFile($0 + "/apps/web/side.txt", "s\n") }
            let side = try repo.resolveCommit("side")
            for commit in fixture.commits + [side.hex] {
                let id = try #require(OID(hex: commit))
                let tip = try repo.resolveCommit("main")
                let oracle = try run("/usr/bin/git", ["merge-base", "--is-ancestor", commit, "main"], in: fixture.path).status == 0
                #expect(try repo.isDescendant(tip, of: id) == oracle)
            }
        }
    }

    @Test func oidRoundTripsAndRejectsGarbage() {
        let hex = "0123456789abcdef0123456789abcdef01234567"
        #expect(OID(hex: hex)?.hex == hex)
        #expect(OID(hex: "xyz") == nil)
        #expect(OID(hex: String(repeating: "g", count: 40)) == nil)
    }
}
