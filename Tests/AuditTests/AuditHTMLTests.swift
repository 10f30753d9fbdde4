import Foundation
import Testing
import TestSupport

/// The HTML report as a reader opens it: headless Chromium, offline.
@Suite struct AuditHTMLTests {
    @Test func theHTMLReportOpensInABrowserWithEveryChartDrawn() throws {
        try withTemporaryDirectory { dir in
            let repo = dir + "/repo"
            _ = try AuditOracleTests.build(repo)
            let report = dir + "/audit.html"
            let audit = try rewind(["audit", "--repo", repo, "--since", AuditOracleTests.iso(AuditOracleTests.t0),
                                    "--until", AuditOracleTests.iso(AuditOracleTests.t0 + 42 * 86_400), "--format", "html", "--output", report])
            #expect(audit.status == 0, "\(audit.stderr)")
            #expect(audit.stdout.isEmpty, "the report goes to the file")
            let html = try String(contentsOfFile: report, encoding: .utf8)
            // Self-contained: nothing to fetch.
            #expect(!html.contains("<script") && !html.contains("<link") && !html.contains("src=") && !html.contains("@import"))
            // The test's output directory keeps the screenshot after the run.
            let output = packageRoot + "/.build/test-output/AuditHTMLTests"
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            let screenshot = output + "/audit-report.png"
            try? FileManager.default.removeItem(atPath: screenshot)
            let check = try run("/usr/bin/env", ["python3", packageRoot + "/scripts/check-html-report.py", report, screenshot])
            #expect(check.status == 0, "\(check.stderr)\n\(check.stdout)")
            let result = try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any]
            let charts = result?["charts"] as? [[String: Any]] ?? []
            #expect(charts.map { $0["name"] as? String ?? "" } == ["deploys-per-week", "change-fail-rate", "recovery-time", "per-app"])
            for chart in charts { #expect(((chart["marks"] as? NSNumber)?.intValue ?? 0) > 0, "\(chart)") }
            #expect((result?["problems"] as? [Any])?.isEmpty == true)
            #expect((result?["title"] as? String)?.hasPrefix("Rewind audit") == true)
            let size = (try? FileManager.default.attributesOfItem(atPath: screenshot)[.size] as? Int) ?? 0
            #expect(size > 10_000, "a screenshot of the page is saved at \(screenshot)")
        }
    }
}
