import Foundation
import SystemSupport
import Testing
import TestSupport

/// Pushing rollbacks to a remote: races, a host that is down, re-planning, notes, protected branches.
@Suite(.serialized) struct PushTests {
    @Test func tenRollbackWritersAndAnEngineerLoseNothing() throws {
        try withRemote(apps: [try execApp("api", version: "1.0"), try execApp("web", version: "1.0")]) { setup in
            let good = try threeReleases(setup)
            let results = ResultsBox()
            let engineerCommit = ResultsBox()
            let (url, repo, root, artifacts) = (setup.url, setup.harness.repo, setup.harness.root, setup.harness.artifacts)
            DispatchQueue.concurrentPerform(iterations: 11) { i in
                if i == 10 {
                    let commit = try? RemoteSetup.engineerPushes("web 1.1 by an engineer", path: "apps/web/app.yaml", text: execAppYAML(version: "1.1"), repo: repo, url: url)
                    engineerCommit.append(commit ?? "failed")
                    return
                }
                let result = try? RemoteSetup.rewind(["rollback", "api", "--to", good, "--reason", "writer \(i)"], url: url, mirror: root + "/mirror-\(i)", artifacts: artifacts)
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

    /// Twenty writers with the default target, each with its own mirror:
    /// one commit, and the losers plan again against the release they set
    /// out to undo, finding it rolled back.
    @Test func twentyDefaultWritersThroughAGitDaemonMakeOneCommit() throws {
        try withRemote(apps: [try execApp("api", version: "1.0")]) { setup in
            _ = try threeReleases(setup)
            let results = ResultsBox()
            let (url, root, artifacts) = (setup.url, setup.harness.root, setup.harness.artifacts)
            DispatchQueue.concurrentPerform(iterations: 20) { i in
                let result = try? RemoteSetup.rewind(["rollback", "api"], url: url, mirror: root + "/mirror-\(i)", artifacts: artifacts)
                results.append("\(result?.status ?? -1)|\(result?.stdout ?? "")|\(result?.stderr ?? "")")
            }
            for result in results.all { #expect(result.hasPrefix("0|"), "\(result)") }
            let rollbacks = try setup.served().filter { $0.subject.hasPrefix("Roll back api") }
            #expect(rollbacks.count == 1, "\(rollbacks)")
            #expect(try git(["show", "main:apps/api/app.yaml"], in: setup.bare).contains("version: \"1.1\""), "\(results.all)")
            // The writers that lost say so, in any of the ways a loser can learn it;
            // writers that planned in the same second wrote the very same commit.
            let losers = results.all.filter { $0.contains("already rolled back") || $0.contains("needs no commit") }
            let same = results.all.filter { $0.contains("The remote has this commit already") }
            #expect(losers.count + same.count == 19, "\(results.all.filter { !$0.contains("already rolled back") && !$0.contains("needs no commit") })")
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
            // Rewind restarts while the host is still down; then the host comes back.
            h.stop()
            try h.start(["--fetch-interval", "1s"])
            try h.waitHealthy("api", "1.1")
            #expect(try setup.served().first?.subject.hasPrefix("Roll back api") == false)
            try setup.daemon.start()
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

    /// A server that refuses the push (a hook) while nobody moves the branch
    /// is not a lost race: the sync says the server's reason, once, and
    /// keeps the commit queued until the server takes it.
    @Test func aPushTheServerRefusesIsReportedWithItsReasonNotRetried() throws {
        try withRemote(apps: [try execApp("api", version: "1.0")]) { setup in
            let good = try threeReleases(setup)
            let calls = setup.harness.root + "/hook-calls"
            let hook = setup.bare + "/hooks/pre-receive"
            try writeFile(hook, "#!/bin/sh\necho called >> '\(calls)'\necho 'deploys are frozen' >&2\nexit 1\n")
            #expect(chmod(hook, 0o755) == 0)
            let rollback = try setup.rewind(["rollback", "api", "--to", good])
            #expect(rollback.status == 0, "\(rollback.stderr)")
            #expect(rollback.stdout.contains("Queued, not pushed yet"), "\(rollback.stdout)")
            try writeFile(calls, "")
            let sync = try setup.rewind(["sync"])
            #expect(sync.status == 6)
            let said = sync.stdout + sync.stderr
            #expect(said.contains("main: pre-receive hook declined") && said.contains("not a race"), "\(said)")
            #expect(!said.contains("kept moving"), "\(said)")
            #expect(try String(contentsOfFile: calls, encoding: .utf8).split(separator: "\n").count == 1, "one push: the remote did not move, so nothing was retried")
            #expect(try setup.served().first?.subject.hasPrefix("Roll back api") == false)
            // The server takes it once its hook allows it.
            try FileManager.default.removeItem(atPath: hook)
            let later = try setup.rewind(["sync"])
            #expect(later.status == 0, "\(later.stdout)\(later.stderr)")
            #expect(try setup.served().filter { $0.subject.hasPrefix("Roll back api") }.count == 1)
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

    @Test func notesFromTwoWritersAreMergedNotOverwritten() throws {
        try withRemote(apps: [try execApp("api", version: "1.0")]) { setup in
            _ = try threeReleases(setup)
            #expect(try setup.rewind(["sync"]).status == 0)
            let commits = try git(["rev-list", "main"], in: setup.bare).split(separator: "\n").map(String.init)
            // Another writer's notes reach the server; Rewind's own are in its mirror.
            try git(["notes", "--ref=rewind", "add", "-m", "healthy app=api by=other", commits[0]], in: setup.bare)
            try git(["notes", "--ref=rewind", "add", "-m", "applied app=api by=other", commits[1]], in: setup.bare)
            try git(["notes", "--ref=rewind", "add", "-m", "healthy app=api by=mirror", commits[0]], in: setup.harness.mirror)
            try git(["notes", "--ref=rewind", "add", "-m", "applied app=api by=mirror", commits[2]], in: setup.harness.mirror)
            let sync = try setup.rewind(["sync"])
            #expect(sync.status == 0, "\(sync.stdout)\(sync.stderr)")
            let first = try git(["notes", "--ref=rewind", "show", commits[0]], in: setup.bare)
            #expect(first.contains("by=other") && first.contains("by=mirror"), "\(first)")
            #expect(try git(["notes", "--ref=rewind", "show", commits[1]], in: setup.bare).contains("by=other"))
            #expect(try git(["notes", "--ref=rewind", "show", commits[2]], in: setup.bare).contains("by=mirror"))
            // The merge keeps both histories: the other writer's notes commit is an ancestor.
            #expect(try git(["rev-list", "--parents", "-1", "refs/notes/rewind"], in: setup.bare).split(separator: " ").count == 3)
        }
    }

    /// Incident reports travel like the outcome notes: pushed from the
    /// mirror, fetched from the server; written on both sides, the mirror
    /// keeps its own report (a report is never spliced with another).
    @Test func incidentReportsArePushedAndFetched() throws {
        try withRemote(apps: [try execApp("api", version: "1.0")]) { setup in
            _ = try threeReleases(setup)
            #expect(try setup.rewind(["sync"]).status == 0)
            let commits = try git(["rev-list", "main"], in: setup.bare).split(separator: "\n").map(String.init)
            try git(["notes", "--ref=rewind-incident", "add", "-m", "# Incident: from the mirror", commits[0]], in: setup.harness.mirror)
            try git(["notes", "--ref=rewind-incident", "add", "-m", "# Incident: from the server", commits[1]], in: setup.bare)
            try git(["notes", "--ref=rewind-incident", "add", "-m", "# Incident: the server's own view", commits[0]], in: setup.bare)
            let sync = try setup.rewind(["sync"])
            #expect(sync.status == 0, "\(sync.stdout)\(sync.stderr)")
            #expect(try git(["notes", "--ref=rewind-incident", "show", commits[0]], in: setup.bare) == "# Incident: from the mirror")
            #expect(try git(["notes", "--ref=rewind-incident", "show", commits[1]], in: setup.bare) == "# Incident: from the server")
            #expect(try git(["notes", "--ref=rewind-incident", "show", commits[1]], in: setup.harness.mirror) == "# Incident: from the server")
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
}
