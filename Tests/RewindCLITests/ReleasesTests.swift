import Foundation
import Testing
import TestSupport

@Suite struct ReleasesTests {
    @Test(arguments: ["api", "worker", "web"])
    func releasesEqualGitLogFirstParent(app: String) throws {
        try withFixtureRepo("three-apps") { repo in
            // A merge commit on main changes web through its second parent.
            try repo.git("checkout", "-q", "-b", "feature")
            try repo.commitChange("web tweak on a branch") { try writeFile($0 + "/apps/web/extra.txt", "x\n") }
            try repo.git("checkout", "-q", "main")
            try repo.commitChange("api 1.4.0") { try writeFile($0 + "/apps/api/notes.txt", "1.4\n") }
            try repo.git("merge", "-q", "--no-ff", "-m", "merge feature", "feature")
            let oracle = try repo.git("log", "--first-parent", "--format=%H", "--", "apps/\(app)").split(separator: "\n").map(String.init).reversed()
            #expect(try releaseCommits(repo, app: app) == Array(oracle))
        }
    }

    @Test func releasesShowVersionsKindsAndRollbacks() throws {
        try withFixtureRepo("three-apps") { repo in
            let before = try releaseCommits(repo, app: "api")
            #expect(before.count == 4)
            let result = try repo.rewind("rollback", "api", "--to", "#3", "--reason", "latency")
            #expect(result.status == 0, "\(result.stderr)")
            let json = try parseJSON(try repo.rewind("releases", "api", "--format", "json").stdout) as? [[String: Any]]
            let releases = try #require(json?.first?["releases"] as? [[String: Any]])
            #expect(releases.count == 5)
            #expect(releases[3]["rolledBackBy"] as? String == releases[4]["commit"] as? String)
            #expect(releases[4]["kind"] as? String == "rollback")
            #expect(releases[4]["versionBefore"] as? String == "1.3.0")
            #expect(releases[4]["version"] as? String == "1.2.0")
            #expect(releases[4]["target"] as? String == before[2])
            #expect(releases[0]["number"] as? Int == 1)
        }
    }

    @Test func plainGitRevertIsRecognisedAsRollback() throws {
        try withFixtureRepo("three-apps") { repo in
            let webRelease = repo.commits[2]
            try repo.git("revert", "--no-edit", webRelease)
            let json = try parseJSON(try repo.rewind("releases", "web", "--format", "json").stdout) as? [[String: Any]]
            let releases = try #require(json?.first?["releases"] as? [[String: Any]])
            #expect(releases.last?["kind"] as? String == "rollback")
            #expect(releases.last?["target"] as? String == webRelease)
            #expect(releases[1]["rolledBackBy"] as? String == releases.last?["commit"] as? String)
        }
    }

    @Test func cacheIsExtendedAndSafeToDelete() throws {
        try withFixtureRepo("three-apps") { repo in
            let first = try repo.rewind("releases", "--format", "json").stdout
            let cacheDir = repo.path + "/.git/rewind"
            let indexes = try FileManager.default.contentsOfDirectory(atPath: cacheDir).filter { $0.hasPrefix("releases-") }
            #expect(indexes.count == 1)
            #expect(FileManager.default.fileExists(atPath: "\(cacheDir)/\(indexes[0])/meta"))
            try repo.commitChange("api config") { try writeFile($0 + "/apps/api/config.env", "POOL=30\n") }
            let cached = try repo.rewind("releases", "--format", "json").stdout
            let uncached = try repo.rewind("releases", "--format", "json", "--no-cache").stdout
            #expect(cached == uncached)
            #expect(cached != first)
            try FileManager.default.removeItem(atPath: cacheDir)
            #expect(try repo.rewind("releases", "--format", "json").stdout == uncached)
            // A damaged index is ignored and rebuilt.
            let meta = "\(cacheDir)/\(indexes[0])/meta"
            try Data("garbage".utf8).write(to: URL(fileURLWithPath: meta))
            #expect(try repo.rewind("releases", "--format", "json").stdout == uncached)
            // A history rewritten under the index: rebuilt, not extended.
            try repo.git("reset", "-q", "--hard", "HEAD~2")
            try repo.commitChange("different history") { try writeFile($0 + "/apps/web/x.txt", "x\n") }
            #expect(try repo.rewind("releases", "--format", "json").stdout == (try repo.rewind("releases", "--format", "json", "--no-cache").stdout))
        }
    }

    @Test func showNamesTheAppsACommitChanged() throws {
        try withFixtureRepo("three-apps") { repo in
            let result = try repo.rewind("show", repo.commits[3], "--format", "json")
            let json = try #require(try parseJSON(result.stdout) as? [String: Any])
            let apps = try #require(json["apps"] as? [[String: Any]])
            #expect(apps.map { $0["app"] as? String } == ["api"])
            #expect(apps[0]["versionBefore"] as? String == "1.1.0")
            #expect(apps[0]["version"] as? String == "1.2.0")
            #expect((apps[0]["files"] as? [String])?.sorted() == ["apps/api/app.yaml", "apps/api/config.env"])
        }
    }
}
