import Foundation
import TestSupport
import Testing

/// A canary driven over HTTP: `POST /api/v1/apps/{app}/pause|resume|abort`
/// of a real `rewind serve` (real HAProxy and demo services), with roles.
@Suite("Rollout controls over the API", .serialized)
struct RolloutAPITests {
    static let operatorToken = "alice-\(UUID().uuidString)"
    static let viewerToken = "vera-\(UUID().uuidString)"

    /// POSTs `body` with a bearer token; the status code and the body.
    static func post(_ url: String, token: String, body: String = "{}") throws -> (status: Int, body: String) {
        let result = try run("/usr/bin/curl", ["-s", "-w", "\n%{http_code}", "-X", "POST", "-H", "Authorization: Bearer \(token)",
                                               "-H", "Content-Type: application/json", "--data-binary", body, url])
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    @Test("a viewer may not pause a canary; an operator pauses, resumes and aborts it, and the abort writes the rollback commit with the operator as actor")
    func rolloutControlsOverTheAPI() throws {
        let listen = try ProgressiveDeliveryTests.freePort()
        let traffic = "  listen: \(listen)\n  strategy: canary\n  steps: [10, 50, 100]\n  interval: 1h\n"
        try withReconciler(apps: [HarnessApp("api", appYAML: ProgressiveDeliveryTests.appYAML(version: "1.0.0", traffic: traffic))]) { h in
            let tokens = h.root + "/tokens"
            try writeFile(tokens, "alice: \(Self.operatorToken) operator\nvera: \(Self.viewerToken) viewer\n")
            let address = try h.startServe(["--ui-tokens-file", tokens])
            try h.waitHealthy("api", "1.0.0")
            let base = "http://\(address)/api/v1/apps/api"
            let none = try Self.post(base + "/promote", token: Self.operatorToken)
            #expect(none.status == 409 && none.body.contains("no rollout in progress"), "\(none)")

            try h.writeApp(HarnessApp("api", appYAML: ProgressiveDeliveryTests.appYAML(version: "2.0.0", traffic: traffic)))
            let second = try h.commit("api 2.0.0")
            try h.waitUntil("the canary at 10%") { (try ProgressiveDeliveryTests.rollout(h, "api"))?["weight"] as? Int == 10 }
            let refused = try Self.post(base + "/pause", token: Self.viewerToken)
            #expect(refused.status == 403 && refused.body.contains("needs the operator role; vera is a viewer"), "\(refused)")
            #expect((try ProgressiveDeliveryTests.rollout(h, "api"))?["paused"] as? Bool != true, "the viewer's pause did nothing")
            let paused = try Self.post(base + "/pause", token: Self.operatorToken, body: #"{"reason": "looking at the graphs"}"#)
            #expect(paused.status == 200 && paused.body.contains("\"ok\":true"), "\(paused)")
            #expect((try ProgressiveDeliveryTests.rollout(h, "api"))?["paused"] as? Bool == true)
            #expect(try Self.post(base + "/pause", token: Self.operatorToken).status == 409, "paused already")
            #expect(try Self.post(base + "/resume", token: Self.operatorToken).status == 200)
            #expect(try Self.post(base + "/resume", token: Self.operatorToken, body: #"{"dryRun": true}"#).status == 400)
            let aborted = try Self.post(base + "/abort", token: Self.operatorToken, body: #"{"reason": "latency"}"#)
            #expect(aborted.status == 200 && aborted.body.contains("\"commit\":\""), "\(aborted)")
            #expect(try ProgressiveDeliveryTests.shares(port: listen, count: 20) == ["1.0.0": 20])
            let rollbacks = try ProgressiveDeliveryTests.rollbackCommits(h)
            #expect(rollbacks.count == 1)
            let message = try git(["log", "-1", "--format=%B", rollbacks.first ?? "HEAD"], in: h.repo)
            #expect(message.contains("Rewind-Actor: alice") && message.contains("latency"), "\(message)")
            let notes = h.notes(on: second, waitingFor: ["paused app=api version=2.0.0 weight=10 by=alice", "resumed app=api"])
            #expect(notes.contains("paused app=api version=2.0.0 weight=10 by=alice") && notes.contains("resumed app=api"), "\(notes)")
            let log = (try? String(contentsOfFile: h.logFile, encoding: .utf8)) ?? ""
            #expect(log.contains("refused POST /api/v1/apps/api/pause for vera (viewer): 403"))
            #expect(!log.contains(Self.operatorToken) && !log.contains(Self.viewerToken))
        }
    }
}
