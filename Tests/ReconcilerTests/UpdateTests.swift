import Artifacts
import Foundation
import ReconcilerDoubles
import ReconcilerStatus
import Rollback
import SystemSupport
import Testing
import TestSupport
import Updates

/// `updates:` proposals against a real registry, on the manual clock: the
/// newest tag becomes one update commit once the current release has
/// soaked; a version that was rolled back is never proposed again until
/// `rewind allow` or a newer version.
@Suite(.serialized) struct UpdateProposalTests {
    static func appYAML(_ version: String, _ reference: String) -> String {
        """
        platform: process
        # the tag, moved by update commits
        version: "\(version)"
        process:
          command: bin/api
        health:
          http: /health
        artifact:
          oci: \(reference)   # pinned by digest
        updates:
          tags: {semver: ">=1.0.0"}
          interval: 1m
        """ + "\n"
    }

    @Test func theNewestTagIsProposedOnceSoakedAndARolledBackDigestOnlyAfterAllow() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        let one = try registry.publish("team/api", tag: "1.0.0", files: OCIArtifactTests.files("1.0.0"))
        let world = try FakeWorld(apps: [HarnessApp("api", appYAML: Self.appYAML("1.0.0", "\(registry.host)/team/api:1.0.0@\(one)"))],
                                  policy: "  window: 30m\n  cooldown: 0s\n  soak: 10s\n  crashLoopRestarts: 3\n") { options in
            options.registry.plainHTTP = [registry.host]
        }
        var artifactOptions = ArtifactOptions(directory: world.harness.stateDir + "/artifacts")
        artifactOptions.plainHTTP = [registry.host]
        let clock = world.clock
        let proposer = UpdateProposer(repo: try DeployRepository(path: world.harness.repo, branch: nil), store: StateStore(directory: world.harness.stateDir),
                                      artifacts: ArtifactStore(options: artifactOptions), now: { clock.wallMilliseconds() })
        world.converge()
        #expect(world.app("api").instance?.version == "1.0.0")
        #expect(proposer.check("api").state == .current)

        // 1.1.0 is published while 1.0.0 still soaks: it waits, then one update commit.
        let two = try registry.publish("team/api", tag: "1.1.0", files: OCIArtifactTests.files("1.1.0"))
        let waiting = proposer.check("api")
        #expect(waiting.state == .waiting && waiting.message.contains("soaks until"), "\(waiting)")
        world.run(for: 10_500)
        let proposed = proposer.check("api")
        #expect(proposed.state == .proposed && proposed.tag == "1.1.0" && proposed.digest == two, "\(proposed)")
        let update = try #require(proposed.commit)
        let message = try world.message(update)
        for trailer in ["Rewind-Action: update", "Rewind-App: api", "Rewind-Old-Digest: \(one)", "Rewind-New-Digest: \(two)", "Rewind-Tag: 1.1.0", "Rewind-Trigger: registry"] {
            #expect(message.contains(trailer), "\(message)")
        }
        // A minimal edit: the version and the reference change, comments and order stay (git is the oracle).
        let diff = try git(["diff", "--unified=0", "\(update)~1", update, "--", "apps/api/app.yaml"], in: world.harness.repo)
        let changed = diff.split(separator: "\n").filter { ($0.hasPrefix("+") || $0.hasPrefix("-")) && !$0.hasPrefix("+++") && !$0.hasPrefix("---") }
        #expect(changed == ["-version: \"1.0.0\"", "+version: \"1.1.0\"",
                            "-  oci: \(registry.host)/team/api:1.0.0@\(one)   # pinned by digest", "+  oci: \(registry.host)/team/api:1.1.0@\(two)   # pinned by digest"], "\(diff)")
        let proposedCommits = try world.commits().count
        #expect(proposer.check("api").state == .current, "the branch declares 1.1.0 now")
        #expect(try world.commits().count == proposedCommits, "one commit per version")

        // 1.1.0 crash-loops and is rolled back automatically.
        world.platform.behaviours["api 1.1.0"] = .crashesAfter(100)
        world.converge()
        world.run(for: 6_000)
        #expect(world.app("api").instance?.version == "1.0.0")
        let commits = try world.commits().count
        let blocked = proposer.check("api")
        #expect(blocked.state == .blocked && blocked.message.contains("rolled back by") && blocked.message.contains("rewind allow api 1.1.0"), "\(blocked)")
        // The same tag pushed again (same digest): still not proposed.
        try registry.push("team/api", tag: "1.1.0", from: "1.1.0")
        world.run(for: 10_500)
        #expect(proposer.check("api").state == .blocked)
        #expect(try world.commits().count == commits, "no commit for a rolled-back digest")

        // A human allows it: proposed again.
        let unknown = try rewind(["allow", "api", "9.9.9", "--repo", world.harness.repo])
        #expect(unknown.status != 0 && unknown.stderr.contains("no rolled-back release of api is '9.9.9'") && unknown.stderr.contains("1.1.0"), "\(unknown.stderr)")
        let allow = try rewind(["allow", "api", "1.1.0", "--repo", world.harness.repo, "--reason", "fixed the config it crashed on"])
        #expect(allow.status == 0, "\(allow.stdout)\(allow.stderr)")
        let allowMessage = try world.message("HEAD")
        #expect(allowMessage.contains("Rewind-Action: allow") && allowMessage.contains("Rewind-Allow: \(two)"), "\(allowMessage)")
        let again = try rewind(["allow", "api", "1.1.0", "--repo", world.harness.repo])
        #expect(again.status == 0 && again.stdout.contains("already allowed"), "\(again.stdout)\(again.stderr)")
        world.platform.behaviours["api 1.1.0"] = .healthy
        let reproposed = proposer.check("api")
        #expect(reproposed.state == .proposed && reproposed.digest == two, "\(reproposed)")
        world.converge()
        #expect(world.app("api").instance?.version == "1.1.0")

        // A newer version is proposed once 1.1.0 has soaked.
        let three = try registry.publish("team/api", tag: "1.2.0", files: OCIArtifactTests.files("1.2.0"))
        world.run(for: 10_500)
        let newer = proposer.check("api")
        #expect(newer.state == .proposed && newer.digest == three, "\(newer)")
    }

    /// A deny window holds update proposals until it is over.
    @Test func aFreezeHoldsUpdateProposalsUntilItIsOver() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        let (world, proposer, _) = try Self.worldWithTwoTags(registry)
        world.converge()
        world.run(for: 1_500)
        let now = world.clock.wallMilliseconds()
        let config = try String(contentsOfFile: world.harness.repo + "/rewind.yaml", encoding: .utf8)
        try world.harness.write("rewind.yaml", config + "windows:\n  - kind: deny\n    schedule: \"\((now / 60_000) % 60) \((now / 3_600_000) % 24) * * *\"\n    duration: 1h\n")
        try world.harness.commit("a freeze from now on, for an hour")
        world.converge()
        let commits = try world.commits().count
        let held = proposer.check("api")
        #expect(held.state == .waiting && held.message.contains("1.1.0 waits for the change window: held by freeze until"), "\(held)")
        #expect(try world.commits().count == commits)
        world.clock.advance(3_600_000)
        let proposed = proposer.check("api")
        #expect(proposed.state == .proposed && proposed.tag == "1.1.0", "\(proposed)")
        #expect(try world.commits().count == commits + 1)
    }

    /// A pin holds updates; an unknown tag policy match is a clear failure.
    /// api 1.0.0 from the registry, which also has 1.1.0, on the fake world
    /// (soak 1 s), and a proposer on the manual clock; and 1.0.0's digest.
    static func worldWithTwoTags(_ registry: TestRegistry) throws -> (FakeWorld, UpdateProposer, one: String) {
        let one = try registry.publish("team/api", tag: "1.0.0", files: OCIArtifactTests.files("1.0.0"))
        _ = try registry.publish("team/api", tag: "1.1.0", files: OCIArtifactTests.files("1.1.0"))
        let world = try FakeWorld(apps: [HarnessApp("api", appYAML: Self.appYAML("1.0.0", "\(registry.host)/team/api:1.0.0@\(one)"))],
                                  policy: "  window: 30m\n  cooldown: 0s\n  soak: 1s\n") { options in
            options.registry.plainHTTP = [registry.host]
        }
        var artifactOptions = ArtifactOptions(directory: world.harness.stateDir + "/artifacts")
        artifactOptions.plainHTTP = [registry.host]
        let proposer = UpdateProposer(repo: try DeployRepository(path: world.harness.repo, branch: nil), store: StateStore(directory: world.harness.stateDir),
                                      artifacts: ArtifactStore(options: artifactOptions), now: { [clock = world.clock] in clock.wallMilliseconds() })
        return (world, proposer, one)
    }

    @Test func aPinHoldsUpdatesAndAPolicyThatMatchesNothingSaysSo() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        let (world, proposer, one) = try Self.worldWithTwoTags(registry)
        world.converge()
        world.run(for: 1_500)
        let pin = try rewind(["pin", "api", "--repo", world.harness.repo, "--reason", "freeze for the audit"])
        #expect(pin.status == 0, "\(pin.stderr)")
        let commits = try world.commits().count
        let held = proposer.check("api")
        #expect(held.state == .held && held.message.contains("rewind unpin api"), "\(held)")
        #expect(try world.commits().count == commits)
        try world.harness.write("apps/api/app.yaml", Self.appYAML("1.0.0", "\(registry.host)/team/api:1.0.0@\(one)").replacingOccurrences(of: ">=1.0.0", with: "^7"))
        try world.harness.commit("only 7.x")
        let nothing = proposer.check("api")
        #expect(nothing.state == .failed && nothing.message.contains("none of the 2 tags") && nothing.message.contains("semver \"^7\""), "\(nothing)")
    }
}

/// The whole loop with real parts: `rewind serve`, Debian's docker-registry
/// sending push notifications to `POST /hooks/registry` with the hook
/// token, the process platform running what the registry serves.
@Suite(.serialized) struct UpdateNotificationTests {
    static func yaml(_ version: String, _ reference: String) -> String {
        OCIArtifactTests.appYAML(version, reference) + "updates:\n  tags: {semver: \"^1.0.0\"}\n  interval: 1h\n"
    }

    @Test func aPushedTagIsDeployedARolledBackOneIsNotProposedAgainAndANewerOneIs() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        let one = try registry.publish("team/api", tag: "1.0.0", files: OCIArtifactTests.files("1.0.0"))
        try withReconciler(apps: [HarnessApp("api", appYAML: Self.yaml("1.0.0", "\(registry.host)/team/api:1.0.0@\(one)"))],
                           policy: "  window: 30m\n  cooldown: 0s\n  soak: 1s\n  crashLoopRestarts: 2\n") { h in
            let token = "registry-hook-\(UUID().uuidString)"
            try writeFile(h.root + "/hook-token", token + "\n")
            // Each proposal is also an update-proposed notification (a route of its own, to a loopback receiver).
            guard let hookPort = Loopback.freeAppPort() else { throw TestFailure("no port") }
            let received = h.root + "/received.log"
            let receiver = try Spawn.start(SpawnOptions(program: "/usr/bin/env", arguments: ["python3", packageRoot + "/fixtures/webhook-receiver.py", String(hookPort), received],
                                                        environment: ProcessInfo.processInfo.environment))
            defer { Spawn.stop(receiver, graceMilliseconds: 1_000) }
            try h.waitUntil("the receiver listens") { Loopback.canConnect(port: hookPort) }
            try writeFile(h.root + "/notify.yaml", "targets:\n  hook: {type: webhook, url: \"http://127.0.0.1:\(hookPort)/events\"}\nroutes:\n  - {events: [update-proposed], targets: [hook]}\n")
            let address = try h.startServe(["--plain-http-registry", registry.host, "--hook-token-file", h.root + "/hook-token", "--ui-public-read",
                                            "--notify-routes", h.root + "/notify.yaml"])
            let port = Int(address.split(separator: ":").last ?? "") ?? 0
            try h.waitHealthy("api", "1.0.0")
            try registry.sendNotifications(to: "http://\(address)/hooks/registry", token: token)
            func updates() throws -> [String: Any] { try h.app("api")["updates"] as? [String: Any] ?? [:] }
            try h.waitUntil("the first update check") { try updates()["state"] as? String == "current" }
            func commit(tagged tag: String) throws -> String? {
                try h.commits().first { (try? git(["log", "-1", "--format=%B", $0], in: h.repo))?.contains("Rewind-Tag: \(tag)") == true }
            }

            // 1.1.0 crashes at once: proposed by the notification, deployed, rolled back automatically.
            let two = try registry.publish("team/api", tag: "1.1.0", files: ["bin/api": ("#!/bin/sh\necho crashing >&2\nexit 3\n", true)])
            try h.waitUntil("an update commit for 1.1.0") { try commit(tagged: "1.1.0") != nil }
            let metrics = try Loopback.get(port: port, path: "/metrics", timeoutMilliseconds: 5_000)
            #expect(metrics.body.contains(#"rewind_registry_hooks_total{result="checking"}"#), "the notification woke the watch: \(metrics.body.prefix(300))")
            let update = try #require(try commit(tagged: "1.1.0"))
            let message = try git(["log", "-1", "--format=%B", update], in: h.repo)
            #expect(message.contains("Rewind-Action: update") && message.contains("Rewind-New-Digest: \(two)") && message.contains("Rewind-Old-Digest: \(one)"), "\(message)")
            try h.waitUntil("the automatic rollback of 1.1.0", timeout: 60) {
                try h.commits().contains { (try? git(["log", "-1", "--format=%B", $0], in: h.repo))?.contains("Rewind-Action: rollback") == true }
            }
            try h.waitHealthy("api", "1.0.0")

            // The same tag pushed again: the notification is checked, and nothing is proposed.
            let commits = try h.commits().count
            let before = try updates()["checkedAt"] as? String ?? ""
            try registry.push("team/api", tag: "1.1.0", from: "1.1.0")
            try h.waitUntil("a check after the re-push") { try (updates()["checkedAt"] as? String ?? "") > before && updates()["state"] as? String == "blocked" }
            let blocked = try updates()["message"] as? String ?? ""
            #expect(blocked.contains("rolled back by") && blocked.contains("rewind allow api 1.1.0"), "\(blocked)")
            let shown = try rewind(["status", "api", "--repo", h.repo, "--state-dir", h.stateDir])
            #expect(shown.stdout.contains("updates:     blocked: not proposed: 1.1.0"), "\(shown.stdout)")
            let page = try Loopback.get(port: port, path: "/apps/api", timeoutMilliseconds: 5_000).body
            #expect(page.contains("id=\"app-updates\"") && page.contains("blocked: not proposed: 1.1.0"), "the web UI shows why")
            #expect(try h.commits().count == commits, "no commit for the rolled-back digest")

            // A newer tag: proposed and deployed.
            _ = try registry.publish("team/api", tag: "1.2.0", files: OCIArtifactTests.files("1.2.0"))
            try h.waitUntil("an update commit for 1.2.0") { try commit(tagged: "1.2.0") != nil }
            try h.waitHealthy("api", "1.2.0")
            try h.waitUntil("two update-proposed events") { ((try? String(contentsOfFile: received, encoding: .utf8)) ?? "").split(separator: "\n").count >= 2 }
            let events = ((try? String(contentsOfFile: received, encoding: .utf8)) ?? "").split(separator: "\n")
            #expect(events.count == 2 && events.allSatisfy { $0.contains("\"event\":\"update-proposed\",\"app\":\"api\",\"trigger\":\"registry\"") }, "\(events)")
            let (first, second) = (try commit(tagged: "1.1.0") ?? "-", try commit(tagged: "1.2.0") ?? "-")
            #expect(events.first?.contains(first) == true && events.last?.contains(second) == true,
                    "1.1.0 and 1.2.0, each once; the blocked re-push proposed nothing: \(events)")
        }
    }

    /// A check that fails (here the registry is down when the notification
    /// arrives; during a push the registry may also list a tag before it
    /// serves its manifest) is tried again after 1 s, 2 s..., not a whole
    /// `interval` (1h) later: the pushed tag is still proposed.
    @Test func aCheckThatFailsIsTriedAgainSoon() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        let one = try registry.publish("team/api", tag: "1.0.0", files: OCIArtifactTests.files("1.0.0"))
        try withReconciler(apps: [HarnessApp("api", appYAML: Self.yaml("1.0.0", "\(registry.host)/team/api:1.0.0@\(one)"))],
                           policy: "  window: 30m\n  cooldown: 0s\n  soak: 0s\n") { h in
            let token = "registry-hook-\(UUID().uuidString)"
            try writeFile(h.root + "/hook-token", token + "\n")
            let address = try h.startServe(["--plain-http-registry", registry.host, "--hook-token-file", h.root + "/hook-token"])
            let port = Int(address.split(separator: ":").last ?? "") ?? 0
            try h.waitHealthy("api", "1.0.0")
            func updates() throws -> [String: Any] { try h.app("api")["updates"] as? [String: Any] ?? [:] }
            try h.waitUntil("the first update check") { try updates()["state"] as? String == "current" }
            let two = try registry.publish("team/api", tag: "1.1.0", files: OCIArtifactTests.files("1.1.0"))
            registry.stop()
            let envelope = #"{"events": [{"action": "push", "target": {"repository": "team/api", "tag": "1.1.0", "mediaType": "application/vnd.oci.image.manifest.v1+json"}}]}"#
            let sent = try Loopback.request("POST", host: "127.0.0.1", port: port, path: "/hooks/registry", body: Array(envelope.utf8),
                                            contentType: "application/vnd.docker.distribution.events.v1+json",
                                            headers: ["Authorization": "Bearer \(token)"], timeoutMilliseconds: 5_000)
            #expect((200..<300).contains(sent.status), "\(sent.status) \(sent.body)")
            try h.waitUntil("the check fails while the registry is down") { try updates()["state"] as? String == "failed" }
            try registry.start()
            try h.waitUntil("the update commit for 1.1.0, well before the 1h interval", timeout: 30) {
                try h.commits().contains { (try? git(["log", "-1", "--format=%B", $0], in: h.repo))?.contains("Rewind-New-Digest: \(two)") == true }
            }
        }
    }
}

/// A protected followed branch (`--proposal-prefix`): the update commit is
/// pushed to a proposal branch of its own, and the followed branch stays.
@Suite(.serialized) struct UpdateProposalBranchTests {
    @Test func anUpdateForAProtectedBranchIsProposedOnABranchOfItsOwn() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        let one = try registry.publish("team/api", tag: "1.0.0", files: OCIArtifactTests.files("1.0.0"))
        let yaml = OCIArtifactTests.appYAML("1.0.0", "\(registry.host)/team/api:1.0.0@\(one)") + "updates:\n  tags: {semver: \"^1.0.0\"}\n  interval: 1s\n"
        try withReconciler(apps: [HarnessApp("api", appYAML: yaml)], policy: "  window: 30m\n  cooldown: 0s\n  soak: 0s\n") { h in
            let (daemon, remote) = try h.serveThroughGitDaemon()
            defer { daemon.stop() }
            _ = try h.startServe(["--plain-http-registry", registry.host, "--proposal-prefix", "rewind/update-"])
            try h.waitHealthy("api", "1.0.0")
            let main = try git(["rev-parse", "main"], in: remote)
            let two = try registry.publish("team/api", tag: "1.1.0", files: OCIArtifactTests.files("1.1.0"))
            var branch = ""
            try h.waitUntil("a proposal branch on the remote") {
                branch = try git(["for-each-ref", "--format=%(refname:short)", "refs/heads/rewind/"], in: remote)
                return !branch.isEmpty
            }
            #expect(branch.hasPrefix("rewind/update-api-"), "\(branch)")
            let message = try git(["log", "-1", "--format=%B", branch], in: remote)
            #expect(message.contains("Rewind-Action: update") && message.contains("Rewind-New-Digest: \(two)"), "\(message)")
            #expect(try git(["rev-parse", "main"], in: remote) == main, "the protected branch does not move")
            try h.waitUntil("status says it is proposed") {
                let updates = try h.app("api")["updates"] as? [String: Any] ?? [:]
                return updates["state"] as? String == "proposed" && (updates["message"] as? String ?? "").contains("rewind/update-api-")
            }
        }
    }
}
