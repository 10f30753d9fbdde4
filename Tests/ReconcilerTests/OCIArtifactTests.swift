import Foundation
import Reconciler
import ReconcilerDoubles
import Testing
import TestSupport

/// Releases pulled from a real registry (Debian's docker-registry, published
/// with skopeo) and run by the process platform from the unpacked artifact.
@Suite(.serialized) struct OCIArtifactTests {
    /// The artifact's `bin/api` runs the demo service.
    static func files(_ version: String) -> [String: (text: String, executable: Bool)] {
        let demo = (rewindBinary as NSString).deletingLastPathComponent + "/rewind-demo-service"
        return ["bin/api": ("#!/bin/sh\nexec \(demo) \"$@\"\n", true), "VERSION": ("\(version)\n", false)]
    }

    static func appYAML(_ version: String, _ reference: String) -> String {
        "platform: process\nversion: \"\(version)\"\nprocess:\n  command: bin/api\nhealth:\n  http: /health\n  timeout: 10s\n  interval: 200ms\n"
            + "artifact:\n  oci: \(reference)\n"
    }

    /// Deploy 1.0 and 2.0 from the registry; stop the registry; a rollback
    /// to 1.0 still ends healthy, from the cache.
    @Test func releasesDeployFromTheRegistryAndRollBackWithTheRegistryDown() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        let one = try registry.publish("team/api", tag: "1.0", files: Self.files("1.0"))
        let two = try registry.publish("team/api", tag: "2.0", files: Self.files("2.0"))
        try withReconciler(apps: [HarnessApp("api", appYAML: Self.appYAML("1.0", "\(registry.host)/team/api:1.0@\(one)"))]) { h in
            try h.start(["--plain-http-registry", registry.host])
            try h.waitHealthy("api", "1.0")
            let unpacked = h.stateDir + "/artifacts/oci/" + one.dropFirst(7)
            #expect(try String(contentsOfFile: unpacked + "/VERSION", encoding: .utf8) == "1.0\n")
            try h.write("apps/api/app.yaml", Self.appYAML("2.0", "\(registry.host)/team/api:2.0@\(two)"))
            try h.commit("api 2.0")
            try h.waitHealthy("api", "2.0")
            registry.stop()
            // The guard finds 1.0 in the reconciler's artifact cache: no registry needed.
            let rollback = try rewind(["rollback", "api", "--repo", h.repo, "--state-dir", h.stateDir, "--reason", "registry outage drill"])
            #expect(rollback.status == 0, "\(rollback.stdout)\(rollback.stderr)")
            try h.waitHealthy("api", "1.0")
        }
    }

    /// A release whose artifact the registry does not have fails before
    /// anything is stopped: the running version keeps serving, and the
    /// status says what is missing and where.
    @Test func aReleaseWhoseArtifactIsMissingFailsAndTheRunningVersionStays() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        let one = try registry.publish("team/api", tag: "1.0", files: Self.files("1.0"))
        let missing = "sha256:" + String(repeating: "e", count: 64)
        try withReconciler(apps: [HarnessApp("api", appYAML: Self.appYAML("1.0", "\(registry.host)/team/api:1.0@\(one)"))],
                           policy: "  window: 30m\n  cooldown: 0s\n  maxPerHour: 0\n  soak: 1m\n") { h in
            try h.start(["--plain-http-registry", registry.host])
            try h.waitHealthy("api", "1.0")
            let before = try h.applied("api").pid
            try h.write("apps/api/app.yaml", Self.appYAML("2.0", "\(registry.host)/team/api:2.0@\(missing)"))
            try h.commit("api 2.0")
            var error = ""
            try h.waitUntil("the release fails naming the missing manifest") {
                error = (try h.app("api")["lastError"] as? String) ?? ""
                return error.contains("has no manifest \(missing)")
            }
            #expect(error.contains(registry.host) && error.contains("nothing was stopped"), "\(error)")
            #expect(try h.applied("api").version == "1.0")
            #expect(try h.applied("api").pid == before, "the running process was not touched")
        }
    }

    /// A registry with api 1.0 and 2.0, and a repository that released
    /// 1.0 then 2.0 (no reconciler running); `one` is 1.0's digest.
    func withTwoReleases(_ body: (TestRegistry, ReconcilerHarness, _ one: String) throws -> Void) throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        let one = try registry.publish("team/api", tag: "1.0", files: Self.files("1.0"))
        let two = try registry.publish("team/api", tag: "2.0", files: Self.files("2.0"))
        try withReconciler(apps: [HarnessApp("api", appYAML: Self.appYAML("1.0", "\(registry.host)/team/api:1.0@\(one)"))]) { h in
            try h.write("apps/api/app.yaml", Self.appYAML("2.0", "\(registry.host)/team/api:2.0@\(two)"))
            try h.commit("api 2.0")
            try body(registry, h, one)
        }
    }

    /// Seed 002's "Registry That Forgot": the rollback target's manifest is
    /// deleted (garbage collection). `rewind rollback` is refused before any
    /// commit, naming what is missing and where; `--force` (a human) writes
    /// it with the override in its trailers; once the target is in the
    /// artifact cache (`rewind pull` before the deletion) it is allowed.
    @Test func aRollbackToAnArtifactTheRegistryLostIsRefusedUnlessCachedOrForced() throws {
        try withTwoReleases { registry, h, one in
            let environment = ["REWIND_PLAIN_HTTP_REGISTRIES": registry.host]
            let base = ["rollback", "api", "--repo", h.repo, "--state-dir", h.stateDir, "--reason", "2.0 is slow"]
            // While the registry has 1.0, the guard finds it there (a dry run writes nothing).
            let present = try rewind(base + ["--dry-run"], environment: environment)
            #expect(present.status == 0, "\(present.stdout)\(present.stderr)")
            #expect(present.stdout.contains("ok: artifact of api 1.0 is published: \(registry.host) has team/api@\(one)"), "\(present.stdout)")
            // Another state directory pulls 1.0 into its artifact cache before the registry loses it.
            let cachedState = h.stateDir + "-cached"
            defer { try? FileManager.default.removeItem(atPath: cachedState) }
            let pulled = try rewind(["pull", "\(registry.host)/team/api:1.0@\(one)", "--state-dir", cachedState, "--plain-http-registry", registry.host])
            #expect(pulled.status == 0, "\(pulled.stdout)\(pulled.stderr)")
            try registry.delete("team/api", digest: one)
            let commits = try h.commits().count
            let refused = try rewind(base, environment: environment)
            #expect(refused.status == 1, "\(refused.stdout)\(refused.stderr)")
            #expect(refused.stderr.contains("the artifact of api 1.0") && refused.stderr.contains("has no manifest \(one) of team/api"), "\(refused.stderr)")
            #expect(refused.stderr.contains("--force"), "\(refused.stderr)")
            #expect(try h.commits().count == commits, "nothing written")
            // In the cache: allowed, with the registry's copy gone.
            let cached = try rewind(["rollback", "api", "--repo", h.repo, "--state-dir", cachedState, "--reason", "2.0 is slow", "--dry-run"], environment: environment)
            #expect(cached.status == 0 && cached.stdout.contains("ok: artifact of api 1.0 is in the artifact cache"), "\(cached.stdout)\(cached.stderr)")
            // A human's --force writes it, and the commit says what was forced.
            let forced = try rewind(base + ["--force"], environment: environment)
            #expect(forced.status == 0, "\(forced.stdout)\(forced.stderr)")
            let message = try git(["log", "-1", "--format=%B"], in: h.repo)
            #expect(message.contains("is not at hand"), "\(message)")
        }
    }

    /// `rewind validate --artifacts` (CI, pre-receive hooks): every artifact
    /// a rollback could return to must still be in its registry.
    @Test func validateArtifactsNamesWhatARetentionPolicyDeleted() throws {
        try withTwoReleases { registry, h, one in
            let environment = ["REWIND_PLAIN_HTTP_REGISTRIES": registry.host]
            let fine = try rewind(["validate", "--artifacts", "--repo", h.repo], environment: environment)
            #expect(fine.status == 0, "\(fine.stdout)\(fine.stderr)")
            #expect(fine.stdout.contains("ok: api 1.0") && fine.stdout.contains("ok: api 2.0") && fine.stdout.contains("(2 checked)"), "\(fine.stdout)")
            try registry.delete("team/api", digest: one)
            let missing = try rewind(["validate", "--artifacts", "--repo", h.repo], environment: environment)
            #expect(missing.status == 1, "\(missing.stdout)\(missing.stderr)")
            #expect(missing.stdout.contains("missing: api 1.0") && missing.stderr.contains("missing: api 1.0"), "\(missing.stdout)\(missing.stderr)")
            let json = try rewind(["validate", "--artifacts", "--format", "json", "--repo", h.repo], environment: environment)
            let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
            let listed = object?["artifacts"] as? [[String: Any]] ?? []
            #expect(listed.count == 2 && listed.contains { $0["version"] as? String == "1.0" && $0["present"] as? Bool == false }, "\(json.stdout)")
        }
    }
}

/// The artifact cache's bound on the manual clock: after a pull, what the
/// policy could still roll back to stays; older releases go.
@Suite(.serialized) struct ArtifactCacheBoundTests {
    @Test func releasesOutsideThePolicyWindowAreEvictedAndThoseInsideStay() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        let digests = try ["1.0", "2.0", "3.0"].map { try registry.publish("team/api", tag: $0, files: OCIArtifactTests.files($0)) }
        func yaml(_ index: Int) -> String { OCIArtifactTests.appYAML(["1.0", "2.0", "3.0"][index], "\(registry.host)/team/api:\(["1.0", "2.0", "3.0"][index])@\(digests[index])") }
        let world = try FakeWorld(apps: [HarnessApp("api", appYAML: yaml(0))], policy: "  window: 30m\n  cooldown: 0s\n") { options in
            options.registry.plainHTTP = [registry.host]
            options.artifactCacheSize = 1
        }
        func cached(_ index: Int) -> Bool { FileManager.default.fileExists(atPath: world.harness.stateDir + "/artifacts/oci/\(digests[index].dropFirst(7)).done") }
        world.converge()
        try world.harness.write("apps/api/app.yaml", yaml(1))
        try world.harness.commit("api 2.0")
        world.converge()
        #expect(world.app("api").instance?.version == "2.0")
        #expect(cached(0) && cached(1), "1.0 is what the policy would roll back to: kept although over the bound")
        #expect(world.log.lines.contains { $0.message.contains("all of it needed for rollback") })
        // An hour later, 2.0's and 1.0's commits are outside the window.
        world.clock.advance(3_600_000)
        try world.harness.write("apps/api/app.yaml", yaml(2))
        try world.harness.commit("api 3.0")
        world.converge()
        #expect(world.app("api").instance?.version == "3.0")
        #expect(cached(2) && !cached(0), "1.0: neither applied nor within the window")
    }
}

/// Automation never forces the artifact guard: a crash-looping release
/// whose rollback target is neither cached nor in its registry escalates,
/// and no rollback commit is written.
@Suite(.serialized) struct ArtifactGuardAutomationTests {
    @Test func anAutomaticRollbackToALostArtifactEscalatesInstead() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        let one = try registry.publish("team/api", tag: "1.0", files: OCIArtifactTests.files("1.0"))
        let two = try registry.publish("team/api", tag: "2.0", files: OCIArtifactTests.files("2.0"))
        let world = try FakeWorld(apps: [HarnessApp("api", appYAML: OCIArtifactTests.appYAML("1.0", "\(registry.host)/team/api:1.0@\(one)"))],
                                  policy: "  window: 30m\n  cooldown: 0s\n  soak: 10s\n  crashLoopRestarts: 3\n") { options in
            options.registry.plainHTTP = [registry.host]
        }
        world.converge()
        try world.harness.write("apps/api/app.yaml", OCIArtifactTests.appYAML("2.0", "\(registry.host)/team/api:2.0@\(two)"))
        try world.harness.commit("api 2.0")
        world.platform.behaviours["api 2.0"] = .crashesAfter(100)
        world.converge()
        #expect(world.app("api").instance?.version == "2.0")
        // 1.0 is lost: deleted from the registry and gone from the cache.
        try registry.delete("team/api", digest: one)
        let cache = world.harness.stateDir + "/artifacts/oci/" + one.dropFirst(7)
        try FileManager.default.removeItem(atPath: cache + ".done")
        try FileManager.default.removeItem(atPath: cache)
        let commits = try world.commits().count
        world.run(for: 6_000)
        #expect(try world.commits().count == commits, "no rollback commit to an artifact that is not at hand")
        let why = world.needsHuman("api") ?? ""
        #expect(why.contains("not at hand") && why.contains("has no manifest \(one)"), "\(why)")
    }
}
