import Foundation
import Testing
import TestSupport

/// The web UI in a real browser (headless Chromium through Selenium,
/// scripts/check-web-ui.py) against a real `rewind serve` supervising
/// demo services; the git CLI checks what the UI wrote.
@Suite struct WebUITests {
    static let token = "alice-\(UUID().uuidString)"
    static let apiToken = "api-\(UUID().uuidString)"
    static let viewerToken = "vera-\(UUID().uuidString)"

    @Test func anEngineerOnCallSignsInWatchesARollbackAndActsFromTheBrowser() throws {
        let apps = [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0")), HarnessApp("web", appYAML: demoServiceYAML(version: "3.0.0")),
                    HarnessApp("worker", appYAML: demoServiceYAML(version: "2.0.0"))]
        try withReconciler(apps: apps) { h in
            let tokens = h.root + "/tokens"
            try writeFile(tokens, "# who may act\nalice: \(Self.token) operator\nvera: \(Self.viewerToken) viewer\n")
            let apiTokenFile = h.root + "/api-token"
            try writeFile(apiTokenFile, Self.apiToken + "\n")
            let address = try h.startServe(["--ui-tokens-file", tokens, "--api-token-file", apiTokenFile])
            for (app, version) in [("api", "1.0.0"), ("web", "3.0.0"), ("worker", "2.0.0")] { try h.waitHealthy(app, version) }
            // web has a newer release to roll back from the UI.
            try h.write("apps/web/app.yaml", demoServiceYAML(version: "3.1.0"))
            try h.commit("web 3.1.0")
            try h.waitHealthy("web", "3.1.0")
            let bad = h.root + "/bad-api.yaml"
            try writeFile(bad, demoServiceYAML(version: "1.1.0", args: ["--crash-after", "300ms"]))
            let output = packageRoot + "/.build/test-output/WebUITests"
            try? FileManager.default.removeItem(atPath: output)
            let check = try run("/usr/bin/env", ["python3", packageRoot + "/scripts/check-web-ui.py", "http://\(address)", Self.token, h.repo, bad, output, Self.viewerToken])
            try #require(check.status == 0, "\(check.stderr)\n\(check.stdout.suffix(3_000))")
            let result = try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any] ?? [:]
            let commits = result["commits"] as? [String: String] ?? [:]

            // The automatic rollback the browser watched is a commit of the reconciler.
            let auto = try git(["log", "-1", "--format=%B", commits["autoRollback"] ?? "HEAD"], in: h.repo)
            #expect(auto.contains("Rewind-Trigger: analysis"), "\(auto)")
            // The UI's rollback: the same commit as the CLI's, with trigger ui and the signed-in name.
            let ui = try git(["log", "-1", "--format=%B", commits["uiRollback"] ?? "HEAD"], in: h.repo)
            #expect(ui.contains("Rewind-Trigger: ui"), "\(ui)")
            #expect(ui.contains("Rewind-Actor: alice"), "\(ui)")
            #expect(ui.contains("Rewind-Reason: web 3.1.0 looks wrong (from the UI)"), "\(ui)")
            #expect(try git(["show", "\(commits["uiRollback"] ?? "HEAD"):apps/web/app.yaml"], in: h.repo).contains("3.0.0"))
            for (key, action) in [("pin", "pin"), ("unpin", "unpin")] {
                let message = try git(["log", "-1", "--format=%B", commits[key] ?? "HEAD"], in: h.repo)
                #expect(message.contains("Rewind-Action: \(action)") && message.contains("Rewind-Trigger: ui") && message.contains("Rewind-Actor: alice"), "\(message)")
            }
            #expect(try git(["rev-list", "--count", "\(commits["uiRollback"] ?? "HEAD")..HEAD"], in: h.repo) == "2", "pin and unpin: one commit each")
            try h.waitHealthy("web", "3.0.0")

            // What the browser saw.
            let seen = result["seenHealth"] as? [String] ?? []
            #expect(seen.last == "healthy" && seen.count >= 2, "\(seen)")
            let previewDiff = result["previewDiff"] as? [String] ?? []
            #expect(previewDiff.contains { $0.contains("3.0.0") } && previewDiff.contains { $0.contains("3.1.0") }, "\(previewDiff)")
            let badDiff = result["badDiff"] as? [String] ?? []
            #expect(badDiff.contains { $0.contains("--crash-after") }, "\(badDiff)")
            let charts = result["charts"] as? [[String: Any]] ?? []
            #expect(charts.count == 4, "\(charts)")
            for chart in charts where chart["name"] as? String != "recovery-time" {
                #expect(((chart["marks"] as? NSNumber)?.intValue ?? 0) > 0, "\(chart)")
            }
            #expect(((result["auditRollbackLinks"] as? NSNumber)?.intValue ?? 0) >= 2)
            let shots = result["screenshots"] as? [String] ?? []
            for name in ["sign-in", "overview", "overview-after-rollback", "release-rollback", "app-web", "rollback-preview", "release-ui-rollback", "app-worker-pinned", "audit", "overview-390"] {
                #expect(shots.contains(output + "/\(name).png"), "screenshot \(name)")
            }
            #expect(((result["pagesChecked"] as? NSNumber)?.intValue ?? 0) >= 12)

            // A viewer sees the pages and no action: no rollback link or
            // button, no form but sign-out, no confirmation of a rollback.
            let viewer = result["viewer"] as? [String: Any] ?? [:]
            #expect((viewer["who"] as? String)?.contains("vera (viewer)") == true, "\(viewer)")
            for path in ["/", "/apps/api", "/apps/web/rollback"] {
                let page = viewer[path] as? [String: Any] ?? [:]
                #expect((page["rollbackLinks"] as? NSNumber)?.intValue == 0, "\(path): \(page)")
                #expect((page["confirm"] as? NSNumber)?.intValue == 0, "\(path): \(page)")
                #expect((page["forms"] as? [String])?.allSatisfy { $0.hasSuffix("/logout") } == true, "\(path): \(page)")
            }
            #expect(shots.contains(output + "/viewer-app.png"))

            // Tokens never reach the log.
            let log = (try? String(contentsOfFile: h.logFile, encoding: .utf8)) ?? ""
            #expect(log.contains("alice (operator) signed in") && log.contains("vera (viewer) signed in"))
            #expect(!log.contains(Self.token) && !log.contains(Self.apiToken) && !log.contains(Self.viewerToken))
        }
    }
}
