import Foundation
import GitKit
@testable import Reconciler
import ReconcilerDoubles
import ReconcilerStatus
import Rollback
import SystemSupport
import Testing
import TestSupport

/// Waits that wake on a write instead of a poll (inotify): the reconciler
/// when the followed branch moves (its ref file and packed-refs; other
/// writes in the repository do not wake it), and `rewind wait` and
/// `status --watch` when the reconciler writes its state.
@Suite struct BranchWatchTests {
    /// A repository with one commit on `branch` (the git CLI writes it), and
    /// the reconciler's watch of that branch.
    static func withRepository(branch: String = "main", _ body: (String, FileWatch) throws -> Void) throws {
        try withTemporaryDirectory { root in
            try git(["init", "-q", "-b", branch, root], in: root)
            try writeFile(root + "/file", "1\n")
            try git(["add", "file"], in: root)
            try git(["commit", "-q", "-m", "one"], in: root)
            try body(root, Reconciler.watchBranch(of: try DeployRepository(path: root, branch: branch)))
        }
    }

    /// Runs `git ARGS` in `root` once the test has started waiting, then
    /// `body`; returns once git has ended, so that the directory is removed
    /// after git is done with it.
    static func later(_ arguments: [String], in root: String, while body: () throws -> Void) throws {
        let ended = AtomicFlag()
        BackgroundThread.start {
            Clock.sleep(milliseconds: 100)
            _ = try? git(arguments, in: root)
            ended.set()
        }
        defer { try? waitFor("git \(arguments[0]) has ended", timeout: 30) { ended.value } }
        try body()
    }

    @Test(arguments: ["main", "release/2026/12"])
    func aCommitOnTheBranchWakesTheWait(branch: String) throws {
        try Self.withRepository(branch: branch) { root, watch in
            #expect(watch.isWatching)
            try Self.later(["commit", "-q", "--allow-empty", "-m", "two"], in: root) {
                #expect(watch.wait(milliseconds: 20_000, stop: StopFlag()) == .changed)
            }
        }
    }

    /// `git pack-refs` (and `git gc`) moves the ref into packed-refs.
    @Test func packingTheRefsWakesTheWait() throws {
        try Self.withRepository { root, watch in
            try Self.later(["pack-refs", "--all"], in: root) {
                #expect(watch.wait(milliseconds: 20_000, stop: StopFlag()) == .changed)
            }
        }
    }

    /// Another branch, a tag, notes and the index do not wake it.
    @Test func otherWritesDoNotWakeIt() throws {
        try Self.withRepository { root, watch in
            try git(["branch", "other"], in: root)
            try git(["tag", "v1"], in: root)
            try git(["notes", "--ref", "rewind", "add", "-m", "note", "HEAD"], in: root)
            try writeFile(root + "/file", "2\n")
            try git(["add", "file"], in: root)
            #expect(watch.wait(milliseconds: 300, stop: StopFlag()) == .timedOut)
            let stop = StopFlag()
            stop.stop()
            #expect(watch.wait(milliseconds: 60_000, stop: stop) == .stopped)
        }
    }

    /// `rewind wait` and `status --watch` wake when the reconciler writes
    /// any of its state files (renamed into place), in the state directory
    /// or its apps/.
    @Test func aStateWriteWakesTheStateWatch() throws {
        try withTemporaryDirectory { root in
            let store = StateStore(directory: root)
            try FileManager.default.createDirectory(atPath: store.appsDirectory, withIntermediateDirectories: true)
            for file in [store.appsDirectory + "/api.json", store.stateFile] {
                let watch = store.watch()
                #expect(watch.wait(milliseconds: 0, stop: StopFlag()) == .timedOut)
                #expect(FileIO.writeAtomically(file, Array("{}".utf8)))
                #expect(watch.wait(milliseconds: 20_000, stop: StopFlag()) == .changed, "\(file)")
            }
        }
    }

    /// The reconciler's loop itself: with a poll of two minutes, only the
    /// watch can bring a new commit to the platform within the deadline.
    @Test func theLoopAppliesAPushWithoutWaitingForItsPoll() throws {
        let stop = StopFlag()
        let world = try FakeWorld(apps: [HarnessApp("api", appYAML: fakeAppYAML(version: "1"))]) { options in
            options.pollInterval = 120_000
            options.stop = stop
        }
        let ended = AtomicFlag()
        nonisolated(unsafe) let reconciler = world.reconciler!
        BackgroundThread.start {
            try? reconciler.run()
            ended.set()
        }
        defer {
            stop.stop()
            try? world.harness.waitUntil("the loop ended", timeout: 30) { ended.value }
        }
        try world.harness.waitUntil("1 applied", timeout: 30) { try world.harness.applied("api").version == "1" }
        try world.harness.write("apps/api/app.yaml", fakeAppYAML(version: "2"))
        try world.harness.commit("api 2")
        try world.harness.waitUntil("2 applied after the push, not after the poll", timeout: 30) { try world.harness.applied("api").version == "2" }
    }
}
