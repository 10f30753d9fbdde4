import Foundation
import GitKit
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
                    "ftp://example.com/x", "ssh://example.com:99999/x", "https:///x.git",
                    "file://user:secret@/srv/deploy.git", "file://secret@/srv/deploy.git", "git://user:secret@example.com/x.git",
                    "git://user@example.com/x.git", "http://user:secret@example.com/x.git", "user:secret@example.com:ops/deploy.git"] {
            #expect(throws: (any Error).self, "\(url)") { try RemoteURL.parse(url) }
        }
        #expect(RemoteURL.redacted("https://user:token@example.com/x.git") == "https://***@example.com/x.git")
        #expect(RemoteURL.redacted("user:secret@example.com:ops/deploy.git") == "***@example.com:ops/deploy.git")
        #expect(RemoteURL.redacted("git@example.com:ops/deploy.git") == "git@example.com:ops/deploy.git")
        // The refusal itself never holds the secret.
        for url in ["file://user:secret@/srv/deploy.git", "user:secret@example.com:ops/deploy.git"] {
            do { _ = try RemoteURL.parse(url) } catch { #expect(!"\(error)".contains("secret"), "\(error)") }
        }
    }

    @Test func knownHostsPatterns() {
        #expect(KnownHosts.matches(patterns: "example.com,10.0.0.1", name: "example.com"))
        #expect(KnownHosts.matches(patterns: "*.example.com", name: "git.example.com"))
        #expect(!KnownHosts.matches(patterns: "*.example.com,!git.example.com", name: "git.example.com"))
        #expect(KnownHosts.matches(patterns: "[127.0.0.1]:2222", name: "[127.0.0.1]:2222"))
        #expect(!KnownHosts.matches(patterns: "127.0.0.1", name: "[127.0.0.1]:2222"))
        #expect(Mirror.unionLines("a\nb\n", "b\nc\n") == "a\nb\nc\n")
    }

    /// A known_hosts file written on Windows: its CRLF line ends (one
    /// Character in Swift) are line ends, so a listed key is found on any line
    /// and a revoked one is still refused.
    @Test func aKnownHostsFileWithCRLFLineEnds() throws {
        let url = try #require(try RemoteURL.parse("ssh://git@example.com/ops/deploy.git"))
        let key = HostKey(type: "ssh-ed25519", blob: Array("key-one".utf8)), other = HostKey(type: "ssh-ed25519", blob: Array("key-two".utf8))
        let text = "# hosts\r\nother.example.com ssh-ed25519 \(Data(other.blob).base64EncodedString())\r\n"
            + "example.com ssh-ed25519 \(Data(key.blob).base64EncodedString())\r\n@revoked example.com ssh-ed25519 \(Data(other.blob).base64EncodedString())\r\n"
        #expect(KnownHosts.problem(with: key, for: url, text: text, file: "known_hosts") == nil)
        #expect(KnownHosts.problem(with: other, for: url, text: text, file: "known_hosts")?.contains("@revoked in known_hosts line 4") == true)
    }
}
