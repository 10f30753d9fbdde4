import Foundation
import Testing
import TestSupport

/// `rewind wait` against a real reconciler and demo services: each outcome
/// with its documented exit code (README: exit codes).
@Suite struct WaitTests {
    func wait(_ h: ReconcilerHarness, _ extra: [String]) throws -> ProcessResult {
        try rewind(["wait", "--repo", h.repo, "--state-dir", h.stateDir] + extra)
    }

    @Test func healthyAndSyncedIsZero() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            try h.start()
            try h.write("apps/api/app.yaml", demoServiceYAML(version: "1.1.0", args: ["--ready-after", "300ms"]))
            let tip = try h.commit("api 1.1.0")
            let result = try wait(h, ["api", "--timeout", "30s"])
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            #expect(result.stdout.contains("api: runs the desired state of \(tip.prefix(7)), healthy"), "\(result.stdout)")
            // It returned because it was so, not early.
            #expect(try h.applied("api").version == "1.1.0" && h.applied("api").health == "healthy")
            let json = try wait(h, ["--format", "json", "--timeout", "5s"])
            #expect(json.status == 0)
            #expect((try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])?["result"] as? String == "done")
        }
    }

    @Test func aReleaseThatFailsAndIsRolledBackIsEight() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            try h.write("apps/api/app.yaml", demoServiceYAML(version: "1.1.0", args: ["--health", "fail"], healthTimeout: "1s"))
            try h.commit("api 1.1.0")
            let result = try wait(h, ["api", "--timeout", "60s"])
            #expect(result.status == 8, "\(result.stdout)\(result.stderr)")
            #expect(result.stderr.contains("api 1.1.0 failed") || result.stderr.contains("api was rolled back by"), "\(result.stderr)")
        }
    }

    /// `--soak` alone takes policy.soak (here 2s): a release that stays
    /// healthy through it is 0, and the message says it soaked.
    @Test func aReleaseThatStaysHealthyThroughTheSoakIsZero() throws {
        let policy = "  window: 30m\n  cooldown: 0s\n  maxPerHour: 3\n  soak: 2s\n  crashLoopRestarts: 3\n"
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))], policy: policy) { h in
            try h.start()
            try h.write("apps/api/app.yaml", demoServiceYAML(version: "1.1.0"))
            try h.commit("api 1.1.0")
            let result = try wait(h, ["api", "--timeout", "30s", "--soak"])
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            #expect(result.stdout.contains("healthy; soaking for 2s") && result.stdout.contains("through a soak of 2s"), "\(result.stdout)")
            #expect(try h.applied("api").version == "1.1.0")
        }
    }

    /// Seed 001's pipeline: `git push && rewind wait --soak` must fail the
    /// job when the release became healthy, then crash-looped within the
    /// soak window and automation rolled it back.
    @Test func aReleaseRolledBackWithinTheSoakIsEight() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            try h.write("apps/api/app.yaml", demoServiceYAML(version: "1.1.0", args: ["--crash-after", "500ms"]))
            try h.commit("api 1.1.0 crashes after a while")
            let result = try wait(h, ["api", "--soak", "60s", "--timeout", "60s"])
            #expect(result.status == 8, "\(result.stdout)\(result.stderr)")
            #expect(result.stdout.contains("healthy; soaking for 1m"), "it was healthy first: \(result.stdout)")
            #expect(result.stderr.contains("api was rolled back by") || result.stderr.contains("failed"), "\(result.stderr)")
        }
    }

    @Test func anEscalationIsSeven() throws {
        // A first release that fails has nothing to return to: escalated.
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0", args: ["--health", "fail"], healthTimeout: "1s"))]) { h in
            try h.start()
            try h.waitUntil("the failure is escalated") { (try h.app("api")["needsHuman"] as? String) != nil }
            let result = try wait(h, ["--timeout", "30s"])
            #expect(result.status == 7, "\(result.stdout)\(result.stderr)")
            #expect(result.stderr.contains("a human must act") && result.stderr.contains("no earlier healthy release"), "\(result.stderr)")
        }
    }

    @Test func aTimeoutIsNineAndSaysWhatItWaitedFor() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0", args: ["--ready-after", "60s"], healthTimeout: "90s"))]) { h in
            try h.start()
            let result = try wait(h, ["api", "--timeout", "1s"])
            #expect(result.status == 9, "\(result.stdout)\(result.stderr)")
            #expect(result.stderr.contains("timed out after 1s waiting for api:"), "\(result.stderr)")
        }
    }

    @Test func rollbackWaitReturnsWhenTheRollbackRunsAndIsHealthy() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            try h.write("apps/api/app.yaml", demoServiceYAML(version: "1.1.0"))
            try h.commit("api 1.1.0")
            try h.waitHealthy("api", "1.1.0")
            let result = try rewind(["rollback", "api", "--wait", "--timeout", "30s", "--repo", h.repo, "--state-dir", h.stateDir],
                                    environment: ["REWIND_ARTIFACT_ROOT": h.artifacts])
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            #expect(try h.applied("api").version == "1.0.0" && h.applied("api").health == "healthy", "returned before the rollback ran")
        }
    }
}
