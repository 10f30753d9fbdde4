import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport
import SystemSupport

/// `rewind serve` against real Prometheus and Alertmanager, and against
/// webhook storms: one firing alert becomes exactly one rollback commit.
@Suite struct AlertmanagerTests {
    static let token = "hook-\(UUID().uuidString)"

    static let policy = "  window: 30m\n  cooldown: 0s\n  maxPerHour: 3\n"

    /// POSTs a body with the hook token; returns status and body.
    func post(_ address: String, _ path: String, _ body: String, token: String? = token) async throws -> (Int, String) {
        var request = URLRequest(url: URL(string: "http://\(address)\(path)")!)
        request.httpMethod = "POST"
        request.httpBody = Data(body.utf8)
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    static func alert(_ status: String = "firing", app: String = "api", fingerprint: String = "fp-1", startsAt: String = "2026-11-21T10:00:00Z", groupKey: String = "{}:{alertname=\\\"HighErrorRate\\\"}") -> String {
        #"{"version":"4","groupKey":"\#(groupKey)","status":"\#(status)","receiver":"rewind","alerts":[{"status":"\#(status)","labels":{"alertname":"HighErrorRate","app":"\#(app)","severity":"critical"},"annotations":{"summary":"error rate above 5%"},"startsAt":"\#(startsAt)","endsAt":"0001-01-01T00:00:00Z","fingerprint":"\#(fingerprint)"}]}"#
    }

    func rollbackCommits(_ h: ReconcilerHarness) throws -> [String] {
        try git(["log", "--format=%H", "--grep=Rewind-Trigger: alert", "main"], in: h.repo).split(separator: "\n").map(String.init)
    }

    @Test func aHundredCopiesAndASecondAlertmanagerGiveOneCommit() async throws {
        let apps = [try execApp("api", version: "1.0.0")]
        let h = try ReconcilerHarness(apps: apps, policy: Self.policy)
        defer { h.close() }
        let address = try h.startServe(["--hook-token-file", try tokenFile(h)])
        try h.waitHealthy("api", "1.0.0")
        try h.writeApp(try execApp("api", version: "1.1.0"))
        let bad = try h.commit("api 1.1.0")
        try h.waitHealthy("api", "1.1.0")
        let body = Self.alert()
        // A second Alertmanager of an HA pair sends the same alert with its own receiver and URL.
        let fromSecond = body.replacing(#""receiver":"rewind""#, with: #""receiver":"rewind","externalURL":"http://alertmanager-2:9093""#)
        let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
            for i in 0..<101 { group.addTask { try await post(address, "/hooks/alertmanager", i == 50 ? fromSecond : body).1 } }
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0.contains(#""decision":"rolled-back""#) }.count == 1)
        #expect(outcomes.filter { $0.contains(#""decision":"duplicate""#) }.count == 100)
        #expect(try rollbackCommits(h).count == 1)
        let message = try git(["log", "-1", "--format=%B", "main"], in: h.repo)
        #expect(message.contains("Rewind-Alert: HighErrorRate"))
        #expect(message.contains("Rewind-Fingerprint: fp-1"))
        // The alert is the release's failure in the notes: its name, labels and startsAt.
        let noted = h.notes(on: bad, waitingFor: ["failed app=api reason=", "rolled-back app=api by="])
        #expect(noted.contains("failed app=api reason=\"alert HighErrorRate firing\" alert=HighErrorRate startsAt="), "\(noted)")
        #expect(noted.contains("labels=alertname=HighErrorRate,app=api,severity=critical"), "\(noted)")
        #expect(noted.contains("rolled-back app=api by="), "\(noted)")
        try h.waitHealthy("api", "1.0.0")
        // Resolved: nothing. Bad token: 401 before any work.
        let resolved = try await post(address, "/hooks/alertmanager", Self.alert("resolved"))
        #expect(resolved.1.contains("resolved alerts do nothing"))
        #expect(try await post(address, "/hooks/alertmanager", body, token: "wrong").0 == 401)
        // A new firing of the same alert now hits a rollback: escalated, never rolled back again.
        let again = try await post(address, "/hooks/alertmanager", Self.alert(startsAt: "2026-11-21T11:00:00Z"))
        #expect(again.1.contains(#""decision":"escalated""#))
        #expect(again.1.contains("rollback did not recover"))
        #expect(try rollbackCommits(h).count == 1)
        #expect(h.notes(on: try rollbackCommits(h)[0], waitingFor: ["escalated app=api"]).contains("escalated app=api"))
        // The escalated automatic rollback's incident report, as git shows it.
        let incident = try git(["notes", "--ref=rewind-incident", "show", try rollbackCommits(h)[0]], in: h.repo)
        #expect(incident.hasPrefix("# Incident: api rolled back by"), "\(incident)")
        #expect(incident.contains("- **Outcome:** escalated"), "\(incident)")
        #expect(incident.contains("alert HighErrorRate"), "\(incident)")
        // Status says a human is needed, not healthy / nothing, and exits 7.
        let status = try rewind(["status", "--repo", h.repo, "--state-dir", h.stateDir])
        #expect(status.status == 7, "\(status.stdout)")
        #expect(status.stdout.contains("a human: rollback did not recover"), "\(status.stdout)")
        #expect((try h.app("api")["needsHuman"] as? String)?.contains("rollback did not recover") == true)
    }

    @Test func cooldownAndMaxPerHourAreHonoured() async throws {
        let h = try ReconcilerHarness(apps: [try execApp("api", version: "1.0.0")], policy: "  window: 30m\n  cooldown: 1h\n  maxPerHour: 3\n")
        defer { h.close() }
        let address = try h.startServe(["--hook-token-file", try tokenFile(h)])
        for version in ["1.1.0", "1.2.0"] {
            try h.writeApp(try execApp("api", version: version))
            try h.commit("api \(version)")
            try h.waitHealthy("api", version)
            let response = try await post(address, "/hooks/alertmanager", Self.alert(fingerprint: "fp-\(version)"))
            if version == "1.1.0" {
                #expect(response.1.contains(#""decision":"rolled-back""#), "\(response.1)")
            } else {
                #expect(response.1.contains("cooldown"), "\(response.1)")
            }
        }
        #expect(try rollbackCommits(h).count == 1)
    }

    @Test func prometheusRuleFiresAlertmanagerPostsRewindReverts() async throws {
        guard let port = Loopback.freeAppPort() else { throw TestFailure("no port") }
        let yaml = { (v: String, args: [String]) in demoServiceYAML(version: v, args: args, port: port) }
        let h = try ReconcilerHarness(apps: [HarnessApp("api", appYAML: yaml("1.0.0", []))], policy: Self.policy)
        defer { h.close() }
        let address = try h.startServe(["--hook-token-file", try tokenFile(h)])
        try h.waitHealthy("api", "1.0.0")
        let traffic = TrafficGenerator { port }
        defer { traffic.stop() }
        let rules = """
                  - alert: HighErrorRate
                    expr: sum by (app) (rate(http_requests_total{code="500"}[3s])) / sum by (app) (rate(http_requests_total[3s])) > 0.05
                    labels:
                      severity: critical
                    annotations:
                      summary: error rate above 5%

            """
        let stack = try MonitoringStack(scrape: ["127.0.0.1:\(port)"], rules: rules, webhook: "http://\(address)/hooks/alertmanager", token: Self.token)
        defer { stack.close() }
        try h.write("apps/api/app.yaml", yaml("2.0.0", ["--fail-rate", "0.5"]))
        let bad = try h.commit("api 2.0.0")
        try h.waitHealthy("api", "2.0.0")
        try h.waitUntil("Alertmanager's webhook makes Rewind revert", timeout: 90) { try rollbackCommits(h).count == 1 }
        let rollback = try rollbackCommits(h)[0]
        #expect(try git(["log", "-1", "--format=%B", rollback], in: h.repo).contains("Rewind-Target: "))
        #expect(try git(["rev-parse", "\(rollback)~1"], in: h.repo) == bad)
        try h.waitHealthy("api", "1.0.0")
        try h.waitUntil("the alert resolves", timeout: 90) {
            let metrics = (try? Loopback.get(port: Int(address.split(separator: ":").last ?? "") ?? 0, path: "/metrics", timeoutMilliseconds: 1_000).body) ?? ""
            return metrics.contains(#"rewind_alerts_received_total{status="resolved"}"#)
        }
        #expect(try rollbackCommits(h).count == 1, "one commit, however many times Alertmanager posted")
        // Verified: the incident report is a note on the rollback, its
        // timeline in order from the bad release to the verification, with
        // the alert's labels from Prometheus' rule.
        var incident = ""
        try h.waitUntil("the incident report is written", timeout: 30) {
            incident = (try? git(["notes", "--ref=rewind-incident", "show", rollback], in: h.repo)) ?? ""
            return !incident.isEmpty
        }
        let rows = incident.split(separator: "\n").drop { !$0.hasPrefix("## Timeline") }.dropFirst(3).prefix { $0.hasPrefix("| 20") }
        let times = rows.map { $0.split(separator: "|")[0].trimmingCharacters(in: .whitespaces) }
        #expect(times == times.sorted(), "\(incident)")
        #expect(rows.first?.contains("release `\(bad.prefix(7))` of api") == true, "\(incident)")
        #expect(rows.contains { $0.contains("api failed: alert HighErrorRate firing") && $0.contains("severity=critical") }, "\(incident)")
        #expect(rows.last?.contains("rollback of api verified") == true, "\(incident)")
        #expect(incident.contains("- **Outcome:** verified"))
    }

    private func tokenFile(_ h: ReconcilerHarness) throws -> String {
        let path = h.root + "/hook-token"
        try writeFile(path, Self.token + "\n")
        return path
    }
}


/// A client that stops sending mid-request is cut off after the read timeout.
@Suite struct SlowClientTests {
    @Test func aSilentConnectionIsClosed() throws {
        let h = try ReconcilerHarness(apps: [try execApp("api", version: "1.0.0")])
        defer { h.close() }
        let address = try h.startServe(["--read-timeout", "500ms"])
        guard let port = Int(address.split(separator: ":").last ?? "") else { throw TestFailure("no port") }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = UInt16(port).bigEndian
        sin.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let connected = withUnsafePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(connected == 0)
        let partial = Array("POST /hooks/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Le".utf8)
        #expect(send(fd, partial, partial.count, 0) == partial.count)
        let started = Date()
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        #expect(poll(&p, 1, 10_000) == 1)
        var byte: UInt8 = 0
        #expect(recv(fd, &byte, 1, 0) <= 0, "the server closed the connection")
        #expect(Date().timeIntervalSince(started) < 5)
    }
}
