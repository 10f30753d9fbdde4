import Foundation
import SystemSupport
import Testing
import TestSupport

/// Reaching a remote: credentials in URLs, SSH host keys, HTTPS tokens.
@Suite(.serialized) struct AccessTests {
    @Test func urlsWithCredentialsAreRefusedWithoutEchoingThem() throws {
        let result = try TestSupport.rewind(["releases", "--repo", "https://deploy:s3cr3t-token@127.0.0.1/deploy.git", "--mirror", "/tmp/rewind-never"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("credentials"))
        #expect(result.stderr.contains("--git-token-file"))
        #expect(!result.stderr.contains("s3cr3t"))
        #expect(!FileManager.default.fileExists(atPath: "/tmp/rewind-never"))
    }

    @Test func sshHostKeysAreCheckedAgainstKnownHosts() throws {
        try withTemporaryDirectory { tmp in
            let ssh = try SSHServer(directory: tmp + "/sshd")
            defer { ssh.stop() }
            let bare = tmp + "/deploy.git"
            let h = try ReconcilerHarness(apps: [try execApp("api", version: "1.0")])
            defer { h.close() }
            try git(["clone", "-q", "--bare", h.repo, bare], in: tmp)
            let user = ProcessInfo.processInfo.environment["USER"] ?? "root"
            let url = "ssh://\(user)@127.0.0.1:\(ssh.port)\(bare)"
            func releases(_ knownHosts: String, mirror: String) throws -> ProcessResult {
                try TestSupport.rewind(["releases", "--repo", url, "--mirror", tmp + "/" + mirror, "--ssh-key", ssh.userKey, "--known-hosts", knownHosts])
            }
            // Unknown: refused, with the way to trust it; nothing fetched.
            try writeFile(tmp + "/empty_known_hosts", "")
            let unknown = try releases(tmp + "/empty_known_hosts", mirror: "m1")
            #expect(unknown.status == 4)
            #expect(unknown.stderr.contains("is not in"), "\(unknown.stderr)")
            #expect(unknown.stderr.contains("ssh-keyscan -p \(ssh.port)"))
            #expect(try git(["for-each-ref"], in: tmp + "/m1").isEmpty)
            // Known: fetched.
            try writeFile(tmp + "/known_hosts", try ssh.knownHostsLine())
            let known = try releases(tmp + "/known_hosts", mirror: "m2")
            #expect(known.status == 0, "\(known.stderr)\n\(ssh.log.suffix(2000))")
            #expect(known.stdout.contains("api"))
            // Hashed host names (ssh-keygen -H, HashKnownHosts) match too.
            #expect(try run("/usr/bin/ssh-keygen", ["-H", "-f", tmp + "/known_hosts"]).status == 0)
            #expect(try String(contentsOfFile: tmp + "/known_hosts", encoding: .utf8).hasPrefix("|1|"))
            let hashed = try releases(tmp + "/known_hosts", mirror: "m2h")
            #expect(hashed.status == 0, "\(hashed.stderr)")
            // Changed: a different key for the same host is refused.
            let other = tmp + "/other_host_key"
            _ = try run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", other])
            let otherKey = try String(contentsOfFile: other + ".pub", encoding: .utf8).split(separator: " ")
            try writeFile(tmp + "/changed_known_hosts", "[127.0.0.1]:\(ssh.port) \(otherKey[0]) \(otherKey[1])\n")
            let changed = try releases(tmp + "/changed_known_hosts", mirror: "m3")
            #expect(changed.status == 4)
            #expect(changed.stderr.contains("CHANGED"), "\(changed.stderr)")
            #expect(try git(["for-each-ref"], in: tmp + "/m3").isEmpty)
        }
    }

    @Test func httpsWithATokenFromAFile() throws {
        try withTemporaryDirectory { tmp in
            let h = try ReconcilerHarness(apps: [try execApp("api", version: "1.0")])
            defer { h.close() }
            try h.writeApp(try execApp("api", version: "1.1"))
            let good = try h.commit("api 1.1")
            try h.writeApp(try execApp("api", version: "1.2"))
            try h.commit("api 1.2")
            try FileManager.default.createDirectory(atPath: tmp + "/served", withIntermediateDirectories: true)
            try git(["clone", "-q", "--bare", h.repo, tmp + "/served/deploy.git"], in: tmp)
            let https = try HTTPSGitServer(directory: tmp + "/nginx", base: tmp + "/served")
            defer { https.stop() }
            let url = https.url("deploy.git")
            try writeFile(tmp + "/token", https.token + "\n")
            try writeFile(tmp + "/wrong-token", "not-the-token\n")
            func rewindHTTPS(_ arguments: [String], token: String?, mirror: String) throws -> ProcessResult {
                var extra = ["--repo", url, "--mirror", tmp + "/" + mirror, "--git-ca-file", https.certificate, "--git-username", https.username]
                if let token { extra += ["--git-token-file", token] }
                return try TestSupport.rewind(arguments + extra, environment: ["REWIND_ARTIFACT_ROOT": h.artifacts])
            }
            let anonymous = try rewindHTTPS(["releases", "api"], token: nil, mirror: "m1")
            #expect(anonymous.status == 4)
            #expect(anonymous.stderr.contains("credentials"), "\(anonymous.stderr)")
            let wrong = try rewindHTTPS(["releases", "api"], token: tmp + "/wrong-token", mirror: "m2")
            #expect(wrong.status == 4)
            #expect(wrong.stderr.contains("authentication failed") || wrong.stderr.contains("credentials"), "\(wrong.stderr)")
            #expect(!wrong.stderr.contains("not-the-token"))
            let rollback = try rewindHTTPS(["rollback", "api", "--to", good], token: tmp + "/token", mirror: "m3")
            #expect(rollback.status == 0, "\(rollback.stderr)\n\(https.log.suffix(2000))")
            #expect(rollback.stdout.contains("Pushed to \(url)"), "\(rollback.stdout)")
            #expect(try git(["log", "-1", "--format=%s", "main"], in: tmp + "/served/deploy.git").hasPrefix("Roll back api"))
            for output in [anonymous, wrong, rollback] { #expect(!(output.stdout + output.stderr).contains(https.token)) }
        }
    }

    /// libgit2 reads the system's CA bundle when HTTPS first needs it, not
    /// at start (rewind_certificates.h): a host whose authority is only in
    /// that bundle is trusted, and one whose authority is not is refused.
    /// The bundle is swapped for the test's authority in a mount namespace.
    @Test func httpsTrustsTheSystemBundleReadWhenFirstNeeded() throws {
        try withTemporaryDirectory { tmp in
            let h = try ReconcilerHarness(apps: [try execApp("api", version: "1.0")])
            defer { h.close() }
            try FileManager.default.createDirectory(atPath: tmp + "/served", withIntermediateDirectories: true)
            try git(["clone", "-q", "--bare", h.repo, tmp + "/served/deploy.git"], in: tmp)
            let https = try HTTPSGitServer(directory: tmp + "/nginx", base: tmp + "/served")
            defer { https.stop() }
            try writeFile(tmp + "/token", https.token + "\n")
            func releases(mirror: String, bundle: String?) throws -> ProcessResult {
                let arguments = ["releases", "api", "--repo", https.url("deploy.git"), "--mirror", tmp + "/" + mirror,
                                 "--git-username", https.username, "--git-token-file", tmp + "/token"]
                let swap = bundle.map { "mount --bind '\($0)' /etc/ssl/certs/ca-certificates.crt && " } ?? ""
                return try run("/usr/bin/unshare", ["--mount", "--propagation", "private", "sh", "-c", swap + "exec \"$0\" \"$@\"", rewindBinary] + arguments,
                               environment: ["REWIND_ARTIFACT_ROOT": h.artifacts])
            }
            let trusted = try releases(mirror: "m1", bundle: https.certificate)
            #expect(trusted.status == 0, "\(trusted.stderr)")
            #expect(trusted.stdout.contains("1.0"), "\(trusted.stdout)")
            let untrusted = try releases(mirror: "m2", bundle: nil)
            #expect(untrusted.status == 4, "\(untrusted.stdout)")
            #expect(untrusted.stderr.contains("certificate"), "\(untrusted.stderr)")
        }
    }
}
