import Foundation
import HTTPTypes
import Testing
@testable import Server

/// Push webhook signatures: GitHub's documented vector, GitLab and Gitea.
@Suite struct GitHookTests {
    static func fields(_ values: [String: String]) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in values { if let name = HTTPField.Name(name) { fields[name] = value } }
        return fields
    }

    @Test func githubsDocumentedSignatureVector() throws {
        // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
        #expect(GitPushHook.signatureHex(secret: "It's a Secret to Everybody", body: Array("Hello, World!".utf8))
            == "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
        var headers = Self.fields(["X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "X-GitHub-Delivery": "d1"])
        #expect(try GitPushHook.verify(headers: headers, body: Array("Hello, World!".utf8), secret: "It's a Secret to Everybody").id == "d1")
        #expect(throws: RequestError.self) { try GitPushHook.verify(headers: headers, body: Array("Hello, World?".utf8), secret: "It's a Secret to Everybody") }
        #expect(throws: RequestError.self) { try GitPushHook.verify(headers: headers, body: Array("Hello, World!".utf8), secret: "another secret") }
        headers = Self.fields(["X-Gitlab-Token": "It's a Secret to Everybody"])
        #expect(try GitPushHook.verify(headers: headers, body: [], secret: "It's a Secret to Everybody").provider == "gitlab")
        headers = Self.fields(["X-Gitea-Signature": "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"])
        #expect(try GitPushHook.verify(headers: headers, body: Array("Hello, World!".utf8), secret: "It's a Secret to Everybody").provider == "gitea")
        #expect(throws: RequestError.self) { try GitPushHook.verify(headers: Self.fields([:]), body: [], secret: "s") }
    }

}
