import Foundation
import Testing
import TestSupport

/// `rewind reconcile` stops what it started when told to stop, even a
/// release still waiting for health (FaultTests has the stop during a
/// stalled first sync, before any pass).
@Suite struct StopTests {
    @Test func aStopWhileAReleaseWaitsForHealthStopsThatReleaseToo() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            try h.write("apps/api/app.yaml", demoServiceYAML(version: "1.1.0", args: ["--ready-after", "60s"], healthTimeout: "90s"))
            try h.commit("api 1.1.0, slow to become healthy")
            var pending: Int32?
            try h.waitUntil("1.1.0 is started and waits for health") {
                guard let data = FileManager.default.contents(atPath: h.stateDir + "/apps/api.json") else { return false }
                let app = try JSONSerialization.jsonObject(with: data) as? [String: Any]
                pending = ((app?["pending"] as? [String: Any])?["pid"] as? NSNumber)?.int32Value
                return pending != nil
            }
            let running = try #require(try h.applied("api").pid)
            #expect(h.stop() == 0)
            let pid = try #require(pending)
            try TestProcess.waitUntilEnded([pid, running], "both versions are stopped") { h.log }
        }
    }

    @Test func aStopWhileAFirstReleaseWaitsForHealthLeavesNoProcess() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0", args: ["--ready-after", "60s"], healthTimeout: "90s"))]) { h in
            try h.start()
            var pending: Int32?
            try h.waitUntil("1.0.0 is started and waits for health") {
                guard let data = FileManager.default.contents(atPath: h.stateDir + "/apps/api.json") else { return false }
                let app = try JSONSerialization.jsonObject(with: data) as? [String: Any]
                pending = ((app?["pending"] as? [String: Any])?["pid"] as? NSNumber)?.int32Value
                return pending != nil
            }
            #expect(h.stop() == 0)
            let pid = try #require(pending)
            try TestProcess.waitUntilEnded([pid], "the release is stopped") { h.log }
        }
    }
}
