import Foundation
import SystemSupport
import Testing
import TestSupport

/// What the reconciler refuses to apply: unsigned commits, oversized app directories.
@Suite(.serialized) struct PolicyTests {
    @Test func signaturePolicyHeadRefusesUnsignedTipsAndAcceptsAllowedSigners() throws {
        try withTemporaryDirectory { tmp in
            let key = tmp + "/signer"
            _ = try run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "signer", "-f", key])
            let pub = try String(contentsOfFile: key + ".pub", encoding: .utf8).split(separator: " ")
            let allowed = tmp + "/allowed_signers"
            try writeFile(allowed, "author@example.com namespaces=\"git\" \(pub[0]) \(pub[1])\n")
            guard let port = Loopback.freeAppPort() else { throw TestFailure("no port") }
            try withReconciler(apps: [try execApp("api", version: "1.0")]) { h in
                let received = h.root + "/received.log"
                let receiver = try Spawn.start(SpawnOptions(program: "/usr/bin/python3", arguments: [packageRoot + "/fixtures/webhook-receiver.py", String(port), received],
                                                            environment: ProcessInfo.processInfo.environment))
                defer { Spawn.stop(receiver, graceMilliseconds: 1_000) }
                try h.waitUntil("the receiver listens") { (try? Loopback.get(port: port, path: "/", timeoutMilliseconds: 200)) != nil }
                try h.start(["--verify", "head", "--allowed-signers", allowed, "--notify-url", "http://127.0.0.1:\(port)/hook"])
                try h.waitUntil("the unsigned tip is refused") {
                    ((try h.status()["refused"] as? [String: Any])?["message"] as? String)?.contains("is not signed") == true
                }
                try h.waitUntil("a notification says why") {
                    let text = (try? String(contentsOfFile: received, encoding: .utf8)) ?? ""
                    return text.contains("\"event\":\"commit-refused\"") && text.contains("is not signed")
                }
                #expect(try h.applied("api").version == nil)
                try h.writeApp(try execApp("api", version: "1.1"))
                try git(["add", "-A"], in: h.repo)
                try git(["-c", "gpg.format=ssh", "-c", "user.signingkey=\(key)", "commit", "-q", "-S", "-m", "api 1.1, signed"], in: h.repo)
                try h.waitHealthy("api", "1.1")
                // Rewind's own rollback commit, signed with the same key, passes too.
                let rollback = try TestSupport.rewind(["rollback", "api", "--to", "HEAD~1", "--repo", h.repo], environment: ["REWIND_SIGNING_KEY": key])
                #expect(rollback.status == 0, "\(rollback.stderr)")
                try git(["-c", "gpg.ssh.allowedSignersFile=\(allowed)", "verify-commit", "HEAD"], in: h.repo)
                try h.waitHealthy("api", "1.0")
            }
        }
    }

    @Test func signaturePolicyAllChecksEveryNewCommit() throws {
        try withTemporaryDirectory { tmp in
            let key = tmp + "/signer"
            _ = try run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key])
            let pub = try String(contentsOfFile: key + ".pub", encoding: .utf8).split(separator: " ")
            let allowed = tmp + "/allowed_signers"
            try writeFile(allowed, "author@example.com namespaces=\"git\" \(pub[0]) \(pub[1])\n")
            try withReconciler(apps: [try execApp("api", version: "1.0")]) { h in
                try h.start()
                try h.waitHealthy("api", "1.0")
                h.stop()
                try h.writeApp(try execApp("api", version: "1.1"))
                let unsigned = try h.commit("api 1.1, unsigned")
                try h.writeApp(try execApp("api", version: "1.2"))
                try git(["add", "-A"], in: h.repo)
                try git(["-c", "gpg.format=ssh", "-c", "user.signingkey=\(key)", "commit", "-q", "-S", "-m", "api 1.2, signed"], in: h.repo)
                try h.start(["--verify", "all", "--allowed-signers", allowed])
                try h.waitUntil("the range is refused for its unsigned commit") {
                    ((try h.status()["refused"] as? [String: Any])?["message"] as? String)?.contains("commit \(unsigned.prefix(12)) is not signed") == true
                }
                #expect(try h.applied("api").version == "1.0")
            }
        }
    }

    @Test func tooManyFilesInAnAppDirectoryRefuseTheCommit() throws {
        try withReconciler(apps: [try execApp("api", version: "1.0")]) { h in
            try h.start(["--max-app-files", "5"])
            try h.waitUntil("the commit is refused") {
                let refused = try h.status()["refused"] as? [String: Any]
                return (refused?["details"] as? [String])?.contains { $0.contains("apps/api") && $0.contains("more than 5 files") } == true
            }
            #expect(try h.applied("api").version == nil)
        }
    }

    @Test func aFileOverTheBlobLimitRefusesTheCommit() throws {
        try withReconciler(apps: [try execApp("api", version: "1.0")]) { h in
            try h.write("apps/api/big.bin", String(repeating: "x", count: 5_000))
            try h.commit("a large file")
            try h.start(["--max-blob-size", "4096"])
            try h.waitUntil("the commit is refused") {
                let refused = try h.status()["refused"] as? [String: Any]
                return (refused?["details"] as? [String])?.contains { $0.contains("apps/api/big.bin") && $0.contains("over the limit of 4096") } == true
            }
            #expect(try h.applied("api").version == nil)
        }
    }
}
