import Foundation
import ReconcilerDoubles
import Testing
import TestSupport

/// policy.triggers during the soak window, on the fake metrics source and
/// the manual clock: a breach must last `for`, an unanswered query is no
/// breach, notify suggests, and a rollback's triggers must clear within
/// the soak. A real Prometheus over HTTPS is in AnalysisTests.
@Suite struct BreachTests {
    static func policy(action: String = "rollback", for duration: String = "2s") -> String {
        """
          window: 30m
          cooldown: 0s
          maxPerHour: 3
          soak: 1m
          triggers:
            - name: error-rate
              query: 'errors{app="$app"}'
              comparison: ">"
              threshold: 0.05
              for: \(duration)
              action: \(action)

        """
    }

    /// api 1.0.0 healthy, then 2.0.0 committed and healthy (its soak begins).
    func worldWithNewRelease(policy: String) throws -> (FakeWorld, release: String) {
        let world = try FakeWorld(apps: [HarnessApp("api", appYAML: fakeAppYAML(version: "1.0.0"))], policy: policy) { $0.analysisInterval = 500 }
        world.converge()
        try world.harness.write("apps/api/app.yaml", fakeAppYAML(version: "2.0.0"))
        let release = try world.harness.commit("api 2.0.0")
        world.converge()
        #expect(world.app("api").instance?.version == "2.0.0" && world.app("api").health == .healthy)
        return (world, release)
    }

    @Test func aBreachRollsBackOnlyOnceItHasLastedItsFor() throws {
        let (world, release) = try worldWithNewRelease(policy: Self.policy())
        world.metrics.set("errors{app=\"api\"}", 0.5)
        world.run(for: 1_500)
        #expect(try world.commits().count == 2, "breaching for less than 2s is not yet a failure")
        world.metrics.set("errors{app=\"api\"}", 0.01)
        world.run(for: 1_000)
        world.metrics.set("errors{app=\"api\"}", 0.5)
        world.run(for: 1_500)
        #expect(try world.commits().count == 2, "a breach that cleared starts again from zero")
        world.run(for: 1_000)
        let commits = try world.commits()
        try #require(commits.count == 3)
        let message = try world.message(commits[0])
        #expect(message.contains("Rewind-Trigger: analysis") && message.contains("trigger error-rate: 0.5 > 0.05"), "\(message)")
        #expect(world.notes(release).contains("rolled-back app=api"))
        // The rollback is verified once its own queries are under the threshold.
        world.metrics.set("errors{app=\"api\"}", 0)
        world.run(for: 2_000)
        #expect(world.notes(commits[0]).contains("verified app=api"), "\(world.notes(commits[0]))")
        #expect(world.app("api").instance?.version == "1.0.0")
    }

    @Test func aQueryThatCannotBeAnsweredIsNoBreach() throws {
        let (world, _) = try worldWithNewRelease(policy: Self.policy())
        world.metrics.failing.withLock { $0 = "connection refused" }
        world.run(for: 5_000)
        #expect(try world.commits().count == 2)
        #expect(world.log.contains("trigger error-rate for api: connection refused"))
        #expect(world.app("api").health == .healthy)
    }

    /// A notify trigger rolls nothing back: it offers the rollback to a
    /// human (the `suggested` event with the exact command), once per breach.
    @Test func notifySuggestsTheRollbackOncePerBreach() throws {
        let (world, release) = try worldWithNewRelease(policy: Self.policy(action: "notify", for: "0s"))
        world.metrics.set("errors{app=\"api\"}", 0.5)
        world.run(for: 5_000)
        #expect(try world.commits().count == 2)
        #expect(world.log.contains("api: trigger error-rate: 0.5 > 0.05") && world.log.contains("(action notify)"))
        func suggestions() -> [String] { world.transport.sent.withLock { $0.map(\.body).filter { $0.contains("\"event\":\"suggested\"") } } }
        #expect(suggestions().count == 1, "once, not again while the breach lasts: \(world.transport.events)")
        let body = suggestions().first ?? ""
        #expect(body.contains("\"command\":\"rewind rollback api --reason 'trigger error-rate: 0.5 > 0.05") && body.contains("\"release\":\"\(release)\""), "\(body)")
        world.metrics.set("errors{app=\"api\"}", 0.01)
        world.run(for: 1_000)
        world.metrics.set("errors{app=\"api\"}", 0.5)
        world.run(for: 1_000)
        #expect(suggestions().count == 2, "a new breach after the query cleared is offered again")
        #expect(try world.commits().count == 2, "nothing is rolled back")
    }

    @Test func aRollbackWhoseTriggersDoNotClearWithinTheSoakFails() throws {
        let (world, _) = try worldWithNewRelease(policy: Self.policy(for: "0s"))
        world.metrics.set("errors{app=\"api\"}", 0.5)
        world.run(for: 600)
        let rollback = try #require(try world.commits().first)
        #expect(try world.message(rollback).contains("Rewind-Action: rollback"))
        #expect(world.app("api").verifying?.hex == rollback, "healthy, waiting for the triggers to clear")
        // Prometheus stops answering: the triggers are never seen under their thresholds.
        world.metrics.failing.withLock { $0 = "timeout" }
        world.run(for: 61_000)
        #expect(world.notes(rollback).contains("did not come back under their thresholds within the soak window"), "\(world.notes(rollback))")
        #expect(world.notes(rollback).contains("escalated app=api"), "a failed rollback is not rolled back again: a human takes over")
        #expect(world.needsHuman("api") != nil)
    }
}
