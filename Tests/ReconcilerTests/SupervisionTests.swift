import Foundation
import Testing
import TestSupport

/// The process platform between passes: drift and guards.
@Suite struct SupervisionTests {
    @Test func aProcessKilledByHandIsRestarted() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            guard let pid = try h.applied("api").pid else { throw TestFailure("no pid") }
            kill(pid, SIGKILL)
            try h.waitUntil("a new process serves") {
                let now = try h.applied("api")
                return now.pid != nil && now.pid != pid && now.health == "healthy"
            }
            #expect(try h.commits().count == 1, "a restart is not a release: no rollback")
            #expect(h.log.contains("restarted api 1.0.0"))
        }
    }

    @Test func aMissingArtifactFailsBeforeAnythingStops() throws {
        let app = HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0", artifact: "api/api-1.0.0.tar.gz"))
        try withReconciler(apps: [app], policy: "  maxPerHour: 0\n") { h in
            try h.publish("api/api-1.0.0.tar.gz")
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            let pid = try h.applied("api").pid
            try h.write("apps/api/app.yaml", demoServiceYAML(version: "1.1.0", artifact: "api/api-1.1.0.tar.gz"))
            try h.commit("api 1.1.0 (artifact never published)")
            try h.waitUntil("the failure is reported") { (try h.app("api")["lastError"] as? String ?? "").contains("is missing") }
            let error = try h.app("api")["lastError"] as? String ?? ""
            #expect(error.contains("artifact for api 1.1.0 is missing: \(h.artifacts)/api/api-1.1.0.tar.gz"))
            let now = try h.applied("api")
            #expect(now.version == "1.0.0" && now.pid == pid && now.health == "healthy")
            if let pid { #expect(kill(pid, 0) == 0, "the old process still runs") }
        }
    }

    @Test func stoppingTheReconcilerStopsItsProcesses() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            guard let pid = try h.applied("api").pid else { throw TestFailure("no pid") }
            #expect(h.stop() == 0)
            #expect(kill(pid, 0) != 0, "SIGTERM to the reconciler stops its apps")
        }
    }
}
