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

    @Test func stoppingTheReconcilerStopsItsProcesses() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            guard let pid = try h.applied("api").pid else { throw TestFailure("no pid") }
            #expect(h.stop() == 0)
            #expect(!TestProcess.runs(pid), "SIGTERM to the reconciler stops its apps: \(TestProcess.describe(pid))")
        }
    }
}
