import Foundation
import Testing
import TestSupport

@Suite struct RollbackTests {
    @Test func rollbackDefaultsToThePreviousGoodRelease() throws {
        try withFixtureRepo("three-apps") { repo in
            let result = try repo.rewind("rollback", "api")
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("api: 1.3.0 -> 1.2.0"))
            #expect(try repo.git("rev-parse", "main:apps/api") == (try repo.git("rev-parse", "\(repo.commits[3]):apps/api")))
            // Everything else is untouched.
            #expect(try repo.git("diff", "--name-only", "main~1", "main").split(separator: "\n") == ["apps/api/app.yaml"])
            #expect(try repo.git("status", "--porcelain").isEmpty)
        }
    }

    /// Seed 002: running the rollback again produces the same result.
    @Test func aRepeatedDefaultRollbackWritesNothingAndSaysHowToGoFurther() throws {
        try withFixtureRepo("three-apps") { repo in
            let first = try repo.rewind("rollback", "api")
            #expect(first.status == 0, "\(first.stderr)")
            let rollback = try repo.tip()
            let again = try repo.rewind("rollback", "api")
            #expect(again.status == 0, "\(again.stderr)")
            #expect(again.stdout.contains("api is already rolled back: \(rollback.prefix(7))"), "\(again.stdout)")
            #expect(again.stdout.contains("set it to 1.2.0"))
            #expect(again.stdout.contains("rewind rollback api --to #2"), "\(again.stdout)")
            #expect(try repo.tip() == rollback)
            let json = try repo.rewind("rollback", "api", "--format", "json")
            #expect(json.status == 0)
            let object = try parseJSON(json.stdout) as? [String: Any]
            #expect(object?["result"] as? String == "unchanged")
            // Going further back is an explicit choice.
            let further = try repo.rewind("rollback", "api", "--to", "#1")
            #expect(further.status == 0, "\(further.stderr)")
            #expect(further.stdout.contains("api: 1.2.0 -> 1.0.0"))
            // A plain `git revert` is a rollback too.
            try repo.git("revert", "--no-edit", "HEAD")
            let afterRevert = try repo.rewind("rollback", "api")
            #expect(afterRevert.status == 0)
            #expect(afterRevert.stdout.contains("already rolled back"))
        }
    }

    /// Naming several apps: the ones already rolled back are left alone and
    /// said so, the others are rolled back.
    @Test func aDefaultRollbackOfSeveralAppsSkipsTheOnesRolledBackAlready() throws {
        try withFixtureRepo("three-apps") { repo in
            #expect(try repo.rewind("rollback", "api").status == 0)
            let both = try repo.rewind("rollback", "api", "web")
            #expect(both.status == 0, "\(both.stderr)")
            #expect(both.stdout.contains("web: 1.1.0 -> 1.0.0"), "\(both.stdout)")
            #expect(both.stdout.contains("left alone: api is already rolled back"))
            #expect(try repo.git("log", "-1", "--format=%B").contains("Rewind-App: web"))
            #expect(try !repo.git("log", "-1", "--format=%B").contains("Rewind-App: api"))
        }
    }

    @Test func rollbackToARevisionAndAll() throws {
        try withFixtureRepo("three-apps") { repo in
            let result = try repo.rewind("rollback", "--all", "--to", repo.commits[0], "--force")
            #expect(result.status == 0, "\(result.stderr)")
            for app in ["api", "worker", "web"] {
                #expect(try repo.git("rev-parse", "main:apps/\(app)") == (try repo.git("rev-parse", "\(repo.commits[0]):apps/\(app)")))
            }
            let message = try repo.git("log", "-1", "--format=%B")
            #expect(message.contains("Rewind-App: api\nRewind-App: worker\nRewind-App: web"))
            #expect(message.contains("Rewind-Forced: worker migration 0002_drop_legacy_jobs is irreversible"))
            let again = try repo.rewind("rollback", "--all", "--to", repo.commits[0])
            #expect(again.status == 0)
            #expect(again.stdout.contains("already rolled back"))
        }
    }

    @Test func dryRunWritesNothing() throws {
        try withFixtureRepo("three-apps") { repo in
            let before = try repo.snapshot()
            let result = try repo.rewind("rollback", "api", "--dry-run")
            #expect(result.status == 0)
            #expect(result.stdout.contains("Rewind-Action: rollback"))
            #expect(try repo.snapshot() == before)
        }
    }

    @Test func worksOnABareRepository() throws {
        try withFixtureRepo("three-apps", bare: true) { repo in
            let result = try repo.rewind("rollback", "api", "--to", "#3")
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try repo.git("rev-parse", "main:apps/api") == (try repo.git("rev-parse", "\(repo.commits[3]):apps/api")))
        }
    }

    @Test func pinHoldsAnAppAndCheckCatchesChanges() throws {
        try withFixtureRepo("three-apps") { repo in
            let pin = try repo.rewind("pin", "api", "--to", "#3", "--reason", "hold for incident 42")
            #expect(pin.status == 0, "\(pin.stderr)")
            let pinCommit = try repo.tip()
            #expect(try repo.git("show", "main:rewind.pins.yaml").contains("api:"))
            let held = try repo.rewind("rollback", "api", "--to", "#1")
            #expect(held.status == 1)
            #expect(held.stderr.contains("held by a pin"))
            // An image-update bot bumps the pinned app.
            let bot = try repo.commitChange("bump api") { try writeFile($0 + "/apps/api/config.env", "POOL=99\n") }
            let check = try repo.rewind("check", "\(pinCommit)..main")
            #expect(check.status == 3)
            #expect(check.stderr.contains(String(bot.prefix(7))) && check.stderr.contains("api"))
            try repo.git("reset", "-q", "--hard", pinCommit)
            #expect(try repo.rewind("unpin", "api").status == 0)
            try repo.commitChange("bump api") { try writeFile($0 + "/apps/api/config.env", "POOL=99\n") }
            #expect(try repo.rewind("check", "\(pinCommit)..main").status == 0)
            let json = try parseJSON(try repo.rewind("releases", "api", "--format", "json").stdout) as? [[String: Any]]
            let kinds = (json?.first?["releases"] as? [[String: Any]])?.compactMap { $0["kind"] as? String }
            #expect(kinds?.suffix(3) == ["pin", "unpin", "deploy"])
        }
    }

    @Test func checkedOutWorkingTreeFollowsTheCommit() throws {
        try withFixtureRepo("three-apps") { repo in
            #expect(try repo.rewind("rollback", "api", "--to", "#1").status == 0)
            #expect(try repo.git("status", "--porcelain").isEmpty)
            let onDisk = try String(contentsOfFile: repo.path + "/apps/api/app.yaml", encoding: .utf8)
            #expect(onDisk.contains("version: 1.0.0"))
        }
    }

    /// The checkout after a commit looks only at the files it changes:
    /// added and removed files and directories follow, and a local change
    /// to another file stays as it was.
    @Test func checkedOutWorkingTreeFollowsAddedAndRemovedFiles() throws {
        try withFixtureRepo("three-apps") { repo in
            try repo.commitChange("add api notes") { root in
                try FileManager.default.createDirectory(atPath: root + "/apps/api/extra", withIntermediateDirectories: true)
                try writeFile(root + "/apps/api/extra/notes.txt", "kept in git\n")
            }
            try writeFile(repo.path + "/apps/web/local.txt", "not committed\n")
            let revert = try repo.rewind("revert", "HEAD")
            #expect(revert.status == 0, "\(revert.stderr)")
            #expect(!FileManager.default.fileExists(atPath: repo.path + "/apps/api/extra"))
            #expect(try repo.git("status", "--porcelain") == "?? apps/web/local.txt")
            let again = try repo.rewind("revert", "HEAD")
            #expect(again.status == 0, "\(again.stderr)")
            #expect(try String(contentsOfFile: repo.path + "/apps/api/extra/notes.txt", encoding: .utf8) == "kept in git\n")
            #expect(try repo.git("status", "--porcelain") == "?? apps/web/local.txt")
            #expect(try repo.git("diff", "--stat", "HEAD~2", "HEAD").isEmpty)
        }
    }

    @Test func initCreatesAValidRepositoryAndRefusesNonEmpty() throws {
        try withTemporaryDirectory { tmp in
            let created = try rewind(["init", tmp + "/deploy"])
            #expect(created.status == 0, "\(created.stderr)")
            #expect(try git(["status", "--porcelain"], in: tmp + "/deploy").isEmpty)
            let valid = try rewind(["validate", "--repo", tmp + "/deploy"])
            #expect(valid.status == 0, "\(valid.stderr)")
            #expect(try git(["ls-files", "-s", "apps/web/deploy.sh"], in: tmp + "/deploy").hasPrefix("100755"))
            let again = try rewind(["init", tmp + "/deploy"])
            #expect(again.status == 1)
            #expect(again.stderr.contains("not empty"))
        }
    }

    @Test func templateMatchesTheEmbeddedCopy() throws {
        let check = try run("/usr/bin/env", ["python3", packageRoot + "/scripts/embed-template.py", "--check"])
        #expect(check.status == 0, "deploy-repo-template/ and the copy in the binary differ: run make template")
    }
}
