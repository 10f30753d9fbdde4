import Foundation
import Testing
import SystemSupport
import TestSupport

/// `rewind serve` following a repository over https (nginx, git
/// http-backend) and over ssh (sshd), with the host killed with its
/// children at random moments while the API writes rollbacks, the
/// reconciler pushes notes and an engineer pushes: afterwards serve is
/// alive, server and mirror agree, nothing is lost or pushed twice.
@Suite struct ServeFaultTests {
    enum Host: String, CaseIterable { case https, ssh }

    /// A killable host serving `bare`, the URL to reach it and rewind's options for it.
    final class Served {
        let url: String
        let options: [String]
        let kill: () -> Void
        let start: () throws -> Void
        let stop: () -> Void

        init(_ host: Host, tmp: String, served: String) throws {
            switch host {
            case .https:
                let server = try HTTPSGitServer(directory: tmp + "/nginx", base: served)
                try writeFile(tmp + "/token", server.token + "\n")
                url = server.url("deploy.git")
                options = ["--git-ca-file", server.certificate, "--git-username", server.username, "--git-token-file", tmp + "/token"]
                kill = server.kill
                start = server.start
                stop = server.stop
            case .ssh:
                let server = try SSHServer(directory: tmp + "/sshd")
                try writeFile(tmp + "/known_hosts", try server.knownHostsLine())
                let user = ProcessInfo.processInfo.environment["USER"] ?? "root"
                url = "ssh://\(user)@127.0.0.1:\(server.port)\(served)/deploy.git"
                options = ["--ssh-key", server.userKey, "--known-hosts", tmp + "/known_hosts"]
                kill = server.kill
                start = server.start
                stop = server.stop
            }
        }
    }

    @Test(arguments: Host.allCases)
    func theHostKilledMidTransferLosesAndDuplicatesNothing(host: Host) throws {
        let h = try ReconcilerHarness(apps: [try execApp("api", version: "1.0"), try execApp("web", version: "1.0")])
        defer { h.close() }
        let served = h.root + "/served"
        try FileManager.default.createDirectory(atPath: served, withIntermediateDirectories: true)
        let bare = served + "/deploy.git"
        try h.writeApp(execApp("api", version: "1.1"))
        let good = try h.commit("api 1.1")
        try h.writeApp(execApp("api", version: "1.2"))
        let newer = try h.commit("api 1.2")
        try git(["clone", "-q", "--bare", h.repo, bare], in: h.root)
        let server = try Served(host, tmp: h.root, served: served)
        defer { server.stop() }
        h.remoteURL = server.url
        let token = "soak-\(UUID().uuidString)"
        try writeFile(h.root + "/api-token", token + "\n")
        let address = try h.startServe(["--fetch-interval", "20ms", "--api-token-file", h.root + "/api-token", "--git-idle-timeout", "3s", "--git-connect-timeout", "3s"] + server.options)
        let port = try #require(address.split(separator: ":").last.flatMap { Int($0) })
        try h.waitHealthy("api", "1.2")
        var generator = SystemRandomNumberGenerator()
        var engineerCommits: [String] = []
        var written: [String] = []
        for round in 0..<25 {
            if round % 3 == 0 {
                // The engineer pushes straight into the served repository.
                engineerCommits.append(try RemoteSetup.engineerPushes("web 1.\(round + 10)", path: "apps/web/app.yaml", text: execAppYAML(version: "1.\(round + 10)"),
                                                                      repo: h.repo, url: bare))
            }
            let body = Array(#"{"to": "\#(round % 2 == 0 ? good : newer)", "reason": "round \#(round)"}"#.utf8)
            let response = try Loopback.request("POST", host: "127.0.0.1", port: port, path: "/api/v1/apps/api/rollback", body: body,
                                                headers: ["Authorization": "Bearer \(token)"], timeoutMilliseconds: 30_000)
            #expect(response.status == 200, "round \(round): \(response.status) \(response.body.prefix(300))")
            if let commit = response.body.firstMatch(of: /"commit" ?: ?"([0-9a-f]{40})"/)?.1 { written.append(String(commit)) }
            usleep(UInt32.random(in: 0...150_000, using: &generator))
            server.kill()
            usleep(UInt32.random(in: 0...100_000, using: &generator))
            try server.start()
        }
        #expect(h.waitForExit(timeout: 0) == nil, "rewind serve is alive")
        try h.waitUntil("nothing is unpushed and the mirror agrees with the server", timeout: 90) {
            let unpushed = try h.status()["unpushed"] as? [Any] ?? []
            let server = try git(["rev-parse", "main"], in: bare)
            let mirrored = try git(["rev-parse", "main"], in: h.mirror)
            return unpushed.isEmpty && mirrored == server
        }
        for commit in engineerCommits {
            #expect((try? git(["merge-base", "--is-ancestor", commit, "main"], in: bare)) != nil, "the engineer's \(commit) is lost")
        }
        let replaced = (try? String(contentsOfFile: h.mirror + "/rewind/replaced", encoding: .utf8)) ?? ""
        let onServer = try git(["rev-list", "main"], in: bare)
        for commit in written {
            #expect(onServer.contains(commit) || replaced.contains(commit), "rollback \(commit) is neither on the server nor replaced")
        }
        let reasons = try git(["log", "--format=%(trailers:key=Rewind-Reason,valueonly)", "main"], in: bare)
            .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        #expect(Set(reasons).count == reasons.count, "a rollback was pushed twice: \(reasons)")
        #expect(h.stop() == 0, "rewind serve stops cleanly")
        for repo in [h.mirror, bare] { try FaultTests.expectIntact(repo) }
    }
}
