import Foundation
import Testing
import TestSupport

/// Gates and restarts: invalid commits, rewritten history, kill -9.
@Suite struct RecoveryTests {
    @Test func aRewrittenHistoryHaltsUntilAccepted() throws {
        try withReconciler(apps: [try execApp("site", version: "1.0.0")]) { h in
            try h.start()
            try h.waitHealthy("site", "1.0.0")
            try h.write("apps/site/app.yaml", execAppYAML(version: "1.1.0"))
            try h.commit("site 1.1.0")
            try h.waitHealthy("site", "1.1.0")
            // Force-push a different history.
            try git(["reset", "-q", "--hard", "HEAD~1"], in: h.repo)
            try h.write("apps/site/app.yaml", execAppYAML(version: "2.0.0"))
            let rewritten = try h.commit("site 2.0.0 on a rewritten branch")
            try h.waitUntil("reconciliation halts") { try h.status()["halted"] as? String != nil }
            #expect((try h.status()["halted"] as? String ?? "").contains("--accept-rewrite"))
            #expect(try h.applied("site").version == "1.1.0")
            let accepted = try rewind(["reconcile", "--repo", h.repo, "--state-dir", h.stateDir, "--accept-rewrite", rewritten])
            #expect(accepted.status == 0, "\(accepted.stderr)")
            try h.waitHealthy("site", "2.0.0")
            #expect(try h.status()["halted"] is NSNull)
        }
    }

    @Test func killNineMidApplyConvergesWithoutDuplicates() throws {
        let apps = [try execApp("db", version: "1.0.0", apply: "./apply-slow.sh"),
                    try execApp("api", version: "1.0.0", dependsOn: ["db"], apply: "./apply-slow.sh")]
        try withReconciler(apps: apps) { h in
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            let before = try h.commits()
            // Hold the next apply in the middle, then kill the reconciler there.
            _ = FileManager.default.createFile(atPath: h.root + "/hold", contents: nil)
            try h.write("apps/db/app.yaml", execAppYAML(version: "1.1.0", apply: "./apply-slow.sh"))
            try h.write("apps/api/app.yaml", execAppYAML(version: "1.1.0", apply: "./apply-slow.sh"))
            let upgrade = try h.commit("db and api 1.1.0")
            // Mid-apply: the apply runs and the reconciler has journaled it.
            try h.waitUntil("db's apply is journaled") {
                let data = FileManager.default.contents(atPath: h.stateDir + "/apps/db.json") ?? Data()
                let app = try JSONSerialization.jsonObject(with: data) as? [String: Any]
                return (app?["pending"] as? [String: Any])?["pid"] != nil
                    && ((try? String(contentsOfFile: h.root + "/started.log", encoding: .utf8))?.contains("db 1.1.0") ?? false)
            }
            h.kill9()
            try h.start()
            // The restarted reconciler stops the orphaned apply, then applies again.
            try h.waitUntil("db's apply started again") {
                (try? String(contentsOfFile: h.root + "/started.log", encoding: .utf8))?.components(separatedBy: "db 1.1.0").count == 3
            }
            try FileManager.default.removeItem(atPath: h.root + "/hold")
            try h.waitHealthy("db", "1.1.0")
            try h.waitHealthy("api", "1.1.0")
            let applied = try String(contentsOfFile: h.root + "/applied.log", encoding: .utf8)
            #expect(applied.components(separatedBy: "db 1.1.0").count - 1 == 1, "db applied once: \(applied)")
            #expect(applied.components(separatedBy: "api 1.1.0").count - 1 == 1, "api applied once: \(applied)")
            #expect(try h.commits() == [upgrade] + before)
            let note = h.notes(on: upgrade, waitingFor: ["applied app=db", "healthy app=db", "applied app=api", "healthy app=api"])
            for outcome in ["applied app=db", "healthy app=db", "applied app=api", "healthy app=api"] {
                #expect(note.components(separatedBy: outcome).count - 1 == 1, "\(outcome) once in:\n\(note)")
            }
        }
    }
}

extension RecoveryTests {
    @Test func killNineWhileAProcessStartsLeavesNoOrphan() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            guard let oldPid = try h.applied("api").pid else { throw TestFailure("no pid") }
            let gate = h.root + "/not-ready"
            _ = FileManager.default.createFile(atPath: gate, contents: nil)
            try h.write("apps/api/app.yaml", demoServiceYAML(version: "2.0.0", args: ["--health-fail-file", gate], healthTimeout: "60s"))
            let upgrade = try h.commit("api 2.0.0")
            // The new process is started and journaled, not yet healthy: kill the reconciler there.
            var pendingPid: Int32?
            try h.waitUntil("the new process is journaled") {
                let data = FileManager.default.contents(atPath: h.stateDir + "/apps/api.json") ?? Data()
                let app = try JSONSerialization.jsonObject(with: data) as? [String: Any]
                pendingPid = ((app?["pending"] as? [String: Any])?["pid"] as? NSNumber)?.int32Value
                return pendingPid != nil
            }
            h.kill9()
            try h.start()
            try TestProcess.waitUntilEnded([try #require(pendingPid)], "the unconfirmed process is stopped", timeout: 30) { h.log }
            try FileManager.default.removeItem(atPath: gate)
            try h.waitHealthy("api", "2.0.0")
            let newPid = try h.applied("api").pid
            #expect(newPid != pendingPid && newPid != oldPid)
            try h.waitUntil("the old version is stopped") { kill(oldPid, 0) != 0 }
            #expect(try h.commits().count == 2)
            try h.waitUntil("the notes are written") { h.notes(on: upgrade, waitingFor: ["healthy app=api"]).contains("healthy app=api") }
            let note = h.notes(on: upgrade)
            #expect(note.components(separatedBy: "applied app=api").count == 2, "once: \(note)")
        }
    }
}

/// Bad input to the reconciler: clear errors, documented exit codes, nothing changed.
@Suite struct ReconcilerBadInputTests {
    @Test func aDamagedStateFileIsNamedAndNothingRuns() throws {
        try withReconciler(apps: [try execApp("site", version: "1.0.0")]) { h in
            try FileManager.default.createDirectory(atPath: h.stateDir, withIntermediateDirectories: true)
            try "{ not json".write(toFile: h.stateDir + "/reconciler.json", atomically: true, encoding: .utf8)
            let before = try h.commits()
            let result = try rewind(["reconcile", "--once", "--repo", h.repo, "--state-dir", h.stateDir])
            #expect(result.status == 70)
            #expect(result.stderr.contains("\(h.stateDir)/reconciler.json cannot be read"))
            #expect(result.stderr.contains("hint:"))
            #expect(!FileManager.default.fileExists(atPath: h.root + "/applied.log"))
            #expect(try h.commits() == before)
        }
    }

    /// A state file that is JSON but not Rewind's names the field, not Swift's DecodingError.
    @Test func aStateFileWithAWrongFieldNamesTheField() throws {
        try withReconciler(apps: [try execApp("site", version: "1.0.0")]) { h in
            try FileManager.default.createDirectory(atPath: h.stateDir + "/apps", withIntermediateDirectories: true)
            try #"{"instance": {"tree": 7}}"#.write(toFile: h.stateDir + "/apps/site.json", atomically: true, encoding: .utf8)
            let result = try rewind(["reconcile", "--once", "--repo", h.repo, "--state-dir", h.stateDir])
            #expect(result.status == 70)
            #expect(result.stderr.contains("\(h.stateDir)/apps/site.json cannot be read: field 'instance.tree' is not text"), "\(result.stderr)")
            #expect(!result.stderr.contains("DecodingError") && !result.stderr.contains("codingPath"))
        }
    }

    @Test(arguments: [["--interval", "soon"], ["--log-level", "loud"], ["--verify", "maybe"], ["--fetch-interval", "0s"], ["--analysis-interval", "-5s"]])
    func badOptionsAreUsageErrors(_ options: [String]) throws {
        let result = try rewind(["reconcile", "--once", "--repo", "/nonexistent"] + options)
        #expect(result.status == 64)
        #expect(result.stderr.contains(options[0]))
    }

    @Test func aSecondReconcilerOnTheSameStateIsRefused() throws {
        try withReconciler(apps: [try execApp("site", version: "1.0.0")]) { h in
            try h.start()
            try h.waitHealthy("site", "1.0.0")
            let second = try rewind(["reconcile", "--once", "--repo", h.repo, "--state-dir", h.stateDir])
            #expect(second.status == 5)
            #expect(second.stderr.contains("another reconciler"))
        }
    }
}
