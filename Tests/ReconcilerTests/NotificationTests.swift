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

/// Notification routes end to end: `rewind reconcile --notify-routes` with a
/// PagerDuty stand-in on loopback that checks every body against the
/// Events API v2 schema, and Slack and JSON webhooks through the TLS proxy.
@Suite struct NotificationRouteTests {
    static func lines(_ path: String) -> [[String: Any]] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    @Test func anEscalationPagesAndTheVerifiedRollbackResolvesItWithTheSameKey() throws {
        guard let pdPort = Loopback.freeAppPort(), let hookPort = Loopback.freeAppPort() else { throw TestFailure("no port") }
        let policy = "  window: 30m\n  cooldown: 0s\n  maxPerHour: 1\n  soak: 1m\n  crashLoopRestarts: 3\n"
        try withReconciler(apps: [try execApp("site", version: "1.0.0")], policy: policy) { h in
            let paged = h.root + "/pagerduty.jsonl", received = h.root + "/received.log"
            let env = ProcessInfo.processInfo.environment
            let pagerDuty = try Spawn.start(SpawnOptions(program: "/usr/bin/env", arguments: ["python3", packageRoot + "/fixtures/pagerduty/receiver.py", String(pdPort), paged], environment: env))
            defer { Spawn.stop(pagerDuty, graceMilliseconds: 1_000) }
            let hooks = try Spawn.start(SpawnOptions(program: "/usr/bin/python3", arguments: [packageRoot + "/fixtures/webhook-receiver.py", String(hookPort), received], environment: env))
            defer { Spawn.stop(hooks, graceMilliseconds: 1_000) }
            for port in [pdPort, hookPort] { try h.waitUntil("a receiver listens") { (try? Loopback.get(port: port, path: "/", timeoutMilliseconds: 200)) != nil } }
            let proxy = try TLSProxy(directory: h.root + "/tls", upstream: hookPort)
            defer { proxy.stop() }
            try writeFile(h.root + "/pd-key", "R0UTINGKEYe2e0123456789abc\n")
            try writeFile(h.root + "/slack-url", proxy.url("/slack-secret") + "\n")
            try writeFile(h.root + "/notify.yaml", """
                targets:
                  oncall: {type: pagerduty, routingKeyFile: \(h.root)/pd-key, url: "http://127.0.0.1:\(pdPort)/v2/enqueue"}
                  chat: {type: slack, urlFile: \(h.root)/slack-url}
                  audit: {type: webhook, url: "\(proxy.url("/audit"))"}
                routes:
                  - name: page
                    events: [escalated, rollback-failed, rollback-completed]
                    targets: [oncall]
                  - name: chat
                    severity: warning
                    targets: [chat]
                  - name: all
                    targets: [audit]
                uiURL: https://rewind.example.com

                """)
            try h.start(["--notify-routes", h.root + "/notify.yaml", "--ca-file", proxy.caFile])
            try h.waitHealthy("site", "1.0.0")
            // 1.1.0 fails: rolled back automatically, verified: PagerDuty gets a resolve of its key (nothing was triggered: harmless).
            try h.write("apps/site/app.yaml", execAppYAML(version: "1.1.0", apply: "./apply-fails.sh"))
            let first = try h.commit("site 1.1.0")
            try h.waitUntil("the first rollback is verified and resolved", timeout: 30) {
                Self.lines(paged).contains { ($0["body"] as? [String: Any])?["dedup_key"] as? String == "rewind/site/\(first)" }
            }
            // 1.2.0 fails too: over maxPerHour, escalated: PagerDuty is triggered.
            try h.write("apps/site/app.yaml", execAppYAML(version: "1.2.0", apply: "./apply-fails.sh"))
            let second = try h.commit("site 1.2.0")
            try h.waitUntil("the escalation pages", timeout: 30) {
                Self.lines(paged).contains { ($0["body"] as? [String: Any])?["event_action"] as? String == "trigger" }
            }
            // A human rolls back; once it is verified, the page is resolved with the same key.
            let rollback = try rewind(["rollback", "site", "--reason", "paged: back to 1.0.0", "--repo", h.repo])
            #expect(rollback.status == 0, "\(rollback.stderr)")
            try h.waitUntil("the human's rollback resolves the page", timeout: 30) {
                Self.lines(paged).filter { ($0["body"] as? [String: Any])?["dedup_key"] as? String == "rewind/site/\(second)" }.count == 2
            }
            let events = Self.lines(paged)
            #expect(events.allSatisfy { $0["valid"] as? Bool == true }, "every body matches the Events v2 schema: \(events.filter { $0["valid"] as? Bool != true })")
            let incident = events.compactMap { $0["body"] as? [String: Any] }.filter { $0["dedup_key"] as? String == "rewind/site/\(second)" }
            #expect(incident.map { $0["event_action"] as? String } == ["trigger", "resolve"], "\(incident)")
            let payload = incident.first?["payload"] as? [String: Any] ?? [:]
            #expect(payload["severity"] as? String == "critical" && payload["component"] as? String == "site", "\(payload)")
            #expect(((incident.first?["links"] as? [[String: Any]])?.first?["href"] as? String)?.hasPrefix("https://rewind.example.com/releases/") == true)
            // Slack (warning and up) and the JSON webhook (everything), through TLS.
            let text = (try? String(contentsOfFile: received, encoding: .utf8)) ?? ""
            #expect(text.contains("/slack-secret {\"text\":\":rotating_light: *site* needs a human"), "\(text)")
            #expect(!text.contains("/slack-secret {\"text\":\":rocket:"), "deployed is info: not on the warning route")
            #expect(text.contains("/audit {\"event\":\"deployed\",\"app\":\"site\"") && text.contains("/audit {\"event\":\"failed\",\"app\":\"site\""), "\(text)")
            #expect(!h.log.contains("R0UTINGKEY") && !h.log.contains("slack-secret"), "secrets are never logged")
        }
    }

    @Test func notifyTestSendsASampleToEachTargetOfARouteAndSaysWhatEachAnswered() throws {
        guard let pdPort = Loopback.freeAppPort(), let deadPort = Loopback.freeAppPort() else { throw TestFailure("no port") }
        try withTemporaryDirectory { dir in
            let paged = dir + "/pagerduty.jsonl"
            let pagerDuty = try Spawn.start(SpawnOptions(program: "/usr/bin/env", arguments: ["python3", packageRoot + "/fixtures/pagerduty/receiver.py", String(pdPort), paged],
                                                         environment: ProcessInfo.processInfo.environment))
            defer { Spawn.stop(pagerDuty, graceMilliseconds: 1_000) }
            try waitFor("the receiver listens", timeout: 20) { (try? Loopback.get(port: pdPort, path: "/", timeoutMilliseconds: 200)) != nil }
            try writeFile(dir + "/pd-key", "R0UTINGKEYtest0123456789ab\n")
            try writeFile(dir + "/notify.yaml", """
                targets:
                  oncall: {type: pagerduty, routingKeyFile: \(dir)/pd-key, url: "http://127.0.0.1:\(pdPort)/v2/enqueue"}
                  gone: {type: webhook, url: "http://127.0.0.1:\(deadPort)/hook"}
                routes:
                  - {name: page, events: [escalated], targets: [oncall]}
                  - {name: both, targets: [oncall, gone]}

                """)
            let ok = try rewind(["notify", "test", "page", "--notify-routes", dir + "/notify.yaml"])
            #expect(ok.status == 0 && ok.stdout.contains("oncall: delivered (HTTP 202)"), "\(ok.stdout)\(ok.stderr)")
            let sample = Self.lines(paged).first
            #expect(sample?["valid"] as? Bool == true && (sample?["body"] as? [String: Any])?["event_action"] as? String == "trigger", "\(String(describing: sample))")
            let partly = try rewind(["notify", "test", "both", "--notify-routes", dir + "/notify.yaml", "--format", "json"])
            #expect(partly.status == 1 && partly.stdout.contains("\"target\": \"gone\"") && partly.stdout.contains("\"ok\": false"), "\(partly.stdout)\(partly.stderr)")
            let unknown = try rewind(["notify", "test", "pgae", "--notify-routes", dir + "/notify.yaml"])
            #expect(unknown.status != 0 && unknown.stderr.contains("no route 'pgae'") && unknown.stderr.contains("did you mean 'page'?"), "\(unknown.stderr)")
            #expect(!(ok.stdout + partly.stdout + unknown.stderr).contains("R0UTINGKEY"))
        }
    }
}

/// Email through a real SMTP server on loopback (aiosmtpd from PyPI) that
/// requires STARTTLS (a test certificate authority) and AUTH.
@Suite struct EmailNotificationTests {
    /// A routes file of its own (and password file) for each call.
    static func routes(_ dir: String, port: Int, password: String = "pa55word-\(UUID().uuidString)", from: String = "rewind@example.com") throws -> String {
        let id = UUID().uuidString
        try writeFile(dir + "/smtp-password-\(id)", password + "\n")
        let path = dir + "/notify-\(id).yaml"
        try writeFile(path, """
            targets:
              mail: {type: email, server: "localhost:\(port)", from: \(from), to: [oncall@example.com, lead@example.com], user: rewind, passwordFile: \(dir)/smtp-password-\(id)}
            routes:
              - {name: mail, events: [escalated], targets: [mail]}

            """)
        return path
    }

    @Test func anEscalationIsMailedOverSTARTTLSWithAuthAndEveryRefusalSaysWhereAndWhy() throws {
        guard let port = Loopback.freeAppPort(), let plainPort = Loopback.freeAppPort() else { throw TestFailure("no port") }
        try withTemporaryDirectory { dir in
            try makeTestCertificates(in: dir)
            let received = dir + "/mail.jsonl", password = "pa55word-\(UUID().uuidString)"
            let env = ProcessInfo.processInfo.environment
            let server = try Spawn.start(SpawnOptions(program: "/usr/bin/env", arguments: ["python3", packageRoot + "/fixtures/smtp/server.py", String(port),
                                                                                         dir + "/server.pem", dir + "/server.key", "rewind", password, received], environment: env))
            defer { Spawn.stop(server, graceMilliseconds: 1_000) }
            let plain = try Spawn.start(SpawnOptions(program: "/usr/bin/env", arguments: ["python3", packageRoot + "/fixtures/smtp/server.py", String(plainPort),
                                                                                        "-", "-", "rewind", password, dir + "/plain.jsonl"], environment: env))
            defer { Spawn.stop(plain, graceMilliseconds: 1_000) }
            for p in [port, plainPort] { try waitFor("the SMTP server listens", timeout: 20) { Loopback.canConnect(port: p) } }

            let sent = try rewind(["notify", "test", "mail", "--notify-routes", try Self.routes(dir, port: port, password: password), "--ca-file", dir + "/ca.pem", "--app", "api"])
            #expect(sent.status == 0 && sent.stdout.contains("mail: delivered"), "\(sent.stdout)\(sent.stderr)")
            let lines = ((try? String(contentsOfFile: received, encoding: .utf8)) ?? "").split(separator: "\n")
            let mail = try #require(lines.first.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
            #expect(mail["tls"] as? Bool == true && mail["user"] as? String == "rewind", "\(mail)")
            #expect(mail["from"] as? String == "rewind@example.com" && mail["to"] as? [String] == ["oncall@example.com", "lead@example.com"])
            let data = mail["data"] as? String ?? ""
            #expect(data.contains("Subject: [rewind] critical escalated: api") && data.contains("api: escalated (critical)") && data.contains("Trigger: test"), "\(data)")

            // Refusals: a wrong password, a sender the server refuses, no STARTTLS, a CA not trusted, nobody listening.
            let cases: [(String, [String], String)] = [
                (try Self.routes(dir, port: port, password: "wrong"), ["--ca-file", dir + "/ca.pem"], "smtp://localhost:\(port) refused the sign-in (AUTH PLAIN as rewind): 535"),
                (try Self.routes(dir, port: port, password: password, from: "refused@example.com"), ["--ca-file", dir + "/ca.pem"], "refused the sender refused@example.com: 550"),
                (try Self.routes(dir, port: plainPort, password: password), [], "does not offer STARTTLS: Rewind sends no mail and no password without TLS"),
                (try Self.routes(dir, port: port, password: password), [], "TLS failed after STARTTLS: its certificate is not signed by an authority Rewind trusts"),
            ]
            for (routes, extra, expected) in cases {
                let refused = try rewind(["notify", "test", "mail", "--notify-routes", routes] + extra)
                #expect(refused.status == 1 && refused.stdout.contains("mail: NOT DELIVERED") && refused.stdout.contains(expected), "\(expected): \(refused.stdout)\(refused.stderr)")
                #expect(!refused.stdout.contains(password) && !refused.stdout.contains("wrong\n"), "the password is never shown")
            }
            #expect(((try? String(contentsOfFile: received, encoding: .utf8)) ?? "").split(separator: "\n").count == 1, "nothing else was accepted")
            #expect(((try? String(contentsOfFile: dir + "/plain.jsonl", encoding: .utf8)) ?? "").isEmpty, "nothing went over the plain connection")
        }
    }
}
