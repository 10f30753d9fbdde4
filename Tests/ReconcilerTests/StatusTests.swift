import Foundation
import Testing
import TestSupport

/// `rewind status` tells the truth: what is live and what was last seen, what
/// needs a human, and a refused second serve changes nothing of the first.
@Suite struct StatusTests {
    @Test func withNoReconcilerHealthIsLastSeenAndOnceDoesNotPromiseARestart() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            try h.start(["--keep-apps"])
            try h.waitHealthy("api", "1.0.0")
            let live = try rewind(["status", "--repo", h.repo, "--state-dir", h.stateDir])
            #expect(live.status == 0)
            #expect(!live.stdout.contains("last seen"))
            let pid = try #require(try h.applied("api").pid)
            h.stop()
            let stale = try rewind(["status", "--repo", h.repo, "--state-dir", h.stateDir])
            #expect(stale.stdout.contains("healthy (last seen 20"), "\(stale.stdout)")
            #expect((try h.app("api")["healthIsLive"] as? Bool) == false)
            // The app dies while nothing supervises it: --once starts it again, and says so.
            kill(pid, SIGKILL)
            try TestProcess.waitUntilEnded([pid], "the app is gone", timeout: 30) { h.log }
            let once = try rewind(["reconcile", "--once", "--repo", h.repo, "--state-dir", h.stateDir, "--artifact-root", h.artifacts])
            #expect(once.status == 0, "\(once.stderr)")
            #expect(!once.stderr.contains("restarting"), "\(once.stderr)")
            #expect(once.stderr.contains("is not running; starting it again"), "\(once.stderr)")
            let again = try h.applied("api")
            #expect(again.health == "healthy" && again.pid != pid)
            if let started = again.pid { kill(-started, SIGKILL); kill(started, SIGKILL) }
        }
    }

    @Test func aRefusedSecondServeLeavesTheFirstsAddress() throws {
        try withReconciler(apps: [try execApp("site", version: "1.0.0")]) { h in
            let address = try h.startServe()
            let file = h.stateDir + "/serve.address"
            let before = try String(contentsOfFile: file, encoding: .utf8)
            let second = try rewind(["serve", "--repo", h.repo, "--state-dir", h.stateDir, "--port", "0"])
            #expect(second.status == 5, "\(second.stderr)")
            #expect(second.stderr.contains("another reconciler"))
            #expect(try String(contentsOfFile: file, encoding: .utf8) == before)
            #expect(before.contains(address))
        }
    }

    @Test func aHaltedOrRefusedReconcilerNeedsAHuman() throws {
        try withReconciler(apps: [try execApp("site", version: "1.0.0")]) { h in
            try h.start()
            try h.waitHealthy("site", "1.0.0")
            try h.write("rewind.yaml", "apps: [\n")
            try h.commit("broken rewind.yaml")
            try h.waitUntil("the tip is refused") { (try h.status()["refused"] as? [String: Any]) != nil }
            let status = try rewind(["status", "--repo", h.repo, "--state-dir", h.stateDir])
            #expect(status.status == 7)
            #expect(status.stdout.contains("REFUSED"))
        }
    }
}
