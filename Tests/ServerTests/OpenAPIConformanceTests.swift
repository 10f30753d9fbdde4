import Foundation
import Testing
import TestSupport
import SystemSupport

/// `GET /api/v1/openapi.json` and the server agree: Schemathesis (PyPI)
/// generates requests from the document, valid and invalid, and checks
/// every answer against it (status codes, content types, 405 with Allow
/// for undeclared methods, authentication). A fixed seed keeps the run the
/// same each time.
@Suite struct OpenAPIConformanceTests {
    @Test func schemathesisFindsNothing() throws {
        let h = try ReconcilerHarness(apps: [try execApp("api", version: "1.0.0")])
        defer { h.close() }
        let token = "st-\(UUID().uuidString)"
        try writeFile(h.root + "/api-token", token + "\n")
        let address = try h.startServe(["--api-token-file", h.root + "/api-token"])
        try h.waitHealthy("api", "1.0.0")
        let st = try #require(["/usr/local/bin/st", "/root/.pyenv/shims/st", "/usr/bin/st"].first { FileManager.default.isExecutableFile(atPath: $0) }
            ?? which("st"), "schemathesis is not installed (make test installs it)")
        // The audit's range must not end before it starts (400, as Prometheus
        // answers a reversed query_range): a rule between two parameters
        // that OpenAPI cannot state. The event stream never ends by itself:
        // its first event is enough. (No `include-method` here: Schemathesis
        // 4.32 then applies the block to every operation.)
        try writeFile(h.root + "/schemathesis.toml", """
            [[operations]]
            include-path = "/api/v1/audit"
            checks.positive_data_acceptance.expected-statuses = ["2xx", "400"]

            [[operations]]
            include-path = "/api/v1/events"
            max-stream-events = 1
            request-timeout = 10
            """)
        let run = try TestSupport.run(st, ["--no-color", "--config-file", h.root + "/schemathesis.toml", "run", "http://\(address)/api/v1/openapi.json",
                                           "-H", "Authorization: Bearer \(token)", "--seed", "1", "--max-examples", "25"], in: h.root)
        let report = run.stdout + run.stderr
        #expect(run.status == 0, "\(report.replacingOccurrences(of: token, with: "[token]").suffix(6_000))")
    }

    /// The first word of `PATH`'s match, like `command -v`.
    func which(_ name: String) -> String? {
        (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
