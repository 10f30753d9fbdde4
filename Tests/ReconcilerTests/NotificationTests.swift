import Foundation
import SystemSupport
import Testing
import TestSupport

/// Rollback events reach JSON and Slack-compatible webhooks, with retries.
@Suite struct NotificationTests {
    @Test func rollbackStartedAndCompletedAreDelivered() throws {
        guard let port = Loopback.freePort() else { throw TestFailure("no port") }
        try withReconciler(apps: [try execApp("site", version: "1.0.0")]) { h in
            let received = h.root + "/received.log"
            let receiver = try Spawn.start(SpawnOptions(program: "/usr/bin/python3", arguments: [packageRoot + "/fixtures/webhook-receiver.py", String(port), received],
                                                        environment: ProcessInfo.processInfo.environment))
            defer { Spawn.stop(receiver, graceMilliseconds: 1_000) }
            try h.waitUntil("the receiver listens") { (try? Loopback.get(port: port, path: "/", timeoutMilliseconds: 200)) != nil }
            try h.start(["--notify-url", "http://127.0.0.1:\(port)/flaky-json", "--slack-url", "http://127.0.0.1:\(port)/slack"])
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
            // The first delivery to the flaky target was refused, then retried: never lost, never blocking.
            #expect(h.log.contains("notification target #1 answered 500; retrying"))
            #expect(!h.log.contains("127.0.0.1:\(port)/flaky"), "URLs may hold secrets: never logged")
        }
    }
}
