import Foundation
import SystemSupport
import Testing
import TestSupport

/// Rollback events reach JSON and Slack-compatible webhooks over HTTPS, with retries.
@Suite struct NotificationTests {
    @Test func rollbackStartedAndCompletedAreDelivered() throws {
        guard let port = Loopback.freeAppPort() else { throw TestFailure("no port") }
        try withReconciler(apps: [try execApp("site", version: "1.0.0")]) { h in
            let received = h.root + "/received.log"
            let receiver = try Spawn.start(SpawnOptions(program: "/usr/bin/python3", arguments: [packageRoot + "/fixtures/webhook-receiver.py", String(port), received],
                                                        environment: ProcessInfo.processInfo.environment))
            defer { Spawn.stop(receiver, graceMilliseconds: 1_000) }
            try h.waitUntil("the receiver listens") { (try? Loopback.get(port: port, path: "/", timeoutMilliseconds: 200)) != nil }
            // Both through nginx with TLS and a private certificate authority, by host name.
            let proxy = try TLSProxy(directory: h.root + "/tls", upstream: port)
            defer { proxy.stop() }
            try h.start(["--notify-url", proxy.url("/flaky-json"), "--slack-url", proxy.url("/slack"), "--ca-file", proxy.caFile])
            try h.waitHealthy("site", "1.0.0")
            try h.write("apps/site/app.yaml", execAppYAML(version: "1.1.0", apply: "./apply-fails.sh"))
            try h.commit("site 1.1.0")
            try h.waitUntil("both events reach both targets", timeout: 30) {
                let text = (try? String(contentsOfFile: received, encoding: .utf8)) ?? ""
                return text.contains("/flaky-json {\"event\":\"rollback-completed\"") && text.contains("Rollback of *site* verified healthy")
                    && text.contains("/flaky-json {\"event\":\"rollback-started\"")
            }
            let text = try String(contentsOfFile: received, encoding: .utf8)
            #expect(text.contains("/flaky-json {\"event\":\"rollback-started\",\"app\":\"site\",\"trigger\":\"analysis\""))
            #expect(text.contains("/slack {\"text\":\":rewind: Rolling back *site*"))
            let json = text.split(separator: "\n").filter { $0.hasPrefix("/flaky-json") }
            #expect(json.first?.contains("rollback-started") == true, "in order, even after a retry")
            // The completed event carries the incident report's summary; Slack's text too.
            let completed = json.first { $0.contains("rollback-completed") } ?? ""
            #expect(completed.contains("\"incident\":\"site 1.1.0 → 1.0.0 by rollback "), "\(completed)")
            #expect(completed.contains("(analysis): detect ") && completed.contains("verified\""), "\(completed)")
            #expect(text.contains("verified healthy (analysis") && text.contains("\\nIncident: site 1.1.0 → 1.0.0"), "\(text)")
            // The first delivery to the flaky target was refused, then retried: never lost, never blocking.
            #expect(h.log.contains("notification target #1 (https://localhost:\(proxy.port)) answered 500; retrying"), "\(h.log.suffix(2000))")
            #expect(!h.log.contains("/flaky-json") && !h.log.contains("/slack"), "URLs' paths may hold secrets: never logged")
            #expect(proxy.accessLog.contains("POST /slack"), "delivered through the TLS proxy")
        }
    }
}

/// A webhook behind a certificate authority the system does not trust, with
/// no --ca-file: the delivery fails with what to do, and the URL's path is not logged.
@Suite struct UntrustedWebhookTests {
    @Test func aWrongAuthorityFailsClearly() throws {
        try withReconciler(apps: [try execApp("site", version: "1.0.0")]) { h in
            let proxy = try TLSProxy(directory: h.root + "/tls")
            defer { proxy.stop() }
            try h.start(["--notify-url", proxy.url("/hooks/secret-path")])
            try h.waitHealthy("site", "1.0.0")
            try h.write("apps/site/app.yaml", execAppYAML(version: "1.1.0", apply: "./apply-fails.sh"))
            try h.commit("site 1.1.0")
            try h.waitUntil("the delivery fails and says why", timeout: 30) { h.log.contains("notification target #1 (https://localhost:\(proxy.port)) failed: POST https://localhost:\(proxy.port): TLS failed") }
            #expect(h.log.contains("pass its certificate with --ca-file"))
            #expect(!h.log.contains("secret-path"), "\(h.log.suffix(1500))")
        }
    }
}
