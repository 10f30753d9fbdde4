import Foundation
import Testing
import TestSupport

/// kill -9 at the points an outside test found, made deterministic with
/// REWIND_TEST_KILL_AT: each converges after a restart, with one rollback
/// commit and no orphan process.
@Suite struct KillWindowTests {
    /// Commits seen over `seconds` never exceed `count` (a late duplicate fails).
    func expectStable(_ h: ReconcilerHarness, commits count: Int, seconds: Double = 1.5) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            #expect(try h.commits().count == count)
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    @Test func killedAfterTheFailureBeforeTheRollbackCommitStillRollsBack() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            h.extraEnvironment = ["REWIND_TEST_KILL_AT": "before-rollback-commit"]
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            try h.write("apps/api/app.yaml", demoServiceYAML(version: "1.1.0", args: ["--health", "fail"], healthTimeout: "1s"))
            let bad = try h.commit("api 1.1.0")
            let ended = try #require(h.waitForExit(), "the reconciler reached the kill point")
            #expect(ended.signal == SIGKILL)
            #expect(try h.commits().count == 2, "killed before the rollback commit")
            h.extraEnvironment = [:]
            try h.start()
            try h.waitUntil("the rollback commit is written", timeout: 30) { try h.commits().count == 3 }
            try h.waitHealthy("api", "1.0.0")
            try h.waitUntil("the rollback is noted") { h.notes(on: bad, waitingFor: ["rolled-back app=api"]).contains("rolled-back app=api") }
            try expectStable(h, commits: 3)
        }
    }

    @Test func killedBeforeThePidIsRecordedLeavesNoOrphan() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            h.extraEnvironment = ["REWIND_TEST_KILL_AT": "after-spawn"]
            try h.start()
            let ended = try #require(h.waitForExit(), "the reconciler reached the kill point")
            #expect(ended.signal == SIGKILL)
            // The intent was recorded before the spawn: the launch token finds the process.
            let data = try #require(FileManager.default.contents(atPath: h.stateDir + "/apps/api.json"))
            let app = try JSONSerialization.jsonObject(with: data) as? [String: Any]
            let pending = try #require(app?["pending"] as? [String: Any])
            #expect(pending["pid"] == nil)
            let launch = try #require(pending["launch"] as? String)
            let orphans = ReconcilerHarness.processes(withEnvironment: "REWIND_LAUNCH=\(launch)")
            defer { for pid in orphans { kill(pid, SIGKILL) } }
            // Once (1 full-suite run, not 15 runs alone) no process was found:
            // the app's own log says whether it started and why it ended.
            let appLog = (try? String(contentsOfFile: h.stateDir + "/logs/api.log", encoding: .utf8)) ?? "(no log)"
            #expect(orphans.count == 1, "the process started before the kill is running, unrecorded; its log: \(appLog.suffix(1_000))\nthe reconciler's: \(h.log.suffix(2_000))")
            h.extraEnvironment = [:]
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            try TestProcess.waitUntilEnded(orphans, "the unrecorded process is stopped", timeout: 30) { h.log }
            let running = try #require(try h.applied("api").pid)
            #expect(!orphans.contains(running))
            #expect(h.log.contains("started by a reconciler that did not finish"))
        }
    }

    @Test func aStateThatCannotBeWrittenStartsNothing() throws {
        try withReconciler(apps: [try execApp("site", version: "1.0.0")]) { h in
            try FileManager.default.createDirectory(atPath: h.stateDir + "/reconciler.json", withIntermediateDirectories: true)
            let result = try rewind(["reconcile", "--once", "--repo", h.repo, "--state-dir", h.stateDir])
            #expect(result.status != 0)
            #expect(result.stderr.contains("cannot write \(h.stateDir)/reconciler.json"), "\(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: h.root + "/applied.log"), "nothing was applied")
        }
    }
}
