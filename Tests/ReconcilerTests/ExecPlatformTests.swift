import Foundation
import Testing
import TestSupport

/// The exec platform, driven by the shell scripts in fixtures/exec-scripts.
@Suite struct ExecPlatformTests {
    @Test func applyGetsTheAppsFilesAndVariables() throws {
        try withReconciler(apps: [try execApp("site", version: "1.0.0")]) { h in
            try h.start()
            try h.waitHealthy("site", "1.0.0")
            let tip = try h.commits()[0]
            let record = try String(contentsOfFile: h.root + "/applied.log", encoding: .utf8).split(separator: " ").map(String.init)
            let tree = try git(["rev-parse", "\(tip):apps/site"], in: h.repo)
            #expect(record[0] == "site")
            #expect(record[1] == "1.0.0")
            #expect(record[2] == tip)
            #expect(record[3] == tree)
            // The app's files at that commit, extracted through libgit2, are the working directory.
            #expect(record[4].hasSuffix("/files/site/\(tree)"))
            #expect(record[5].trimmingCharacters(in: .whitespacesAndNewlines) == record[4])
            #expect(FileManager.default.isExecutableFile(atPath: record[4] + "/apply.sh"))
            #expect(h.notes(on: tip, waitingFor: ["applied app=site version=1.0.0"]).contains("applied app=site version=1.0.0"))
        }
    }

    @Test func aFailingApplyReportsItsExitCodeAndStderr() throws {
        try withReconciler(apps: [try execApp("site", version: "1.0.0")], policy: "  maxPerHour: 0\n") { h in
            try h.start()
            try h.waitHealthy("site", "1.0.0")
            try h.write("apps/site/app.yaml", execAppYAML(version: "1.1.0", apply: "./apply-fails.sh"))
            let bad = try h.commit("site 1.1.0")
            try h.waitUntil("the failure is reported") { (try h.app("site")["lastError"] as? String ?? "").contains("quota exceeded") }
            let error = try h.app("site")["lastError"] as? String ?? ""
            #expect(error.contains("apply of site 1.1.0 exited with status 3"))
            #expect(try h.applied("site").version == "1.0.0")
            #expect(h.notes(on: bad, waitingFor: ["failed app=site"]).contains("failed app=site"))
        }
    }

    @Test func aHangingApplyTimesOut() throws {
        try withReconciler(apps: [try execApp("site", version: "1.0.0", apply: "./apply-hangs.sh", timeout: "1s")]) { h in
            try h.start()
            try h.waitUntil("the timeout is reported") { (try h.app("site")["lastError"] as? String ?? "").contains("timed out after 1s") }
            #expect(try h.app("site")["health"] as? String == "failed")
            // The hung command was killed with its process group.
            let left = try run("/usr/bin/pgrep", ["-f", "sleep 600"])
            #expect(!left.stdout.split(separator: "\n").contains { pid in
                (try? String(contentsOfFile: "/proc/\(pid)/environ", encoding: .utf8))?.contains(h.root) ?? false
            })
        }
    }

    @Test func observeFindsDriftAndAppliesAgain() throws {
        try withReconciler(apps: [try execApp("site", version: "1.0.0", observe: "./observe.sh")]) { h in
            try h.start(["--interval", "300ms"])
            try h.waitHealthy("site", "1.0.0")
            // Someone changes the platform behind Rewind's back.
            try "0.9.9\n".write(toFile: h.root + "/deployed-site", atomically: true, encoding: .utf8)
            try h.waitUntil("the drift is corrected") {
                try String(contentsOfFile: h.root + "/deployed-site", encoding: .utf8) == "1.0.0\n"
            }
            #expect(h.log.contains("drift in site"))
        }
    }
}
