import Foundation
import Testing
@testable import Remote

struct RemoteURLTests {
    @Test func schemesAndScpStyle() throws {
        let ssh = try #require(try RemoteURL.parse("ssh://git@example.com:2222/ops/deploy.git"))
        #expect(ssh.scheme == .ssh && ssh.host == "example.com" && ssh.port == 2222 && ssh.user == "git")
        #expect(ssh.knownHostsName == "[example.com]:2222")
        let scp = try #require(try RemoteURL.parse("git@example.com:ops/deploy.git"))
        #expect(scp.scheme == .ssh && scp.host == "example.com" && scp.user == "git" && scp.knownHostsName == "example.com")
        #expect(try RemoteURL.parse("git://127.0.0.1:9418/deploy.git")?.scheme == .git)
        #expect(try RemoteURL.parse("https://example.com/deploy.git")?.port == nil)
        #expect(try RemoteURL.parse("file:///srv/deploy.git")?.scheme == .file)
        // Local paths are not URLs.
        for path in [".", "/srv/deploy", "deploy", "./a:b", "C:"] { #expect(try RemoteURL.parse(path) == nil, "\(path)") }
    }

    @Test func credentialsAndBadURLsAreRefused() {
        for url in ["https://user:token@example.com/x.git", "https://token@example.com/x.git", "ssh://git:pw@example.com/x.git",
                    "ftp://example.com/x", "ssh://example.com:99999/x", "https:///x.git"] {
            #expect(throws: (any Error).self, "\(url)") { try RemoteURL.parse(url) }
        }
        #expect(RemoteURL.redacted("https://user:token@example.com/x.git") == "https://***@example.com/x.git")
    }

    @Test func knownHostsPatterns() {
        #expect(KnownHosts.matches(patterns: "example.com,10.0.0.1", name: "example.com"))
        #expect(KnownHosts.matches(patterns: "*.example.com", name: "git.example.com"))
        #expect(!KnownHosts.matches(patterns: "*.example.com,!git.example.com", name: "git.example.com"))
        #expect(KnownHosts.matches(patterns: "[127.0.0.1]:2222", name: "[127.0.0.1]:2222"))
        #expect(!KnownHosts.matches(patterns: "127.0.0.1", name: "[127.0.0.1]:2222"))
        #expect(Mirror.unionLines("a\nb\n", "b\nc\n") == "a\nb\nc\n")
    }
}
