import ReconcilerDoubles
import ReconcilerStatus
import SystemSupport
import Testing
import TestSupport

/// A stop requested while a release starts: whatever was started is
/// stopped before the state forgets it, on every path (started and
/// waited for, or started in the background and not yet polled).
@Suite struct StopDuringStartTests {
    /// Found as a demo service that outlived its reconciler in some full
    /// runs: with --concurrency above 1 a process starts "in the
    /// background" (the start returns at once, the instance is picked up
    /// by the next poll), and a stop seen before that poll cleared the
    /// journal without stopping the process.
    @Test(arguments: [8, 1]) func aStopRightAfterAStartLeavesNothingRunningThatTheStateForgot(concurrency: Int) throws {
        let world = try FakeWorld(apps: [HarnessApp("api", appYAML: fakeAppYAML(version: "1.0"))], concurrency: concurrency)
        world.converge()
        #expect(world.app("api").instance?.version == "1.0")
        let stop = try #require(world.reconciler.options.stop as? StopFlag)
        world.platform.onStart = { _, version in if version == "1.1" { stop.stop() } }
        try world.harness.write("apps/api/app.yaml", fakeAppYAML(version: "1.1"))
        try world.harness.commit("api 1.1")
        _ = try world.reconciler.tick(now: world.clock.monotonicMilliseconds())
        #expect(world.platform.events.contains("start api 1.1"), "the new version was started")
        #expect(!world.platform.running.values.contains { $0.version == "1.1" }, "and stopped again: \(world.platform.running.values.map(\.version))")
        #expect(world.app("api").pending == nil && world.app("api").instance?.version == "1.0", "the state names what runs")
    }
}
