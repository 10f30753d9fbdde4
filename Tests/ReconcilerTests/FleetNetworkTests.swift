import Foundation
import SystemSupport
import Testing
import TestSupport

/// A fleet on real separate network hosts: Linux network namespaces joined
/// by veth pairs to a git host's namespace running a git daemon; each host
/// runs its own `rewind serve --host NAME` with process apps, and hears of
/// the others only through the git host. Needs root (CI runs as root);
/// without it these tests fail and say why.
@Suite(.serialized) struct FleetNetworkTests {
    static func api(_ version: String, _ args: [String] = [], healthTimeout: String = "10s") -> HarnessApp {
        HarnessApp("api", appYAML: demoServiceYAML(version: version, args: args, healthTimeout: healthTimeout))
    }

    static let policy = "policy:\n  window: 30m\n  cooldown: 0s\n  maxPerHour: 3\n  soak: 1m\n  crashLoopRestarts: 3\n"

    /// Placement, then a release stage by stage: the canary host first, the
    /// web hosts one at a time after its soak. A release that crash-loops on
    /// the canary is rolled back by one commit, written by the canary, and
    /// no other host ever starts it.
    @Test func aReleaseGoesStageByStageAndOneThatCrashesOnTheCanaryIsRolledBackBeforeAnyOtherHostStartsIt() throws {
        let yaml = """
            apiVersion: rewind/v1
            branch: main
            hosts:
              - name: canary-1
                labels: {tier: canary}
              - name: web-1
                labels: {role: web}
              - name: web-2
                labels: {role: web}
              - name: db-1
                labels: {role: db}
            apps:
              - name: api
                path: apps/api
                placement: {hosts: [canary-1, web-1, web-2]}
                rollout:
                  stages:
                    - {labels: {tier: canary}, soak: 3s}
                    - {labels: {role: web}, maxParallel: 1}
              - name: db
                path: apps/db
                placement: {labels: {role: db}}

            """ + Self.policy
        let lab = try FleetLab(hosts: ["canary-1", "web-1", "web-2", "db-1"],
                               apps: [Self.api("1.0.0"), HarnessApp("db", appYAML: demoServiceYAML(version: "5.0"))], rewindYAML: yaml)
        defer { lab.close() }
        for host in ["canary-1", "web-1", "web-2", "db-1"] { try lab.startAgent(host) }
        // Placement: each host runs exactly its apps.
        try lab.waitUntil("every host runs its apps", timeout: 90) {
            ["canary-1", "web-1", "web-2"].allSatisfy { lab.app($0, "api") == "1.0.0 healthy" } && lab.app("db-1", "db") == "5.0 healthy"
        }
        #expect(lab.apps("db-1") == ["db"] && lab.apps("web-1") == ["api"] && lab.apps("canary-1") == ["api"])
        #expect(lab.processes(on: "db-1", matching: "rewind-demo-service").count == 1, "db-1 runs db only")
        #expect(lab.processes(on: "web-2", matching: "rewind-demo-service").count == 1, "web-2 runs api only")

        // A good release: the canary first; web-1 waits through its soak; web-2 after web-1.
        try lab.harness.writeApp(Self.api("1.1.0"))
        try lab.harness.commit("api 1.1.0")
        try lab.push()
        try lab.waitUntil("the canary runs 1.1.0") { lab.app("canary-1", "api") == "1.1.0 healthy" }
        #expect(lab.app("web-1", "api") == "1.0.0 healthy" && lab.app("web-2", "api") == "1.0.0 healthy", "the web hosts wait for the canary's soak")
        try lab.waitUntil("web-1 says what it waits for") { lab.stage("web-1", "api")?.contains("canary-1 (stage 1)") == true }
        try lab.waitUntil("every api host runs 1.1.0") { ["canary-1", "web-1", "web-2"].allSatisfy { lab.app($0, "api") == "1.1.0 healthy" } }
        try lab.waitUntil("every host published 1.1.0") {
            ["canary-1", "web-1", "web-2"].allSatisfy { lab.publishedApp($0, "api")?["version"] as? String == "1.1.0" }
        }
        let since = ["canary-1", "web-1", "web-2"].map { (lab.publishedApp($0, "api")?["healthySince"] as? Int64) ?? 0 }
        #expect(since[1] >= since[0] + 3_000, "web-1 started after the canary's 3 s soak: \(since)")
        #expect(since[2] >= since[1], "web-2 after web-1 (maxParallel 1): \(since)")
        #expect(lab.stage("web-2", "api") == nil, "nothing holds web-2 once it runs the release")

        // A release that crash-loops on the canary.
        try lab.harness.writeApp(Self.api("1.2.0", ["--crash-after", "300ms"]))
        let bad = try lab.harness.commit("api 1.2.0")
        try lab.push()
        try lab.waitUntil("a rollback commit on the git host", timeout: 90) { try !lab.rollbackCommits().isEmpty }
        try lab.waitUntil("every api host runs 1.1.0 again", timeout: 60) {
            ["canary-1", "web-1", "web-2"].allSatisfy { lab.app($0, "api") == "1.1.0 healthy" }
        }
        let rollbacks = try lab.rollbackCommits()
        #expect(rollbacks.count == 1, "one rollback commit: \(rollbacks)")
        let message = try git(["log", "-1", "--format=%B", rollbacks[0]], in: lab.bare)
        #expect(message.contains("Rewind-Actor: rewind@canary-1") && message.contains("Rewind-Reason: api release \(bad.prefix(7)) failed: crash-looping"), "\(message)")
        for host in ["web-1", "web-2"] {
            #expect(!lab.log(host).contains("applying api 1.2.0"), "\(host) never started the bad release")
        }
        // The fleet view from a web host's mirror: every host fresh.
        let view = try rewind(["status", "--fleet", "--repo", lab.mirror("web-1"), "--format", "json"])
        let hosts = ((try JSONSerialization.jsonObject(with: Data(view.stdout.utf8)) as? [String: Any])?["hosts"] as? [[String: Any]]) ?? []
        #expect(hosts.compactMap { $0["host"] as? String } == ["canary-1", "web-1", "web-2", "db-1"], "\(view.stdout)\(view.stderr)")
        #expect(hosts.allSatisfy { $0["stale"] as? Bool == false }, "\(view.stdout)")
        // The same in the web UI and the API of a host's serve: hosts × apps, and the bad release's reach.
        let page = lab.get("web-2", "/fleet")
        #expect(page.contains("<tr id=\"host-canary-1\" data-host=\"canary-1\" data-state=\"fresh\">") && page.contains("data-app=\"db\" data-version=\"5.0\""), "\(page)")
        #expect(page.contains("data-app=\"api\" data-version=\"1.1.0\""), "\(page)")
        let api = lab.get("web-2", "/api/v1/fleet")
        #expect(api.contains("\"host\" : \"db-1\"") || api.contains("\"host\":\"db-1\""), "\(api)")
        try lab.waitUntil("the bad release reached no host but the canary, which left it") {
            let release = lab.get("web-2", "/releases/\(bad)")
            return release.contains("api: 0 of 3 hosts run it healthy") && release.contains("<li data-host=\"web-1\" data-state=\"other\">")
        }
        let good = try git(["log", "--format=%H", "-1", "--grep=api 1.1.0", "main"], in: lab.bare)
        let reach = lab.get("web-2", "/releases/\(good)")
        #expect(reach.contains("api: 3 of 3 hosts run it healthy"), "\(reach)")
    }

    /// Three hosts see the same failure at once: each would roll back, the
    /// git host's compare-and-swap lets one commit through, and the others
    /// find it written. Then the git host goes away: every host keeps
    /// serving what it runs, and follows again when it is back.
    @Test func aReleaseThatFailsOnThreeHostsAtOnceIsRolledBackByOneCommitAndHostsServeWithoutTheGitHost() throws {
        let yaml = """
            apiVersion: rewind/v1
            branch: main
            hosts:
              - name: web-1
              - name: web-2
              - name: web-3
            apps:
              - name: api
                path: apps/api
                placement: {hosts: [web-1, web-2, web-3]}

            """ + Self.policy
        let hosts = ["web-1", "web-2", "web-3"]
        let lab = try FleetLab(hosts: hosts, apps: [Self.api("1.0.0")], rewindYAML: yaml)
        defer { lab.close() }
        for host in hosts { try lab.startAgent(host) }
        try lab.waitUntil("every host runs 1.0.0", timeout: 90) { hosts.allSatisfy { lab.app($0, "api") == "1.0.0 healthy" } }
        try lab.harness.writeApp(Self.api("1.1.0", ["--health", "fail"], healthTimeout: "2s"))
        try lab.harness.commit("api 1.1.0")
        try lab.push()
        try lab.waitUntil("a rollback commit on the git host", timeout: 60) { try !lab.rollbackCommits().isEmpty }
        try lab.waitUntil("every host runs 1.0.0 again", timeout: 60) { hosts.allSatisfy { lab.app($0, "api") == "1.0.0 healthy" } }
        try lab.waitUntil("every host's status names the rollback") {
            let tip = try git(["rev-parse", "main"], in: lab.bare)
            return hosts.allSatisfy { lab.published($0)?["lastApplied"] as? String == tip }
        }
        #expect(try lab.rollbackCommits().count == 1, "one commit for three hosts")
        #expect(hosts.allSatisfy { lab.log($0).contains("api release") && lab.log($0).contains("failed") }, "every host saw the release fail")

        // The git host goes away: every host keeps its app running and healthy.
        let pids = hosts.map { lab.processes(on: $0, matching: "rewind-demo-service") }
        lab.stopGitHost()
        try lab.waitUntil("every host notices the git host is gone", timeout: 30) {
            hosts.allSatisfy { (lab.status($0)["remote"] as? [String: Any])?["error"] is String }
        }
        for (index, host) in hosts.enumerated() {
            #expect(lab.app(host, "api") == "1.0.0 healthy", "\(host) keeps serving")
            #expect(lab.processes(on: host, matching: "rewind-demo-service") == pids[index], "\(host)'s app was not restarted")
        }
        // Back: a new release reaches every host.
        try lab.startGitHost()
        try lab.pull()
        try lab.harness.writeApp(Self.api("1.2.0"))
        try lab.harness.commit("api 1.2.0")
        try lab.push()
        try lab.waitUntil("every host runs 1.2.0", timeout: 90) { hosts.allSatisfy { lab.app($0, "api") == "1.2.0 healthy" } }
    }

    /// A host cut off (its link down) mid-rollout: the fleet view marks it
    /// stale; it applies the release from what it fetched before the cut,
    /// and once back it pushes what it queued (its notes), once. Then a
    /// host's Rewind killed with -9 mid-rollout converges after its restart
    /// with no duplicate commit and one process for its app.
    @Test func aHostCutOffMidRolloutIsStaleThenPushesWhatItQueuedOnceAndAKilledHostConverges() throws {
        let yaml = """
            apiVersion: rewind/v1
            branch: main
            hosts:
              - name: canary-1
              - name: web-1
              - name: web-2
            apps:
              - name: api
                path: apps/api
                placement: {hosts: [canary-1, web-1, web-2]}
                rollout:
                  stages:
                    - {hosts: [canary-1], soak: 4s}
                    - {hosts: [web-1, web-2]}

            """ + Self.policy
        let hosts = ["canary-1", "web-1", "web-2"]
        let lab = try FleetLab(hosts: hosts, apps: [Self.api("1.0.0")], rewindYAML: yaml)
        defer { lab.close() }
        for host in hosts { try lab.startAgent(host) }
        try lab.waitUntil("every host runs 1.0.0", timeout: 90) { hosts.allSatisfy { lab.app($0, "api") == "1.0.0 healthy" } }

        try lab.harness.writeApp(Self.api("1.1.0"))
        let release = try lab.harness.commit("api 1.1.0")
        try lab.push()
        // web-2 has the canary's healthy status in its mirror (it soaks): then web-2 is cut off.
        try lab.waitUntil("web-2 knows the canary runs 1.1.0") {
            let text = (try? git(["show", "refs/rewind/remote/hosts/canary-1:status.json"], in: lab.mirror("web-2"))) ?? ""
            return text.contains("\"1.1.0\"") && text.contains("\"healthy\"") && lab.stage("web-2", "api") != nil
        }
        try lab.net.cut("web-2")
        try lab.waitUntil("web-2 applies 1.1.0 cut off, after the soak it knows of") { lab.app("web-2", "api") == "1.1.0 healthy" }
        try lab.waitUntil("web-1 runs 1.1.0") { lab.app("web-1", "api") == "1.1.0 healthy" }
        try lab.waitUntil("the fleet view marks web-2 stale", timeout: 30) {
            let view = try rewind(["status", "--fleet", "--repo", lab.mirror("web-1"), "--format", "json"])
            let listed = ((try JSONSerialization.jsonObject(with: Data(view.stdout.utf8)) as? [String: Any])?["hosts"] as? [[String: Any]]) ?? []
            let web2 = listed.first { $0["host"] as? String == "web-2" }
            // Stale, with when its mirror last reached the git host.
            return web2?["stale"] as? Bool == true && web2?["lastSync"] is String
                && listed.first { $0["host"] as? String == "web-1" }?["stale"] as? Bool == false
        }
        let table = try rewind(["status", "--fleet", "--repo", lab.mirror("web-1")]).stdout
        #expect(table.contains("STALE"), "\(table)")
        #expect(lab.publishedApp("web-2", "api")?["version"] as? String == "1.0.0", "the git host has not heard of web-2's release")
        try lab.net.reconnect("web-2")
        try lab.waitUntil("web-2's status reaches the git host") { lab.publishedApp("web-2", "api")?["version"] as? String == "1.1.0" }
        try lab.waitUntil("web-2's notes reach the git host") {
            ((try? git(["notes", "--ref=rewind", "show", release], in: lab.bare)) ?? "").contains("host=web-2")
        }
        let notes = try git(["notes", "--ref=rewind", "show", release], in: lab.bare)
        let applied = notes.split(separator: "\n").filter { $0.hasPrefix("applied app=api") && $0.hasSuffix("host=web-2") }
        #expect(applied.count == 1, "pushed once: \(notes)")

        // kill -9 of web-1's Rewind while the canary soaks the next release; restarted, it converges.
        let commits = try git(["rev-list", "--count", "main"], in: lab.bare)
        try lab.harness.writeApp(Self.api("1.2.0"))
        try lab.harness.commit("api 1.2.0")
        try lab.push()
        try lab.waitUntil("web-1 waits for the canary") { lab.stage("web-1", "api") != nil }
        lab.kill9("web-1")
        try lab.startAgent("web-1")
        try lab.waitUntil("every host runs 1.2.0", timeout: 90) { hosts.allSatisfy { lab.app($0, "api") == "1.2.0 healthy" } }
        #expect(try git(["rev-list", "--count", "main"], in: lab.bare) == String((Int(commits) ?? -1) + 1), "no commit but the release")
        #expect(lab.processes(on: "web-1", matching: "rewind-demo-service").count == 1, "one api process on web-1")
    }

    /// Hosts that follow the git host over SSH (sshd in its namespace, host
    /// keys checked against known_hosts). A host of the first stage falls
    /// silent (cut off) before a release: the next stage waits for it for
    /// hostTimeout, then halts and says so, naming it; once it is back and
    /// runs the release, the next stage goes on.
    @Test func overSSHAStageWaitsForASilentHostThenHaltsUntilItIsBack() throws {
        let yaml = """
            apiVersion: rewind/v1
            branch: main
            hosts:
              - name: web-1
              - name: web-2
            apps:
              - name: api
                path: apps/api
                placement: {hosts: [web-1, web-2]}
                rollout:
                  stages:
                    - {hosts: [web-1], soak: 1s}
                    - {hosts: [web-2]}
                  hostTimeout: 4s
                  onTimeout: halt

            """ + Self.policy
        let hosts = ["web-1", "web-2"]
        let lab = try FleetLab(hosts: hosts, apps: [Self.api("1.0.0")], rewindYAML: yaml, ssh: true)
        defer { lab.close() }
        for host in hosts { try lab.startAgent(host) }
        try lab.waitUntil("both hosts run 1.0.0 over ssh", timeout: 90) { hosts.allSatisfy { lab.app($0, "api") == "1.0.0 healthy" } }
        try lab.waitUntil("both hosts' status reached the git host over ssh") { hosts.allSatisfy { lab.publishedApp($0, "api")?["version"] as? String == "1.0.0" } }
        #expect(lab.url(for: "web-1").hasPrefix("ssh://"))

        try lab.net.cut("web-1")
        try lab.harness.writeApp(Self.api("1.1.0"))
        try lab.harness.commit("api 1.1.0")
        try lab.push()
        try lab.waitUntil("web-2 waits for web-1") { lab.stage("web-2", "api")?.contains("web-1 (stage 1)") == true }
        try lab.waitUntil("after hostTimeout the stage halts, naming web-1", timeout: 30) {
            let status = lab.status("web-2")["apps"] as? [[String: Any]] ?? []
            let stage = status.first?["stage"] as? [String: Any]
            return stage?["halted"] as? Bool == true && (stage?["reason"] as? String)?.contains("web-1 (stage 1) has not reported since") == true
        }
        #expect(lab.app("web-2", "api") == "1.0.0 healthy", "halted: web-2 keeps the running release")
        let waiting = (lab.status("web-2")["apps"] as? [[String: Any]])?.first?["waitingFor"] as? String ?? ""
        #expect(waiting.hasPrefix("an operator: stage 2 of 2 is halted"), "\(waiting)")

        try lab.net.reconnect("web-1")
        try lab.waitUntil("web-1, back, runs 1.1.0, then web-2", timeout: 60) { hosts.allSatisfy { lab.app($0, "api") == "1.1.0 healthy" } }
        #expect(lab.stage("web-2", "api") == nil)
    }
}
