import Foundation
import Testing
import TestSupport

/// A broken tip is refused by the reconciler; `rewind revert HEAD` repairs it,
/// the reconciler applies the repair, and status is clean again.
@Suite struct BrokenTipRepairTests {
    @Test func revertingABrokenTipIsAppliedAndStatusIsCleanAgain() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            let yaml = try String(contentsOfFile: h.repo + "/rewind.yaml", encoding: .utf8)
            try h.write("rewind.yaml", yaml + "apps: [oops\n")
            let broken = try h.commit("break rewind.yaml")
            try h.waitUntil("the broken tip is refused") { ((try h.status()["refused"] as? [String: Any])?["commit"] as? String) == broken }
            #expect(try rewind(["status", "--repo", h.repo, "--state-dir", h.stateDir]).status == 7)
            let revert = try rewind(["revert", "HEAD", "--repo", h.repo])
            #expect(revert.status == 0, "\(revert.stderr)")
            try h.waitUntil("the repair is applied") {
                let status = try h.status()
                let tip = try h.commits()[0]
                return status["refused"] is NSNull && status["lastApplied"] as? String == tip
            }
            try h.waitHealthy("api", "1.0.0")
            let status = try rewind(["status", "--repo", h.repo, "--state-dir", h.stateDir])
            #expect(status.status == 0, "\(status.stdout)")
            #expect(try h.applied("api").version == "1.0.0")
        }
    }
}
