import Foundation
import ReconcilerDoubles
import ReconcilerStatus
import SystemSupport
import Testing
import TestSupport

/// The gates and the policy's limits on the fake world: an invalid commit
/// is refused as a whole, a rewritten history halts until accepted, a
/// missing artifact fails before anything stops, and maxPerHour 0 escalates
/// instead of committing. Killing and restarting real processes is in
/// RecoveryTests and KillWindowTests.
@Suite struct GateTests {
    @Test func anInvalidCommitIsRefusedAsAWholeAndTheNextValidOneApplies() throws {
        let world = try FakeWorld(apps: [HarnessApp("site", appYAML: fakeAppYAML(version: "1.0.0")), HarnessApp("blog", appYAML: fakeAppYAML(version: "1.0.0"))])
        world.converge()
        // site's change is fine, blog's app.yaml is broken: nothing of the commit applies.
        try world.harness.write("apps/site/app.yaml", fakeAppYAML(version: "1.1.0"))
        try world.harness.write("apps/blog/app.yaml", "platform: process\nversion: [not, a, string\n")
        let bad = try world.harness.commit("broken blog")
        world.converge()
        let refused = try #require(world.state.invalid)
        #expect(refused.commit.hex == bad)
        // The file has two lines: the problem at its end is on the last one.
        #expect(refused.details.joined(separator: "\n").contains("apps/blog/app.yaml:2: error: malformed YAML"), "\(refused.details)")
        #expect(world.app("site").instance?.version == "1.0.0")
        #expect(!world.platform.events.contains("start site 1.1.0"))
        #expect(world.log.contains("refusing \(bad.prefix(7))"))
        world.run(for: 31_000)
        #expect(world.log.lines.filter { $0.message.contains("refusing") }.count == 1, "said once, not at every full pass")
        try world.harness.write("apps/blog/app.yaml", fakeAppYAML(version: "1.0.1"))
        try world.harness.commit("fix blog")
        world.converge()
        #expect(world.state.invalid == nil)
        #expect(world.app("site").instance?.version == "1.1.0" && world.app("blog").instance?.version == "1.0.1")
    }

    @Test func aRewrittenHistoryHaltsUntilAccepted() throws {
        let world = try FakeWorld(apps: [HarnessApp("site", appYAML: fakeAppYAML(version: "1.0.0"))])
        world.converge()
        try world.harness.write("apps/site/app.yaml", fakeAppYAML(version: "1.1.0"))
        try world.harness.commit("site 1.1.0")
        world.converge()
        // Force-push a different history.
        _ = try git(["reset", "-q", "--hard", "HEAD~1"], in: world.harness.repo)
        try world.harness.write("apps/site/app.yaml", fakeAppYAML(version: "2.0.0"))
        let rewritten = try world.harness.commit("site 2.0.0 on a rewritten branch")
        world.converge()
        let halted = try #require(world.state.halted)
        #expect(halted.contains("--accept-rewrite \(rewritten.prefix(7))"), "\(halted)")
        world.run(for: 31_000)
        #expect(world.app("site").instance?.version == "1.1.0", "nothing is applied while halted")
        // `rewind reconcile --accept-rewrite` against a running reconciler leaves the commit here.
        _ = FileIO.writeAtomically(StateStore(directory: world.harness.stateDir).acceptFile, text: rewritten + "\n")
        world.run(for: 100)
        #expect(world.state.halted == nil)
        #expect(world.app("site").instance?.version == "2.0.0")
    }

    @Test func aMissingArtifactFailsTheReleaseBeforeTheRunningVersionIsTouched() throws {
        let world = try FakeWorld(apps: [HarnessApp("api", appYAML: fakeAppYAML(version: "1.0.0", artifact: "api/api-1.0.0.tar.gz"))], policy: "  maxPerHour: 0\n")
        try world.harness.publish("api/api-1.0.0.tar.gz")
        world.converge()
        let running = try #require(world.app("api").instance)
        try world.harness.write("apps/api/app.yaml", fakeAppYAML(version: "1.1.0", artifact: "api/api-1.1.0.tar.gz"))
        try world.harness.commit("api 1.1.0 (artifact never published)")
        world.converge()
        #expect(world.app("api").lastError?.contains("artifact for api 1.1.0 is missing: \(world.harness.artifacts)/api/api-1.1.0.tar.gz") == true, "\(world.app("api").lastError ?? "")")
        #expect(world.app("api").instance == running && world.app("api").health == .healthy)
        #expect(!world.platform.events.contains("stop 1.0.0") && world.platform.isRunning(running))
    }

    @Test func maxPerHourZeroEscalatesInsteadOfCommitting() throws {
        let world = try FakeWorld(apps: [HarnessApp("site", appYAML: fakeAppYAML(version: "1.0.0"))], policy: "  window: 30m\n  cooldown: 0s\n  maxPerHour: 0\n")
        world.converge()
        try world.harness.write("apps/site/app.yaml", fakeAppYAML(version: "1.1.0"))
        let bad = try world.harness.commit("site 1.1.0")
        world.platform.behaviours["site 1.1.0"] = .unhealthy
        world.converge()
        #expect(try world.commits().count == 2, "no rollback commit")
        #expect(world.needsHuman("site")?.contains("maxPerHour") == true, "\(world.needsHuman("site") ?? "")")
        #expect(world.app("site").instance?.version == "1.0.0", "the failed release never replaced the running one")
        #expect(world.notes(bad).contains("escalated app=site"))
        world.deliverNotifications()
        #expect(world.transport.events.contains("escalated"))
    }
}
