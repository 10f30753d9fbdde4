import Foundation
import ReconcilerStatus
import Rollback
import SystemSupport
import Testing
import TestSupport

/// `--host NAME`: a reconciler applies only the apps rewind.yaml places on
/// its host; a host that is not listed applies nothing and says so. Each
/// host here is a `rewind reconcile --once` with a state directory of its
/// own, on one repository (the fleet tests on separate network hosts are issue 26's next step).
@Suite struct FleetPlacementTests {
    @Test func eachHostAppliesExactlyTheAppsPlacedOnIt() throws {
        let apply = "#!/bin/sh\necho \"$REWIND_APP $REWIND_VERSION\" >> \"$HARNESS_DIR/applied-$REWIND_APP\"\n"
        let app = { (name: String) in HarnessApp(name, appYAML: "platform: exec\nversion: \"1.0\"\nexec:\n  apply: ./apply.sh\n", files: ["apply.sh": apply]) }
        let h = try ReconcilerHarness(apps: [app("db"), app("api"), app("edge")])
        defer { h.close() }
        try h.write("rewind.yaml", """
            apiVersion: rewind/v1
            branch: main
            hosts:
              - name: web-1
                labels: {role: web}
              - name: db-1
                labels: {role: db}
            apps:
              - name: db
                path: apps/db
                placement: {labels: {role: db}}
              - name: api
                path: apps/api
                placement: {labels: {role: web}}
              - name: edge
                path: apps/edge
                placement: {hosts: [web-1, db-1]}
                dependsOn: [db]

            """)
        try h.commit("two hosts")
        func applied() -> Set<String> {
            Set(["db", "api", "edge"].filter { FileManager.default.fileExists(atPath: h.root + "/applied-" + $0) })
        }
        func reconcile(_ host: String) throws -> ProcessResult {
            try rewind(["reconcile", "--once", "--repo", h.repo, "--state-dir", h.root + "/state-" + host, "--host", host, "--log-level", "info"],
                       environment: ["HARNESS_DIR": h.root])
        }
        let web = try reconcile("web-1")
        #expect(web.status == 0, "\(web.stderr)")
        #expect(applied() == ["api", "edge"], "web-1 runs api and edge")
        let db = try reconcile("db-1")
        #expect(db.status == 0, "\(db.stderr)")
        #expect(applied() == ["api", "edge", "db"])
        #expect((try? String(contentsOfFile: h.root + "/applied-edge", encoding: .utf8))?.split(separator: "\n").count == 2, "edge on both hosts")

        // Each host's status shows its own apps, and which host it is.
        let status = try rewind(["status", "--repo", h.repo, "--state-dir", h.root + "/state-db-1", "--format", "json"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any], "\(status.stdout)")
        #expect(report["host"] as? String == "db-1")
        #expect(((report["apps"] as? [[String: Any]]) ?? []).compactMap { $0["app"] as? String }.sorted() == ["db", "edge"], "\(status.stdout)")

        let stranger = try reconcile("web-9")
        #expect(stranger.status == 0, "\(stranger.stderr)")
        #expect(stranger.stderr.contains("host 'web-9' is not in rewind.yaml's hosts (web-1, db-1): it applies nothing"), "\(stranger.stderr)")
        #expect((try? String(contentsOfFile: h.root + "/applied-db", encoding: .utf8))?.split(separator: "\n").count == 1, "web-9 applied nothing")
    }

    /// Two hosts follow one remote (a git daemon) through mirrors of their
    /// own: each publishes its status under refs/rewind/hosts/NAME on the
    /// remote, a parentless commit replaced on change, and each fetches the
    /// other's. The git CLI reads the remote as the oracle.
    @Test func eachHostPublishesItsStatusThroughTheGitHost() throws {
        let apply = "#!/bin/sh\necho \"$REWIND_APP\" >> \"$HARNESS_DIR/applied-$REWIND_APP\"\n"
        let app = { (name: String, version: String) in
            HarnessApp(name, appYAML: "platform: exec\nversion: \"\(version)\"\nexec:\n  apply: ./apply.sh\n", files: ["apply.sh": apply])
        }
        let h = try ReconcilerHarness(apps: [app("api", "1.0"), app("db", "1.0")])
        defer { h.close() }
        let fleet = { (apiVersion: String) in """
            apiVersion: rewind/v1
            branch: main
            hosts:
              - name: web-1
              - name: db-1
            apps:
              - name: api
                path: apps/api
                placement: {hosts: [web-1]}
              - name: db
                path: apps/db
                placement: {hosts: [db-1]}

            """ }
        try h.write("rewind.yaml", fleet("1.0"))
        try h.commit("two hosts")
        let (daemon, remote) = try h.serveThroughGitDaemon()
        defer { daemon.stop() }
        h.extraEnvironment = ["HARNESS_DIR": h.root]
        try h.start(["--host", "web-1", "--fetch-interval", "200ms"])
        var environment = ProcessInfo.processInfo.environment
        environment["HARNESS_DIR"] = h.root
        let other = try Spawn.start(SpawnOptions(program: rewindBinary, arguments: ["reconcile", "--repo", daemon.url("deploy.git"), "--mirror", h.root + "/mirror-db",
                                                                                  "--state-dir", h.root + "/state-db", "--host", "db-1", "--fetch-interval", "200ms"],
                                                 environment: environment, outputFile: h.root + "/db-1.log"))
        defer { Spawn.stop(other, graceMilliseconds: 5_000) }
        func published(_ host: String) -> [String: Any]? {
            guard let text = try? git(["show", "refs/rewind/hosts/\(host):status.json"], in: remote) else { return nil }
            return try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        }
        func apps(_ status: [String: Any]?) -> [String: String] {
            Dictionary(uniqueKeysWithValues: ((status?["apps"] as? [[String: Any]]) ?? []).compactMap { app in
                (app["app"] as? String).map { ($0, "\(app["version"] as? String ?? "-") \(app["health"] as? String ?? "-")") }
            })
        }
        try h.waitUntil("both hosts' status on the git host", timeout: 60) {
            apps(published("web-1")) == ["api": "1.0 healthy"] && apps(published("db-1")) == ["db": "1.0 healthy"]
        }
        #expect(published("web-1")?["host"] as? String == "web-1" && published("web-1")?["writtenAt"] is String)
        // Each host has the other's status from the git host.
        try h.waitUntil("web-1's mirror has db-1's status", timeout: 30) {
            (try? git(["show", "refs/rewind/remote/hosts/db-1:status.json"], in: h.mirror))?.contains("\"db-1\"") == true
        }
        // The fleet view from web-1's mirror: both hosts, fresh, with what each runs.
        let view = try rewind(["status", "--fleet", "--repo", h.mirror, "--format", "json"])
        let hosts = ((try JSONSerialization.jsonObject(with: Data(view.stdout.utf8)) as? [String: Any])?["hosts"] as? [[String: Any]]) ?? []
        #expect(hosts.map { $0["host"] as? String ?? "?" } == ["web-1", "db-1"], "\(view.stdout)\(view.stderr)")
        #expect(hosts.allSatisfy { $0["stale"] as? Bool == false }, "\(view.stdout)")
        #expect(apps(hosts.last) == ["db": "1.0 healthy"], "\(view.stdout)")
        let table = try rewind(["status", "--fleet", "--repo", h.mirror]).stdout
        #expect(table.contains("db-1") && table.contains("fresh") && table.contains("db"), "\(table)")
        // A new release changes the status; the ref stays one commit without parents.
        try h.writeApp(app("api", "2.0"))
        try h.commit("api 2.0")
        try git(["push", "-q", remote, "main"], in: h.repo)
        try h.waitUntil("web-1 publishes api 2.0", timeout: 60) { apps(published("web-1")) == ["api": "2.0 healthy"] }
        #expect(try git(["rev-list", "--count", "refs/rewind/hosts/web-1"], in: remote) == "1", "bounded: one commit, no history")
    }

    /// A status counts for the host its ref names, and only when the status
    /// names that host too: a ref cannot speak for another host, and a
    /// status that does not parse is a host that never reported.
    @Test func aStatusCountsOnlyForTheHostItsRefNames() throws {
        let h = try ReconcilerHarness(apps: [HarnessApp("api", appYAML: "platform: exec\nversion: \"1.0\"\nexec:\n  apply: ./apply.sh\n", files: ["apply.sh": "#!/bin/sh\n"])])
        defer { h.close() }
        try h.write("rewind.yaml", "apiVersion: rewind/v1\nbranch: main\nhosts:\n  - name: web-1\n  - name: db-1\n  - name: db-2\napps:\n  - name: api\n    path: apps/api\n    placement: {hosts: [web-1]}\n")
        try h.commit("hosts")
        func publish(_ reference: String, _ json: String) throws {
            let blob = try git(["hash-object", "-w", "--stdin"], in: h.repo, stdin: json)
            let tree = try git(["mktree"], in: h.repo, stdin: "100644 blob \(blob)\tstatus.json\n")
            let commit = try git(["commit-tree", tree, "-m", "status"], in: h.repo)
            try git(["update-ref", reference, commit], in: h.repo)
        }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let status = { (host: String, applied: String, at: Int64) in
            "{\"host\": \"\(host)\", \"lastApplied\": \"\(applied)\", \"apps\": [], \"writtenAtMilliseconds\": \(at)}"
        }
        let genuine = String(repeating: "a", count: 40), forged = String(repeating: "b", count: 40)
        try publish("refs/rewind/remote/hosts/db-1", status("db-1", genuine, now))
        try publish("refs/rewind/hosts/web-1", status("db-1", forged, now + 1_000))   // newer, but speaks for another host
        try publish("refs/rewind/remote/hosts/db-2", "{not json")                      // does not parse
        let report = FleetReport.build(repo: try DeployRepository(path: h.repo, branch: nil), now: now)
        let written = Dictionary(uniqueKeysWithValues: report.hosts.map { ($0.name, $0.writtenAt != nil) })
        #expect(written == ["web-1": false, "db-1": true, "db-2": false], "\(written)")
        #expect(report.hosts.first { $0.name == "db-1" }?.lastApplied == genuine, "db-1's own status, not the one web-1's ref claims")
    }

    /// `--host` names a ref and a file: a name rewind.yaml could not hold is
    /// refused before anything starts, as is a status interval under a second.
    @Test func aBadHostNameOrStatusIntervalIsRefusedUpFront() throws {
        let h = try ReconcilerHarness(apps: [HarnessApp("api", appYAML: "platform: exec\nversion: \"1.0\"\nexec:\n  apply: ./apply.sh\n", files: ["apply.sh": "#!/bin/sh\n"])])
        defer { h.close() }
        for (arguments, message) in [(["--host", "../web-1"], "--host '../web-1' is not a host name"),
                                     (["--host", "Web 1"], "--host 'Web 1' is not a host name"),
                                     (["--host", "web-1", "--status-interval", "10ms"], "--status-interval must be 1s or more")] {
            let result = try rewind(["reconcile", "--once", "--repo", h.repo, "--state-dir", h.root + "/state-bad"] + arguments)
            #expect(result.status != 0 && result.stderr.contains(message), "\(arguments): \(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: h.root + "/state-bad/host"), "nothing was started")
        }
    }
}
