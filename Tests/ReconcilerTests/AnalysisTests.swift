import Foundation
import SystemSupport
import Testing
import TestSupport

/// policy.triggers evaluated against a real Prometheus during the soak window, over HTTPS.
@Suite struct AnalysisTests {
    static let policy = """
          window: 30m
          cooldown: 0s
          maxPerHour: 3
          soak: 5m
          triggers:
            - name: error-rate
              query: 'sum(rate(http_requests_total{app="$app",code="500"}[3s])) / sum(rate(http_requests_total{app="$app"}[3s]))'
              comparison: ">"
              threshold: 0.05
              for: 2s
              action: rollback

        """

    @Test func aBreachThatLastsRollsBackByCommit() throws {
        guard let port = Loopback.freeAppPort() else { throw TestFailure("no port") }
        let yaml = { (v: String, args: [String]) in demoServiceYAML(version: v, args: args, port: port) }
        let h = try ReconcilerHarness(apps: [HarnessApp("api", appYAML: yaml("1.0.0", []))], policy: Self.policy)
        defer { h.close() }
        let stack = try MonitoringStack(scrape: ["127.0.0.1:\(port)"], rules: "      - record: rewind_test_up\n        expr: up\n",
                                        webhook: "http://127.0.0.1:9/", token: "unused")
        defer { stack.close() }
        // Through nginx with TLS and a private certificate authority, by host name.
        let proxy = try TLSProxy(directory: h.root + "/tls", upstream: stack.prometheusPort)
        defer { proxy.stop() }
        try h.start(["--prometheus-url", proxy.url(""), "--ca-file", proxy.caFile, "--analysis-interval", "500ms"])
        try h.waitHealthy("api", "1.0.0")
        let traffic = TrafficGenerator { port }
        defer { traffic.stop() }
        try h.write("apps/api/app.yaml", yaml("2.0.0", ["--fail-rate", "0.5"]))
        let bad = try h.commit("api 2.0.0")
        try h.waitUntil("the analysis rolls back", timeout: 90) { try h.commits().count == 3 }
        let message = try git(["log", "-1", "--format=%B", "main"], in: h.repo)
        #expect(message.contains("Rewind-Trigger: analysis"))
        #expect(message.contains("Rewind-Reason: api release \(bad.prefix(7)) failed: trigger error-rate:"))
        try h.waitHealthy("api", "1.0.0")
        // The rollback's own soak: the error rate is back under the threshold, nothing escalates.
        // Verified only once the error rate is back under the threshold, not merely healthy.
        try h.waitUntil("recovery is verified") { h.notes(on: try h.commits()[0], waitingFor: ["verified app=api"]).contains("verified app=api") }
        #expect(h.log.contains("waiting for the triggers' queries to be back under their thresholds"))
        #expect(h.log.contains("verified (healthy, and its triggers' queries are under their thresholds)"))
        #expect(try h.commits().count == 3)
        #expect((try h.app("api")["waitingFor"] as? String) == "nothing")
        #expect(proxy.accessLog.contains("GET /api/v1/query?query="), "queried through the TLS proxy")
    }
}
