import Foundation
import SystemSupport
import Testing
import TestSupport
@testable import Server

/// Push webhooks at POST /hooks/git.
@Suite(.serialized) struct WebhookTests {
    @Test func githubsDocumentedSignatureVector() throws {
        // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
        #expect(GitPushHook.signatureHex(secret: "It's a Secret to Everybody", body: Array("Hello, World!".utf8))
            == "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
        var headers = HTTPFieldsForTest.make(["X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "X-GitHub-Delivery": "d1"])
        #expect(try GitPushHook.verify(headers: headers, body: Array("Hello, World!".utf8), secret: "It's a Secret to Everybody").id == "d1")
        #expect(throws: RequestError.self) { try GitPushHook.verify(headers: headers, body: Array("Hello, World?".utf8), secret: "It's a Secret to Everybody") }
        #expect(throws: RequestError.self) { try GitPushHook.verify(headers: headers, body: Array("Hello, World!".utf8), secret: "another secret") }
        headers = HTTPFieldsForTest.make(["X-Gitlab-Token": "It's a Secret to Everybody"])
        #expect(try GitPushHook.verify(headers: headers, body: [], secret: "It's a Secret to Everybody").provider == "gitlab")
        headers = HTTPFieldsForTest.make(["X-Gitea-Signature": "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"])
        #expect(try GitPushHook.verify(headers: headers, body: Array("Hello, World!".utf8), secret: "It's a Secret to Everybody").provider == "gitea")
        #expect(throws: RequestError.self) { try GitPushHook.verify(headers: HTTPFieldsForTest.make([:]), body: [], secret: "s") }
    }

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
            let signature = "sha256=" + GitPushHook.signatureHex(secret: "hook secret value", body: body)
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
