import Foundation
import Testing
import TestSupport

/// Webhook limits hold however a body arrives, and nothing from outside is
/// echoed at full length.
@Suite struct LimitsTests {
    static let token = "hook-\(UUID().uuidString)"

    /// `curl` with a file as the body; returns the status code and the body.
    func curl(_ url: String, file: String, headers: [String]) throws -> (Int, String) {
        var arguments = ["-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST", "--data-binary", "@" + file, url]
        for header in headers { arguments += ["-H", header] }
        let result = try run("/usr/bin/curl", arguments)
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    @Test func aChunkedBodyOverTheLimitIs413AndALongAlertNameIsCut() throws {
        let h = try ReconcilerHarness(apps: [try execApp("api", version: "1.0.0")])
        defer { h.close() }
        let tokenFile = h.root + "/hook-token"
        try writeFile(tokenFile, Self.token + "\n")
        let address = try h.startServe(["--hook-token-file", tokenFile])
        try h.waitHealthy("api", "1.0.0")
        let auth = "Authorization: Bearer \(Self.token)"
        // 5 MB sent chunked: no Content-Length to refuse it by.
        let big = h.root + "/big.json"
        try writeFile(big, String(repeating: "x", count: 5 << 20))
        let (status, body) = try curl("http://\(address)/hooks/alertmanager", file: big, headers: [auth, "Transfer-Encoding: chunked", "Content-Type: application/json"])
        #expect(status == 413, "\(body)")
        #expect(!body.contains("NIO"), "\(body)")
        // A 100 kB alert name is cut wherever it goes: the response, the log, the commit.
        let name = String(repeating: "N", count: 100_000)
        let alert = #"{"version":"4","groupKey":"g","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"\#(name)","app":"api"},"startsAt":"2026-11-21T10:00:00Z","fingerprint":"fp"}]}"#
        let small = h.root + "/alert.json"
        try writeFile(small, alert)
        let (alertStatus, response) = try curl("http://\(address)/hooks/alertmanager", file: small, headers: [auth, "Content-Type: application/json"])
        #expect(alertStatus == 200, "\(response.prefix(300))")
        #expect(response.count < 4_000, "the response echoes \(response.count) characters")
        #expect(response.contains("100000 characters in all"), "\(response.prefix(300))")
        h.stop()
        for line in h.log.split(separator: "\n") { #expect(line.count < 4_000, "a log line of \(line.count) characters") }
        let messages = try git(["log", "--format=%B", "main"], in: h.repo)
        for line in messages.split(separator: "\n") { #expect(line.count < 1_100, "a commit line of \(line.count) characters") }
    }

    @Test func aDamagedSeenAlertsFileIsNamedAndKept() throws {
        let h = try ReconcilerHarness(apps: [try execApp("api", version: "1.0.0")])
        defer { h.close() }
        try FileManager.default.createDirectory(atPath: h.stateDir, withIntermediateDirectories: true)
        try writeFile(h.stateDir + "/alerts-seen.json", "{not json")
        try h.startServe()
        try h.waitUntil("the damaged file is reported") { h.log.contains("alerts-seen.json is damaged") }
        let kept = try FileManager.default.contentsOfDirectory(atPath: h.stateDir).filter { $0.hasPrefix("alerts-seen.json.damaged-") }
        #expect(kept.count == 1)
        #expect(try String(contentsOfFile: h.stateDir + "/" + kept[0], encoding: .utf8) == "{not json")
    }
}
