import Foundation
import ReconcilerDoubles
import ReconcilerStatus
import SystemSupport
import Testing
import TestSupport

/// The rollout state machine on the fake world: steps, the failure limit,
/// breaches, pause, resume, promote, abort, and a rollback written by hand
/// mid-canary. The proxy is the fake router (what each backend was told);
/// time is the manual clock. The real HAProxy and Prometheus are in
/// ProgressiveDeliveryTests.
@Suite struct RolloutTests {
    static let canary = "  listen: 18080\n  strategy: canary\n  steps: [25, 50, 100]\n  interval: 10s\n"

    /// A world running `app` 1.0.0 healthy, then 2.0.0 committed and in its first step.
    func worldInRollout(_ traffic: String, app: String = "api") throws -> (FakeWorld, release: String) {
        let world = try FakeWorld(apps: [HarnessApp(app, appYAML: fakeAppYAML(version: "1.0.0", traffic: traffic))])
        world.converge()
        #expect(world.app(app).health == .healthy && world.app(app).instance?.version == "1.0.0")
        try world.harness.writeApp(HarnessApp(app, appYAML: fakeAppYAML(version: "2.0.0", traffic: traffic)))
        let release = try world.harness.commit("\(app) 2.0.0")
        world.converge()
        return (world, release)
    }

    func rollbackCommits(_ world: FakeWorld) throws -> [String] {
        try world.commits().filter { (try? world.message($0))?.contains("Rewind-Action: rollback") == true }
    }

    /// Writes an operator's request as `rewind promote|abort|pause|resume` does, and reads the answer.
    func ask(_ world: FakeWorld, _ app: String, _ action: RolloutRequest.Action, reason: String? = nil) throws -> RolloutAnswer {
        let store = StateStore(directory: world.harness.stateDir)
        let request = RolloutRequest(id: UUID().uuidString, action: action, reason: reason, actor: "ops@test")
        FileIO.makeDirectory(store.requestsDirectory)
        _ = FileIO.writeAtomically(store.requestFile(app), Array(try JSONEncoder().encode(request)))
        world.run(for: 150)
        let bytes = try #require(FileIO.read(store.answerFile(app)), "the reconciler answered")
        FileIO.removeTree(store.answerFile(app))
        let answer = try JSONDecoder().decode(RolloutAnswer.self, from: Data(bytes))
        #expect(answer.id == request.id)
        return answer
    }

    /// The version a canary would return to must run: when it dies mid-rollout
    /// it is started again (looked at when the canary is probed, not every tick).
    @Test func aStableVersionThatDiesMidCanaryIsStartedAgain() throws {
        let (world, _) = try worldInRollout(Self.canary)
        let stable = try #require(world.app("api").rollout?.stable)
        world.platform.stop(stable)
        world.run(for: 500)
        let restarted = try #require(world.app("api").rollout?.stable)
        #expect(restarted.version == "1.0.0" && restarted.pid != stable.pid && world.platform.isRunning(restarted), "\(restarted)")
        #expect(world.platform.events.filter { $0 == "start api 1.0.0" }.count == 2)
        #expect(world.log.contains("the stable version 1.0.0 is not running; starting it again"))
        #expect(world.app("api").rollout?.weight == 25, "the canary goes on")
    }

    @Test func aCanaryMovesStepByStepAndABreachTakesItOutWithOneRollbackCommit() throws {
        let traffic = Self.canary + "  analysis:\n    - name: canary-errors\n      query: 'errors{version=\"$version\"}'\n      threshold: 0\n      comparison: \">\"\n"
        let (world, release) = try worldInRollout(traffic)
        #expect(world.app("api").rollout?.weight == 25)
        #expect(world.router.weights("api") == [25, 75])
        world.run(for: 9_000)
        #expect(world.router.weights("api") == [25, 75], "not before the interval")
        world.run(for: 1_100)
        #expect(world.router.weights("api") == [50, 50])
        #expect(world.notes(release).contains("step app=api weight=50 version=2.0.0"))

        world.metrics.set("version=\"2.0.0\"", 3)
        world.run(for: 1_100)
        #expect(world.router.weights("api") == [100], "only the stable version is routed")
        #expect(world.app("api").instance?.version == "1.0.0" && world.app("api").rollout == nil)
        let rollbacks = try rollbackCommits(world)
        try #require(rollbacks.count == 1)
        let message = try world.message(rollbacks[0])
        #expect(message.contains("Rewind-Trigger: analysis"))
        #expect(message.contains("canary step 2 of 3") && message.contains("canary-errors"), "the reason names the step and the query: \(message)")
        #expect(world.notes(release).contains("aborted app=api weight=50 version=2.0.0"))
        #expect(world.platform.events.last == "stop 2.0.0")

        world.run(for: 2_000)
        #expect(world.notes(rollbacks[0]).contains("verified app=api"))
        #expect(try rollbackCommits(world).count == 1, "nothing is rolled back twice")
        #expect(world.transport.events.contains("rollback-started") && world.transport.events.contains("rollback-completed"), "\(world.transport.events)")
        #expect(world.metrics.asked.withLock { $0 }.contains("errors{version=\"2.0.0\"}"), "$version is the canary's")
    }

    @Test func aBlueGreenFailureWithinScaleDownDelaySwitchesBackAtOnce() throws {
        let (world, release) = try worldInRollout("  listen: 18080\n  strategy: blueGreen\n  scaleDownDelay: 1m\n")
        let stable = try #require(world.app("api").rollout?.stable)
        #expect(world.router.weights("api") == [100])
        #expect(world.router.routes["api"]?.count == 2, "the old version drains and stays warm")
        world.platform.behaviours["api 2.0.0"] = .unhealthy
        world.run(for: 1_000)
        #expect(world.app("api").instance == stable, "the stable instance serves again, not a new one")
        #expect(world.router.routes["api"]?.count == 1 && world.router.weights("api") == [100])
        let rollbacks = try rollbackCommits(world)
        try #require(rollbacks.count == 1)
        #expect(try world.message(rollbacks[0]).contains("blue-green"))
        #expect(world.notes(release).contains("aborted app=api weight=100 version=2.0.0"))
        world.run(for: 60_000)
        #expect(!world.platform.events.contains("start api 1.0.0") || world.platform.events.filter { $0 == "start api 1.0.0" }.count == 1, "1.0.0 was never started again")
        #expect(try rollbackCommits(world).count == 1)
    }

    @Test func healthProbesUnderTheFailureLimitAreNoiseAndPassingProbesResetTheCount() throws {
        let (world, _) = try worldInRollout(Self.canary + "  failureLimit: 3\n")
        for _ in 0..<2 {
            world.platform.behaviours["api 2.0.0"] = .unhealthy
            world.run(for: 150)
            world.platform.behaviours["api 2.0.0"] = .healthy
            world.run(for: 500)
        }
        #expect(world.log.lines.filter { $0.message.contains("failed a health probe (1 of 3 in a row abort)") }.count == 2, "each blip counts from 1")
        #expect(!world.log.contains("(3 of 3"))
        #expect(world.app("api").rollout?.weight == 25)
        #expect(try rollbackCommits(world).isEmpty)
        world.platform.behaviours["api 2.0.0"] = .unhealthy
        world.run(for: 1_000)
        #expect(try rollbackCommits(world).count == 1, "three failed probes in a row abort")
        #expect(try world.message(try rollbackCommits(world)[0]).contains("unhealthy (3 probes in a row)"))
    }

    @Test func pauseHoldsResumeReleasesPromoteEndsAndAbortCommits() throws {
        let (world, release) = try worldInRollout(Self.canary)
        let paused = try ask(world, "api", .pause, reason: "looking at logs")
        #expect(paused.ok, "\(paused.message)")
        #expect(try ask(world, "api", .pause).ok == false, "paused already")
        world.run(for: 30_000)
        #expect(world.app("api").rollout?.weight == 25, "a paused canary does not move on")
        #expect(try ask(world, "api", .resume).ok)
        world.run(for: 9_000)
        #expect(world.app("api").rollout?.weight == 25, "the time paused does not count toward the interval")
        world.run(for: 1_000)
        #expect(world.app("api").rollout?.weight == 50)
        let promoted = try ask(world, "api", .promote)
        #expect(promoted.ok && world.app("api").rollout == nil && world.app("api").instance?.version == "2.0.0")
        #expect(world.router.weights("api") == [100] && world.router.routes["api"]?.count == 1)
        #expect(world.platform.events.last == "stop 1.0.0")
        let notes = world.notes(release)
        for line in ["paused app=api version=2.0.0 weight=25 by=ops@test reason=\"looking at logs\"", "resumed app=api version=2.0.0", "promoted app=api version=2.0.0"] {
            #expect(notes.contains(line), "\(line) in \(notes)")
        }
        #expect(try ask(world, "api", .abort).ok == false, "no rollout in progress")

        try world.harness.writeApp(HarnessApp("api", appYAML: fakeAppYAML(version: "3.0.0", traffic: Self.canary)))
        let third = try world.harness.commit("api 3.0.0")
        world.converge()
        let aborted = try ask(world, "api", .abort, reason: "latency")
        #expect(aborted.ok, "\(aborted.message)")
        let rollback = try #require(aborted.commit)
        let message = try world.message(rollback)
        #expect(message.contains("Rewind-Trigger: manual") && message.contains("Rewind-Actor: ops@test") && message.contains("latency"), "\(message)")
        #expect(world.notes(third).contains("aborted app=api weight=25 version=3.0.0"))
        world.run(for: 1_000)
        #expect(world.app("api").instance?.version == "2.0.0" && world.router.weights("api") == [100])
        #expect(world.notes(rollback).contains("verified app=api"))
    }

    @Test func aRollbackCommittedByHandMidCanarySwitchesBackWithoutStartingAnything() throws {
        let (world, release) = try worldInRollout(Self.canary)
        let stable = try #require(world.app("api").rollout?.stable)
        let starts = world.platform.events.filter { $0.hasPrefix("start") }.count
        _ = try git(["revert", "--no-edit", "HEAD"], in: world.harness.repo)
        world.converge()
        world.run(for: 500)
        #expect(world.app("api").instance == stable && world.app("api").rollout == nil)
        #expect(world.platform.events.filter { $0.hasPrefix("start") }.count == starts, "nothing was started")
        #expect(world.router.weights("api") == [100] && world.router.routes["api"]?.count == 1)
        #expect(world.notes(release).contains("aborted app=api weight=25 version=2.0.0"))
        #expect(world.notes(try world.commits()[0]).contains("verified app=api"))
    }

    @Test func aProxyThatCannotRouteFailsTheReleaseBeforeAnythingStarts() throws {
        let world = try FakeWorld(apps: [HarnessApp("api", appYAML: fakeAppYAML(version: "1.0.0", traffic: Self.canary))])
        world.converge()
        world.router.failing = "haproxy: no such program"
        try world.harness.writeApp(HarnessApp("api", appYAML: fakeAppYAML(version: "2.0.0", traffic: Self.canary)))
        let release = try world.harness.commit("api 2.0.0")
        world.converge()
        #expect(!world.platform.events.contains("start api 2.0.0"), "nothing was started")
        #expect(world.app("api").instance?.version == "1.0.0", "the running version keeps serving")
        #expect(world.notes(release).contains("haproxy: no such program; nothing was started, and traffic is unchanged"), "\(world.notes(release))")
        #expect(try rollbackCommits(world).count == 1, "the failed release is rolled back by the policy")
    }
}
