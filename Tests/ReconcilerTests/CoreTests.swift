import Foundation
import Platforms
@testable import Reconciler
import SystemSupport
import ReconcilerStatus
import Testing
import ReconcilerDoubles
import TestSupport

/// The reconciler's core on a fake platform and a manual clock: each test
/// drives passes and supervision rounds itself, so nothing waits for real time.
@Suite struct CoreTests {
    static func apps(_ names: String..., version: String = "1") -> [HarnessApp] {
        names.map { HarnessApp($0, appYAML: fakeAppYAML(version: version)) }
    }

    @Test func backoffDoublesUpToItsCap() {
        let backoff = Backoff(base: 500, cap: 4_000)
        #expect((1...6).map(backoff.delay(attempt:)) == [500, 1_000, 2_000, 4_000, 4_000, 4_000])
        #expect(backoff.delay(attempt: 0) == 500)
        #expect(backoff.delay(attempt: 10_000) == 4_000, "no overflow")
        let randomized = Backoff(base: 8, cap: 64, randomized: true)
        for attempt in 1...8 {
            let full = min(8 << (attempt - 1), 64)
            #expect((Int64(full / 2)...Int64(full)).contains(randomized.delay(attempt: attempt)))
        }
    }

    /// A crash restarts the process after 0.5 s, then 1 s: the backoff steps,
    /// on the manual clock.
    @Test func aCrashedProcessRestartsWithBackoff() throws {
        let world = try FakeWorld(apps: Self.apps("api"), policy: "  soak: 0s\n")
        world.converge()
        #expect(world.app("api").health == .healthy)
        world.platform.behaviours["api 1"] = .crashesAfter(0)
        world.reconciler.supervise()
        #expect(world.app("api").health == .restarting)
        #expect(world.app("api").nextRestartAt == world.clock.wallMilliseconds() + 500)
        world.clock.advance(499)
        world.reconciler.supervise()
        #expect(world.platform.events.filter { $0 == "start api 1" }.count == 1, "not before its time")
        world.clock.advance(1)
        world.reconciler.supervise()
        #expect(world.platform.events.filter { $0 == "start api 1" }.count == 2)
        world.reconciler.supervise()
        #expect(world.app("api").nextRestartAt == world.clock.wallMilliseconds() + 1_000, "the second wait doubles")
        #expect(try world.commits().count == 1, "outside a soak window a crash is not a failed release")
    }

    /// Three exits within the soak window fail the release: one rollback
    /// commit; exits after the window are restarts only.
    @Test func crashLoopsCountOnlyWithinTheSoakWindow() throws {
        let world = try FakeWorld(apps: Self.apps("api"), policy: "  window: 30m\n  cooldown: 0s\n  soak: 10s\n  crashLoopRestarts: 3\n")
        world.converge()
        try world.harness.write("apps/api/app.yaml", fakeAppYAML(version: "2"))
        let bad = try world.harness.commit("api 2")
        world.platform.behaviours["api 2"] = .crashesAfter(100)
        world.converge()
        #expect(world.app("api").instance?.version == "2")
        world.run(for: 6_000)
        #expect(try world.commits().count == 3, "one rollback commit")
        let rollback = try world.commits()[0]
        #expect(try world.message(rollback).contains("Rewind-Reason: api release \(bad.prefix(7)) failed: crash-looping: exited 3 times"))
        #expect(world.app("api").instance?.version == "1" && world.app("api").health == .healthy)
        #expect(world.platform.versions("api") == ["1"], "git and the platform agree")

        // 1 again: crashes after its soak window are restarts, not a failed release.
        let late = try FakeWorld(apps: Self.apps("api"), policy: "  window: 30m\n  soak: 1s\n  crashLoopRestarts: 2\n")
        late.converge()
        late.clock.advance(2_000)
        late.platform.behaviours["api 1"] = .crashesAfter(0)
        late.run(for: 10_000)
        #expect(try late.commits().count == 1)
        #expect(late.app("api").restarts >= 3)
    }

    /// The rollback commit supervision writes is applied by the next tick at
    /// once, as a pass's is: the tick that wrote it asks for another pass,
    /// and no time passes before the good release runs again.
    @Test func aCrashLoopsRollbackIsAppliedWithoutWaitingForThePoll() throws {
        let world = try FakeWorld(apps: Self.apps("api"), policy: "  window: 30m\n  cooldown: 0s\n  soak: 10s\n  crashLoopRestarts: 3\n")
        world.converge()
        try world.harness.write("apps/api/app.yaml", fakeAppYAML(version: "2"))
        try world.harness.commit("api 2")
        world.platform.behaviours["api 2"] = .crashesAfter(100)
        world.converge()
        var result = Reconciler.Tick.idle
        for _ in 0..<200 where result == .idle {
            world.clock.advance(50)
            result = try world.reconciler.tick(now: world.clock.monotonicMilliseconds())
        }
        #expect(result == .passAgain, "the tick that wrote the rollback commit")
        #expect(try world.commits().count == 3)
        #expect(world.app("api").instance?.version != "1", "not applied yet")
        let before = world.clock.monotonicMilliseconds()
        #expect(try world.reconciler.tick(now: before) == .idle)
        #expect(world.app("api").instance?.version == "1" && world.app("api").health == .healthy)
        #expect(try world.message(world.commits()[0]).contains("crash-looping"))
    }

    /// Waves: a and b together (both starting before either is healthy), c
    /// after both; `--concurrency 1`: one at a time.
    @Test(arguments: [8, 1]) func waveOrderAndConcurrency(concurrency: Int) throws {
        let apps = Self.apps("a", "b") + [HarnessApp("c", dependsOn: ["a", "b"], appYAML: fakeAppYAML(version: "1"))]
        let world = try FakeWorld(apps: apps, concurrency: concurrency)
        for app in ["a", "b", "c"] { world.platform.behaviours["\(app) 1"] = .healthyAfter(300) }
        var healthyWhenStarted: [String: Set<String>] = [:]
        world.platform.onProbe = { _, _ in
            for app in ["a", "b", "c"] where healthyWhenStarted[app] == nil && world.platform.events.contains("start \(app) 1") {
                healthyWhenStarted[app] = Set(world.reconciler.state.apps.filter { $0.value.health == .healthy }.map(\.key))
            }
        }
        world.converge()
        #expect(["a", "b", "c"].allSatisfy { world.app($0).health == .healthy })
        #expect(healthyWhenStarted["c"] == ["a", "b"], "c starts when both are healthy")
        if concurrency > 1 {
            #expect(healthyWhenStarted["b"] == [], "b started before a was healthy")
            #expect(world.platform.mostStartingAtOnce == 2)
        } else {
            #expect(healthyWhenStarted["b"] == ["a"], "one at a time")
            #expect(world.platform.mostStartingAtOnce == 1)
        }
    }

    /// Two apps failing in one release: one commit rolls back both.
    @Test func twoFailuresInOneReleaseAreOneCommit() throws {
        let world = try FakeWorld(apps: Self.apps("api", "worker"))
        world.converge()
        try world.harness.write("apps/api/app.yaml", fakeAppYAML(version: "2"))
        try world.harness.write("apps/worker/app.yaml", fakeAppYAML(version: "2"))
        let bad = try world.harness.commit("api 2 and worker 2")
        world.platform.behaviours["api 2"] = .unhealthy
        world.platform.behaviours["worker 2"] = .unhealthy
        world.converge()
        let commits = try world.commits()
        #expect(commits.count == 3, "exactly one rollback commit")
        let message = try world.message(commits[0])
        #expect(message.contains("Rewind-App: api") && message.contains("Rewind-App: worker"), "\(message)")
        for app in ["api", "worker"] {
            #expect(world.app(app).instance?.version == "1" && world.app(app).health == .healthy)
            #expect(world.platform.versions(app) == ["1"])
            #expect(try git(["show", "main:apps/\(app)/app.yaml"], in: world.harness.repo).contains("version: \"1\""))
        }
        let notes = world.harness.notes(on: bad)
        #expect(notes.contains("rolled-back app=api") && notes.contains("rolled-back app=worker"), "\(notes)")
        // No late duplicate: more passes and supervision write nothing.
        world.run(for: 5_000)
        #expect(try world.commits().count == 3)
    }

    /// Three apps failing in one release: one is rolled back, one is held by
    /// a pin, one's rollback is refused by a guard (its old artifact is gone).
    /// One commit for the first; each other is escalated with its reason,
    /// and status says a human is needed.
    @Test func threeFailuresOnePinnedOneRefusedByAGuard() throws {
        let apps = [HarnessApp("a", appYAML: fakeAppYAML(version: "1")), HarnessApp("b", appYAML: fakeAppYAML(version: "1", artifact: "b/1.tgz")),
                    HarnessApp("c", appYAML: fakeAppYAML(version: "1"))]
        let world = try FakeWorld(apps: apps)
        try world.harness.publish("b/1.tgz")
        world.converge()
        #expect(["a", "b", "c"].allSatisfy { world.app($0).health == .healthy })
        try FileManager.default.removeItem(atPath: world.harness.artifacts + "/b/1.tgz")
        try world.harness.publish("b/2.tgz")
        try world.harness.write("apps/a/app.yaml", fakeAppYAML(version: "2"))
        try world.harness.write("apps/b/app.yaml", fakeAppYAML(version: "2", artifact: "b/2.tgz"))
        try world.harness.write("apps/c/app.yaml", fakeAppYAML(version: "2"))
        // The pin's target: a commit (on no branch) with c 2.
        _ = try git(["add", "-A"], in: world.harness.repo)
        let cTree = try git(["write-tree", "--prefix=apps/c/"], in: world.harness.repo)
        let target = try git(["commit-tree", try git(["write-tree"], in: world.harness.repo), "-p", "HEAD", "-m", "c 2"], in: world.harness.repo)
        try world.harness.write("rewind.pins.yaml", "pins:\n  c:\n    tree: \(cTree)\n    target: \(target)\n")
        let bad = try world.harness.commit("a 2, b 2, c 2 pinned")
        for app in ["a", "b", "c"] { world.platform.behaviours["\(app) 2"] = .unhealthy }
        world.converge()
        #expect(world.state.invalid == nil, "\(world.state.invalid.map { "\($0.message) \($0.details)" } ?? "")")
        let commits = try world.commits()
        #expect(commits.count == 3, "one rollback commit")
        let message = try world.message(commits[0])
        #expect(message.contains("Rewind-App: a") && !message.contains("Rewind-App: b") && !message.contains("Rewind-App: c"), "\(message)")
        #expect(world.app("a").instance?.version == "1")
        #expect(world.needsHuman("b")?.contains("artifact for b 1 is missing") == true, "\(world.needsHuman("b") ?? "nil")")
        #expect(world.needsHuman("c")?.contains("held by a pin") == true, "\(world.needsHuman("c") ?? "nil")")
        let notes = world.harness.notes(on: bad)
        #expect(notes.contains("rolled-back app=a") && notes.contains("escalated app=b") && notes.contains("escalated app=c"), "\(notes)")
        let status = try StatusReport.build(repo: world.reconciler.repo, stateDirectory: world.harness.stateDir)
        #expect(Set(status.needsHuman.compactMap { $0.split(separator: ":").first.map(String.init) }).isSuperset(of: ["b", "c"]), "\(status.needsHuman)")
        world.run(for: 3_000)
        #expect(try world.commits().count == 3, "no second commit")
    }

    /// A release with nothing to return to is escalated, and status shows it.
    @Test func anEscalationShowsInStatus() throws {
        let world = try FakeWorld(apps: Self.apps("api"))
        world.platform.behaviours["api 1"] = .unhealthy
        world.converge()
        #expect(try world.commits().count == 1)
        let status = try StatusReport.build(repo: world.reconciler.repo, stateDirectory: world.harness.stateDir)
        let api = try #require(status.apps.first { $0.name == "api" })
        #expect(api.needsHuman?.contains("no earlier healthy release") == true, "\(api.needsHuman ?? "nil")")
        #expect(!status.needsHuman.isEmpty)
    }

    /// A new tip during a long health wait: the app it changes stops
    /// waiting and gets the new version; the other finishes; nothing fails.
    @Test func aNewTipDuringAWaitStopsTheMootWait() throws {
        let world = try FakeWorld(apps: Self.apps("slow", "fast"))
        world.converge()
        try world.harness.write("apps/slow/app.yaml", fakeAppYAML(version: "2", healthTimeout: "60s"))
        try world.harness.write("apps/fast/app.yaml", fakeAppYAML(version: "2"))
        try world.harness.commit("slow 2, fast 2")
        world.platform.behaviours["slow 2"] = .unhealthy
        world.platform.behaviours["fast 2"] = .healthyAfter(500)
        var committed = false
        world.platform.onProbe = { app, version in
            guard app == "slow", version == "2", !committed else { return }
            committed = true
            try? world.harness.write("apps/slow/app.yaml", fakeAppYAML(version: "3"))
            _ = try? world.harness.commit("slow 3 instead")
        }
        let before = world.clock.monotonicMilliseconds()
        world.converge()
        #expect(committed)
        #expect(world.app("slow").instance?.version == "3", "\(world.platform.events) \(world.app("slow"))")
        #expect(world.clock.monotonicMilliseconds() - before < 10_000, "did not wait out slow 2's 60 s")
        #expect(world.app("slow").instance?.version == "3" && world.app("fast").instance?.version == "2")
        #expect(world.app("slow").failedRelease == nil && world.app("fast").failedRelease == nil)
        #expect(try world.commits().count == 3, "no rollback commit")
    }
}
