import Foundation
import Testing
import TestSupport

/// The audit at its edges: hostile text, an empty range, bad input, and one incident's story.
extension AuditOracleTests {
    /// Text from commits and notes (reasons, authors, labels, versions) is
    /// shown, never run: escaped in HTML and markdown, fenced in diffs.
    @Test func hostileTextIsEscapedInEveryFormat() throws {
        try withTemporaryDirectory { dir in
            _ = try Self.build(dir)
            let hostile = "<script>alert(1)</script> | ``` <img src=x onerror=alert(2)>"
            try writeFile(dir + "/apps/api/app.yaml", Self.appYAML("api", 1) + "# ```\n# <script>x</script>\n")
            try git(["add", "-A"], in: dir)
            let bad = try git(["rev-parse", "HEAD"], in: dir)
            let env = TestEnvironment.git.merging(["GIT_AUTHOR_NAME": "<b onmouseover=alert(3)>Mallory</b>", "GIT_AUTHOR_DATE": "@\(Self.t0 + 40 * 86_400) +0000",
                                                   "GIT_COMMITTER_DATE": "@\(Self.t0 + 40 * 86_400) +0000"]) { $1 }
            let message = "rewind: rollback api\n\nRewind-Action: rollback\nRewind-Target: \(bad)\nRewind-App: api\nRewind-Reason: \(hostile)\nRewind-Trigger: manual\n"
            let commit = try run("/usr/bin/git", ["commit", "-q", "-F", "-"], in: dir, environment: env, stdin: message)
            #expect(commit.status == 0, "\(commit.stderr)")
            let range = ["--since", Self.iso(Self.t0), "--until", Self.iso(Self.t0 + 42 * 86_400)]
            let html = try rewind(["audit", "--repo", dir, "--format", "html"] + range).stdout
            #expect(!html.contains("<script") && !html.contains("<img") && !html.contains("<b onmouseover"))
            #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            let markdown = try rewind(["audit", "--repo", dir, "--format", "markdown"] + range).stdout
            #expect(!markdown.contains("<script") && !markdown.contains("<img") && !markdown.contains("<b onmouseover"))
            #expect(markdown.contains("\\| ``` &lt;img"))
            let incident = try rewind(["incident", "HEAD", "--repo", dir]).stdout
            // Outside code fences (where markdown shows text as it is), no raw HTML.
            var fence: Substring?
            var prose: [Substring] = []
            for line in incident.split(separator: "\n") {
                if let open = fence {
                    if line == open { fence = nil }
                } else if line.hasPrefix("```") {
                    fence = line.prefix { $0 == "`" }
                } else {
                    prose.append(line)
                }
            }
            #expect(fence == nil, "every fence is closed")
            #expect(!prose.joined().contains("<img") && !prose.joined().contains("<b onmouseover") && !prose.joined().contains("<script"), "\(incident)")
            // The diff holds a line of three backticks: its fence is longer.
            #expect(incident.contains("````diff"), "\(incident)")
        }
    }

    @Test func anEmptyRangeOrAHistoryWithoutRollbacksStillReports() throws {
        try withTemporaryDirectory { dir in
            _ = try Self.build(dir)
            for format in ["json", "markdown", "html", "table"] {
                let result = try rewind(["audit", "--repo", dir, "--since", "2001-01-01", "--until", "2001-02-01", "--format", format])
                #expect(result.status == 0, "\(format): \(result.stderr)")
                #expect(!result.stdout.isEmpty)
            }
            let empty = try rewind(["audit", "--repo", dir, "--since", "2001-01-01", "--until", "2001-02-01", "--format", "json"])
            let json = try JSONSerialization.jsonObject(with: Data(empty.stdout.utf8)) as? [String: Any]
            #expect((json?["rollbacks"] as? [Any])?.isEmpty == true)
            #expect((((json?["dora"] as? [String: Any])?["overall"] as? [String: Any])?["changeFailRate"] as? [String: Any])?["rate"] is NSNull)
            let markdown = try rewind(["audit", "--repo", dir, "--since", "2001-01-01", "--until", "2001-02-01", "--format", "markdown"])
            #expect(markdown.stdout.contains("No rollbacks in this range."))
        }
    }

    @Test func badInputIsAUsageErrorThatSaysWhatToDo() throws {
        try withTemporaryDirectory { dir in
            let steps = try Self.build(dir)
            let date = try rewind(["audit", "--repo", dir, "--since", "last tuesday"])
            #expect(date.status == 64)
            #expect(date.stderr.contains("--since 'last tuesday' is not a date"))
            #expect(date.stderr.contains("hint:"))
            let impossible = try rewind(["audit", "--repo", dir, "--until", "2026-02-30"])
            #expect(impossible.status == 64)
            let app = try rewind(["audit", "apj", "--repo", dir])
            #expect(app.status == 64)
            #expect(app.stderr.contains("unknown app 'apj'") && app.stderr.contains("did you mean 'api'"))
            let backwards = try rewind(["audit", "--repo", dir, "--since", "2026-10-01", "--until", "2026-09-01"])
            #expect(backwards.status == 64)
            let deploy = steps.first { $0.kind == .deploy && $0.failed == nil && $0.time > Self.t0 }?.sha ?? ""
            // No incident for that commit, as `GET /api/v1/incidents/{commit}` answers 404.
            let notRollback = try rewind(["incident", deploy, "--repo", dir])
            #expect(notRollback.status == 4)
            #expect(notRollback.stderr.contains("neither a rollback commit nor a release that a rollback undid"))
            let unknown = try rewind(["incident", "no-such-rev", "--repo", dir])
            #expect(unknown.status == 4)
            let json = try rewind(["incident", "no-such-rev", "--repo", dir, "--format", "json"])
            #expect(json.stdout.contains("\"exitCode\": 4"))
            let output = try rewind(["audit", "--repo", dir, "--output", "\(dir)/no/such/dir/report.html", "--format", "html"])
            #expect(output.status == 64)
            #expect(!FileManager.default.fileExists(atPath: "\(dir)/no/such/dir/report.html"))
        }
    }

    @Test func anIncidentReportTellsTheStoryOfOneRollback() throws {
        try withTemporaryDirectory { dir in
            let steps = try Self.build(dir)
            guard let index = steps.firstIndex(where: { $0.trigger == "alert" }) else { throw TestFailure("no alert rollback in the plan") }
            let rollback = steps[index]
            let bad = steps[rollback.undoes ?? 0]
            for revision in [rollback.sha, bad.sha] {
                let result = try rewind(["incident", revision, "--repo", dir])
                #expect(result.status == 0, "\(result.stderr)")
                let text = result.stdout
                #expect(text.contains("# Incident: web rolled back by `\(rollback.sha.prefix(7))`"))
                for section in ["## Timeline (UTC)", "## Durations", "## What changed", "## Trailers", "## Guards checked", "## Root cause", "## Impact", "## Action items"] {
                    #expect(text.contains(section), "\(section)")
                }
                #expect(text.contains("-version: 1.0.\(bad.version)") && text.contains("+version: 1.0.\(bad.version - 1)"))
                #expect(text.contains("Rewind-Alert: HighErrorRate"))
                #expect(text.contains("alert HighErrorRate started firing"))
                #expect(text.contains("labels: alertname=HighErrorRate,app=web"))
            }
            let json = try rewind(["incident", rollback.sha, "--repo", dir, "--format", "json"])
            let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
            let events = (parsed?["timeline"] as? [[String: Any]] ?? []).map { $0["event"] as? String ?? "" }
            #expect(events == ["committed", "applied", "healthy", "alert", "failed", "rollback", "recovered", "verified"])
            let times = (parsed?["timeline"] as? [[String: Any]] ?? []).compactMap { $0["time"] as? String }
            #expect(times == times.sorted())
            let durations = parsed?["durations"] as? [String: Any]
            #expect((durations?["timeToDetectMilliseconds"] as? NSNumber)?.int64Value == (bad.startsAt! - bad.applied!) * 1000)
            #expect((durations?["totalMilliseconds"] as? NSNumber)?.int64Value == (900 + rollback.healthy! - bad.applied!) * 1000)
        }
    }
}
