import Foundation
import Testing
import SystemSupport
import TestSupport

/// The git host failing the way real hosts fail: it stalls, it resets
/// connections, it dies mid-transfer. Rewind answers within its deadlines,
/// never dies of it, and loses or duplicates nothing.
@Suite struct FaultTests {
    /// Waits for a spawned process; its exit code, or 128 + the signal that ended it.
    static func exitStatus(_ pid: pid_t, within seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return nil
    }

    /// fsck of a repository once nothing writes to it any more. git fsck
    /// is not safe against a concurrent push: a ref moved to a loose
    /// commit written after fsck's walk of the object store reads as
    /// "missing commit" (1 run in 200 of plain git push against git fsck
    /// here). So every writer (the reconciler, `rewind serve`) is stopped
    /// before this is called.
    static func expectIntact(_ repo: String) throws {
        let fsck = try TestSupport.run("/usr/bin/git", ["fsck", "--no-progress", "--no-dangling"], in: repo)
        #expect(fsck.status == 0 && fsck.stdout.isEmpty, "\(repo): \(fsck.stdout)\(fsck.stderr)")
    }

    @Test func aRollbackAgainstAStalledHostAnswersWithinTheDeadlineAndIsApplied() throws {
        try withRemote(apps: [try execApp("api", version: "1.0")]) { setup in
            let good = try threeReleases(setup)
            let h = setup.harness
            try h.start(["--fetch-interval", "200ms", "--git-idle-timeout", "1s"])
            try h.waitHealthy("api", "1.2")
            setup.daemon.kill()
            let stalled = try FaultyHost(.silent, port: setup.daemon.port)
            defer { stalled.stop() }
            let started = Date()
            let rollback = try setup.rewind(["rollback", "api", "--to", good, "--reason", "host stalled", "--git-idle-timeout", "1s"])
            let took = Date().timeIntervalSince(started)
            #expect(rollback.status == 0, "\(rollback.stderr)")
            #expect(rollback.stdout.contains("Queued, not pushed yet"), "\(rollback.stdout)")
            #expect(rollback.stderr.contains("idle deadline"), "\(rollback.stderr)")
            // One deadline (the fetch); the push is not tried against a host that just stalled.
            #expect(took < 10, "rollback took \(took) s against a 1 s idle deadline")
            // The running reconciler, whose own syncs stall too, applies it meanwhile.
            try h.waitHealthy("api", "1.1")
            try h.waitUntil("status says the sync stalled, and since when") {
                let remote = try h.status()["remote"] as? [String: Any]
                return (remote?["error"] as? String)?.contains("idle deadline") == true && remote?["failingSince"] != nil
            }
            #expect(stalled.connections >= 2)
            #expect(h.waitForExit(timeout: 0) == nil, "the reconciler is alive")
        }
    }

    @Test(arguments: [(SIGINT, Int32(130)), (SIGTERM, Int32(143))])
    func aSignalEndsACommandBlockedOnTheNetworkAtOnce(signal: Int32, expected: Int32) throws {
        let stalled = try FaultyHost(.silent)
        defer { stalled.stop() }
        let mirror = NSTemporaryDirectory() + "rewind-fault-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: mirror) }
        let pid = try Spawn.start(SpawnOptions(program: rewindBinary, arguments: ["sync", "--repo", "git://127.0.0.1:\(stalled.port)/deploy.git", "--mirror", mirror],
                                               environment: ProcessInfo.processInfo.environment))
        try waitFor("rewind sync is connected", timeout: 15) { stalled.connections >= 1 }
        let sent = Date()
        kill(pid, signal)
        let status = Self.exitStatus(pid, within: 5)
        #expect(status == expected, "exit status \(String(describing: status))")
        #expect(Date().timeIntervalSince(sent) < 1.0)
        let locks = FileManager.default.enumerator(atPath: mirror)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".lock") && !$0.hasSuffix("sync.lock") } ?? []
        #expect(locks.isEmpty, "\(locks)")
    }

    /// git daemon killed with its children at random moments while the
    /// reconciler fetches and pushes, an engineer pushes and rollbacks are
    /// written: afterwards nothing is lost, nothing is pushed twice.
    @Test func theHostKilledMidTransferManyTimesLosesAndDuplicatesNothing() throws {
        try withRemote(apps: [try execApp("api", version: "1.0"), try execApp("web", version: "1.0")]) { setup in
            let good = try threeReleases(setup)
            let h = setup.harness
            let newer = try TestSupport.git(["rev-parse", "main"], in: h.repo)
            try h.start(["--fetch-interval", "20ms"])
            try h.waitHealthy("api", "1.2")
            var generator = SystemRandomNumberGenerator()
            var engineerCommits: [String] = []
            var rollbacks: [String] = []
            for round in 0..<25 {
                if round % 5 == 0 {
                    let text = execAppYAML(version: "1.\(round + 10)")
                    engineerCommits.append(try RemoteSetup.engineerPushes("web 1.\(round + 10)", path: "apps/web/app.yaml", text: text, repo: h.repo, url: setup.url))
                }
                let target = round % 2 == 0 ? good : newer
                let writer = try Spawn.start(SpawnOptions(
                    program: rewindBinary,
                    arguments: ["rollback", "api", "--to", target, "--reason", "round \(round)", "--format", "json", "--repo", setup.url, "--mirror", h.root + "/cli-mirror",
                                "--git-idle-timeout", "2s", "--git-connect-timeout", "2s"],
                    environment: ProcessInfo.processInfo.environment.merging(["REWIND_ARTIFACT_ROOT": h.artifacts]) { _, b in b },
                    outputFile: h.root + "/round-\(round).json"))
                usleep(UInt32.random(in: 0...150_000, using: &generator))
                setup.daemon.kill()
                usleep(UInt32.random(in: 0...50_000, using: &generator))
                try setup.daemon.start()
                let status = Self.exitStatus(writer, within: 30)
                #expect(status != nil && status != 70 && (status ?? 0) < 128, "round \(round): rewind rollback ended with \(String(describing: status))")
                if let text = try? String(contentsOfFile: h.root + "/round-\(round).json", encoding: .utf8),
                   let commit = text.firstMatch(of: /"commit": "([0-9a-f]{40})"/)?.1 { rollbacks.append(String(commit)) }
            }
            #expect(h.waitForExit(timeout: 0) == nil, "the reconciler is alive")
            // Everything queued reaches the server once the host stays up.
            _ = try setup.rewind(["sync"], mirror: h.root + "/cli-mirror")
            try h.waitUntil("nothing is unpushed and the mirror agrees with the server", timeout: 60) {
                let unpushed = try h.status()["unpushed"] as? [Any] ?? []
                let server = try TestSupport.git(["rev-parse", "main"], in: setup.bare)
                let mirrored = try TestSupport.git(["rev-parse", "main"], in: h.mirror)
                return unpushed.isEmpty && mirrored == server
            }
            for commit in engineerCommits {
                #expect((try? TestSupport.git(["merge-base", "--is-ancestor", commit, "main"], in: setup.bare)) != nil, "engineer's \(commit) is lost")
            }
            // A rollback commit is on the server once, or was planned again (replaced) after the remote moved.
            let served = try setup.served()
            let replaced = (try? String(contentsOfFile: h.root + "/cli-mirror/rewind/replaced", encoding: .utf8)) ?? ""
            for commit in rollbacks {
                #expect(served.contains { $0.id == commit } || replaced.contains(commit), "rollback \(commit) is neither on the server nor replaced")
            }
            let reasons = served.compactMap { entry in
                (try? TestSupport.git(["log", "-1", "--format=%(trailers:key=Rewind-Reason,valueonly)", entry.id], in: setup.bare))?
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }.filter { !$0.isEmpty }
            #expect(Set(reasons).count == reasons.count, "a rollback was pushed twice: \(reasons)")
            #expect(h.stop() == 0, "the reconciler stops cleanly")
            for repo in [h.mirror, h.root + "/cli-mirror", setup.bare] { try Self.expectIntact(repo) }
        }
    }

    /// reconcile told to stop while its first sync stalls: it stops at
    /// once and starts nothing (it used to run a first pass and leave the
    /// apps it had just started behind).
    @Test func reconcileStoppedDuringAStalledFirstSyncStartsNothing() throws {
        try withRemote(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { setup in
            let h = setup.harness
            _ = try setup.rewind(["sync"])
            setup.daemon.kill()
            let stalled = try FaultyHost(.silent, port: setup.daemon.port)
            defer { stalled.stop() }
            let environment = ProcessInfo.processInfo.environment
            let pid = try Spawn.start(SpawnOptions(program: rewindBinary, arguments: ["reconcile", "--repo", setup.url, "--mirror", h.mirror,
                                                                                       "--state-dir", h.stateDir, "--artifact-root", h.artifacts],
                                                   environment: environment, outputFile: h.logFile))
            try waitFor("the first sync is under way", timeout: 15) { stalled.connections >= 1 }
            kill(pid, SIGTERM)
            let status = Self.exitStatus(pid, within: 5)
            #expect(status == 0, "exit status \(String(describing: status))\n\(h.log)")
            // An app's working directory is its files under the state directory.
            let orphans = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { name -> Int32? in
                guard let pid = Int32(name), let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(name)/cwd") else { return nil }
                return cwd.hasPrefix(h.stateDir) ? pid : nil
            }
            defer { for orphan in orphans { kill(orphan, SIGKILL) } }
            #expect(orphans.isEmpty, "processes left behind: \(orphans)")
        }
    }
}
