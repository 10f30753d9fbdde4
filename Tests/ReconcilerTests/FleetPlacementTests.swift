import Foundation
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
}
