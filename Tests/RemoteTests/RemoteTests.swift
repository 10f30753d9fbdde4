import Foundation
import Testing
import TestSupport
@testable import Server

/// A harness whose repository is served by `git daemon` from a bare clone;
/// the harness's working tree plays the engineer who pushes with the git CLI.
private final class RemoteSetup: @unchecked Sendable {
    let harness: ReconcilerHarness
    let daemon: GitDaemon
    let bare: String
    var url: String { daemon.url("deploy.git") }

    init(apps: [HarnessApp]) throws {
        harness = try ReconcilerHarness(apps: apps)
        let served = harness.root + "/served"
        try FileManager.default.createDirectory(atPath: served, withIntermediateDirectories: true)
        bare = served + "/deploy.git"
        try git(["clone", "-q", "--bare", harness.repo, bare], in: harness.root)
        try git(["remote", "add", "origin", bare], in: harness.repo)
        daemon = try GitDaemon(base: served)
        harness.remoteURL = url
    }

    /// Commits in the engineer's working tree and pushes with the git CLI,
    /// rebasing on what others pushed meanwhile.
    @discardableResult
    func engineerCommits(_ message: String, path: String, text: String) throws -> String {
        try git(["pull", "-q", "--rebase", "origin", "main"], in: harness.repo)
        try harness.write(path, text)
        let commit = try harness.commit(message)
        for _ in 0..<50 {
            if (try? git(["push", "-q", url, "HEAD:main"], in: harness.repo)) != nil { return try git(["rev-parse", "HEAD"], in: harness.repo) }
            try git(["pull", "-q", "--rebase", url, "main"], in: harness.repo)
        }
        throw TestFailure("the engineer could not push \(commit)")
    }

    /// `rewind ARGS --repo URL --mirror MIRROR`.
    func rewind(_ arguments: [String], mirror: String? = nil, environment: [String: String] = [:]) throws -> ProcessResult {
        try TestSupport.rewind(arguments + ["--repo", url, "--mirror", mirror ?? harness.mirror],
                               environment: environment.merging(["REWIND_ARTIFACT_ROOT": harness.artifacts]) { a, _ in a })
    }

    /// Commits on the served branch, newest first, with their subjects.
    func served() throws -> [(id: String, subject: String)] {
        try git(["log", "--format=%H %s", "main"], in: bare).split(separator: "\n").map { line in
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            return (parts[0], parts.count > 1 ? parts[1] : "")
        }
    }

    func close() {
        harness.close()
        daemon.stop()
    }
}

private func withRemote<T>(apps: [HarnessApp], _ body: (RemoteSetup) throws -> T) throws -> T {
    let setup = try RemoteSetup(apps: apps)
    defer { setup.close() }
    return try body(setup)
}

/// Two exec apps at 1.0, then api at 1.1 and 1.2; returns the 1.1 commit.
private func threeReleases(_ setup: RemoteSetup) throws -> String {
    try setup.harness.writeApp(execApp("api", version: "1.1"))
    let good = try setup.harness.commit("api 1.1")
    try setup.harness.writeApp(execApp("api", version: "1.2"))
    try setup.harness.commit("api 1.2")
    try git(["push", "-q", setup.url, "main"], in: setup.harness.repo)
    return good
}

@Suite(.serialized) struct RemoteRepositoryTests {
    @Test func tenRollbackWritersAndAnEngineerLoseNothing() throws {
        try withRemote(apps: [try execApp("api", version: "1.0"), try execApp("web", version: "1.0")]) { setup in
            let good = try threeReleases(setup)
            let results = ResultsBox()
            let engineerCommit = ResultsBox()
            DispatchQueue.concurrentPerform(iterations: 11) { i in
                if i == 10 {
                    let commit = try? setup.engineerCommits("web 1.1 by an engineer", path: "apps/web/app.yaml", text: execAppYAML(version: "1.1"))
                    engineerCommit.append(commit ?? "failed")
                    return
                }
                let result = try? setup.rewind(["rollback", "api", "--to", good, "--reason", "writer \(i)"], mirror: setup.harness.root + "/mirror-\(i)")
                results.append("\(result?.status ?? -1)|\(result?.stdout ?? "")|\(result?.stderr ?? "")")
            }
            for result in results.all { #expect(result.hasPrefix("0|"), "\(result)") }
            let served = try setup.served()
            let rollbacks = served.filter { $0.subject.hasPrefix("Roll back api") }
            #expect(rollbacks.count == 1, "\(served)")
            let engineer = try #require(engineerCommit.all.first)
            #expect(try git(["merge-base", "--is-ancestor", engineer, "main"], in: setup.bare).isEmpty)
            // Every commit ever pushed is still on main: no force-push happened.
            #expect(try git(["fsck", "--no-dangling"], in: setup.bare).isEmpty)
            #expect(try git(["show", "main:apps/api/app.yaml"], in: setup.bare).contains("1.1"))
            #expect(try git(["show", "main:apps/web/app.yaml"], in: setup.bare).contains("1.1"))
            #expect(results.all.filter { $0.contains("Pushed to") }.count == 1, "\(results.all)")
        }
    }

    @Test func rollbackWhileTheHostIsDownIsAppliedQueuedAndPushedOnce() throws {
        try withRemote(apps: [try execApp("api", version: "1.0")]) { setup in
            let good = try threeReleases(setup)
            let h = setup.harness
            try h.start(["--fetch-interval", "1s"])
            try h.waitHealthy("api", "1.2")
            setup.daemon.stop()
            let rollback = try setup.rewind(["rollback", "api", "--to", good, "--reason", "host down"])
            #expect(rollback.status == 0, "\(rollback.stderr)")
            #expect(rollback.stdout.contains("Queued, not pushed yet"), "\(rollback.stdout)")
            // The platform is restored from the mirror while the host is down.
            try h.waitHealthy("api", "1.1")
            let unpushed = try h.status()["unpushed"] as? [[String: Any]] ?? []
            #expect(unpushed.count == 1)
            #expect((unpushed.first?["error"] as? String)?.contains("connect") == true, "\(unpushed)")
            // Rewind restarts, then the host comes back.
            h.stop()
            try setup.daemon.start()
            try h.start(["--fetch-interval", "1s"])
            try h.waitUntil("the queued rollback reached the server", timeout: 30) {
                try setup.served().first?.subject.hasPrefix("Roll back api") == true
            }
            try h.waitUntil("nothing is unpushed", timeout: 10) { (try h.status()["unpushed"] as? [Any])?.isEmpty == true }
            #expect(try setup.served().filter { $0.subject.hasPrefix("Roll back api") }.count == 1)
            // The reconciler's notes reach the server too.
            try h.waitUntil("notes are pushed", timeout: 15) {
                (try? git(["notes", "--ref=rewind", "list"], in: setup.bare).isEmpty) == false
            }
        }
    }

    @Test func aQueuedRollbackIsPlannedAgainWhenTheRemoteMoved() throws {
        try withRemote(apps: [try execApp("api", version: "1.0"), try execApp("web", version: "1.0")]) { setup in
            let good = try threeReleases(setup)
            #expect(try setup.rewind(["releases", "api"]).status == 0)
            setup.daemon.stop()
            let queued = try setup.rewind(["rollback", "api", "--to", good, "--format", "json"])
            #expect(queued.status == 0, "\(queued.stderr)")
            let queuedCommit = try #require(try git(["rev-parse", "main"], in: setup.harness.mirror) as String?)
            let down = try setup.rewind(["sync"])
            #expect(down.status == 6)
            #expect(down.stdout.contains("1 commit(s) still unpushed"), "\(down.stdout)")
            // Meanwhile an engineer changes web straight on the server.
            try git(["pull", "-q", "--rebase", setup.bare, "main"], in: setup.harness.repo)
            try setup.harness.write("apps/web/app.yaml", execAppYAML(version: "1.1"))
            let engineer = try setup.harness.commit("web 1.1")
            try git(["push", "-q", setup.bare, "HEAD:main"], in: setup.harness.repo)
            try setup.daemon.start()
            let sync = try setup.rewind(["sync", "--format", "json"])
            #expect(sync.status == 0, "\(sync.stderr)")
            #expect(sync.stdout.contains("\"replanned\""), "\(sync.stdout)")
            let served = try setup.served()
            #expect(served.first?.subject.hasPrefix("Roll back api") == true, "\(served)")
            #expect(served.dropFirst().first?.id == engineer)
            #expect(!served.contains { $0.id == queuedCommit })
            #expect(try git(["show", "main:apps/api/app.yaml"], in: setup.bare).contains("1.1"))
            #expect(try String(contentsOfFile: setup.harness.mirror + "/rewind/replaced", encoding: .utf8).contains(queuedCommit))
        }
    }

    @Test func aRollbackSomeoneElseMadeMeanwhileIsNotDuplicated() throws {
        try withRemote(apps: [try execApp("api", version: "1.0")]) { setup in
            let good = try threeReleases(setup)
            #expect(try setup.rewind(["releases", "api"]).status == 0)
            setup.daemon.stop()
            #expect(try setup.rewind(["rollback", "api", "--to", good]).status == 0)
            // Another Rewind (its own mirror) rolled back the same way.
            try setup.daemon.start()
            let other = try setup.rewind(["rollback", "api", "--to", good], mirror: setup.harness.root + "/other-mirror")
            #expect(other.stdout.contains("Pushed"), "\(other.stdout)")
            let sync = try setup.rewind(["releases", "api"])
            #expect(sync.status == 0)
            #expect(try setup.served().filter { $0.subject.hasPrefix("Roll back api") }.count == 1)
            let status = try TestSupport.rewind(["status", "--repo", setup.harness.mirror, "--format", "json"])
            let object = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
            #expect((object?["unpushed"] as? [Any])?.isEmpty == true, "\(status.stdout)")
            #expect((object?["remote"] as? [String: Any])?["error"] is NSNull)
        }
    }

    @Test func protectedBranchGetsAProposalBranch() throws {
        try withRemote(apps: [try execApp("api", version: "1.0")]) { setup in
            let good = try threeReleases(setup)
            let before = try setup.served().first?.id
            let result = try setup.rewind(["rollback", "api", "--to", good, "--proposal-prefix", "rewind/rollback-"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("on branch rewind/rollback-api-"), "\(result.stdout)")
            #expect(try setup.served().first?.id == before)
            let branches = try git(["for-each-ref", "--format=%(refname:short)", "refs/heads/rewind/"], in: setup.bare)
            #expect(branches.hasPrefix("rewind/rollback-api-"), "\(branches)")
        }
    }

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

    @Test func signaturePolicyHeadRefusesUnsignedTipsAndAcceptsAllowedSigners() throws {
        try withTemporaryDirectory { tmp in
            let key = tmp + "/signer"
            _ = try run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "signer", "-f", key])
            let pub = try String(contentsOfFile: key + ".pub", encoding: .utf8).split(separator: " ")
            let allowed = tmp + "/allowed_signers"
            try writeFile(allowed, "author@example.com namespaces=\"git\" \(pub[0]) \(pub[1])\n")
            try withReconciler(apps: [try execApp("api", version: "1.0")]) { h in
                try h.start(["--verify", "head", "--allowed-signers", allowed])
                try h.waitUntil("the unsigned tip is refused") {
                    ((try h.status()["refused"] as? [String: Any])?["message"] as? String)?.contains("is not signed") == true
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
            #expect(try h.applied("api").version == "1.0")
            #expect(try post(body, ["X-Hub-Signature-256": signature, "X-GitHub-Delivery": "b"]) == 202)
            #expect(try post(body, ["X-Hub-Signature-256": signature, "X-GitHub-Delivery": "b"]) == 200)
            try h.waitHealthy("api", "1.1", timeout: 20)
            #expect(!h.log.contains("hook secret value"))
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

/// Strings collected from concurrent work.
private final class ResultsBox: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [String] = []
    func append(_ value: String) { lock.lock(); values.append(value); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return values }
}

import HTTPTypes
import SystemSupport

enum HTTPFieldsForTest {
    static func make(_ values: [String: String]) -> HTTPFields {
        var fields = HTTPFields()
        for (name, value) in values { if let name = HTTPField.Name(name) { fields[name] = value } }
        return fields
    }
}
