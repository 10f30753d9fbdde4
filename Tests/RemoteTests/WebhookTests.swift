import Foundation
import SystemSupport
import Testing
import TestSupport

/// Push webhooks at POST /hooks/git.
@Suite(.serialized) struct WebhookTests {
    @Test func pushWebhookFetchesAtOnceAndBadSignaturesAreRefused() throws {
        try withRemote(apps: [try execApp("api", version: "1.0")]) { setup in
            let h = setup.harness
            let secretFile = h.root + "/hook-secret"
            try writeFile(secretFile, "hook secret value\n")
            let address = try h.startServe(["--fetch-interval", "1h", "--git-hook-secret-file", secretFile])
            let port = try #require(Int(address.split(separator: ":").last ?? ""))
            try h.waitHealthy("api", "1.0")
            try h.writeApp(try execApp("api", version: "1.1"))
            try h.commit("api 1.1")
            try git(["push", "-q", setup.url, "main"], in: h.repo)
            let body = Array(#"{"ref":"refs/heads/main"}"#.utf8)
            // The signature as GitHub computes it, from openssl as an oracle.
            let mac = try run("/usr/bin/openssl", ["dgst", "-sha256", "-hmac", "hook secret value", "-r"], stdin: String(decoding: body, as: UTF8.self))
            let signature = "sha256=" + (mac.stdout.split(separator: " ").first.map(String.init) ?? "")
            func post(_ body: [UInt8], _ headers: [String: String]) throws -> Int {
                try Loopback.request("POST", host: "127.0.0.1", port: port, path: "/hooks/git", body: body, headers: headers, timeoutMilliseconds: 5_000).status
            }
            #expect(try post(body + [32], ["X-Hub-Signature-256": signature, "X-GitHub-Delivery": "a"]) == 401)
            #expect(try post(body, ["X-GitHub-Delivery": "a"]) == 401)
            #expect(try post(Array(repeating: 32, count: 2 << 20), ["X-Hub-Signature-256": signature]) == 413)
            #expect(try h.applied("api").version == "1.0")
            #expect(try post(body, ["X-Hub-Signature-256": signature, "X-GitHub-Delivery": "b"]) == 202)
            #expect(try post(body, ["X-Hub-Signature-256": signature, "X-GitHub-Delivery": "b"]) == 200)
            try h.waitHealthy("api", "1.1", timeout: 20)
            #expect(!h.log.contains("hook secret value"))
        }
    }
}
