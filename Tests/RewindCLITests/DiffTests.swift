import Foundation
import Testing
import TestSupport

/// Diffs before a rollback, and between two releases; git's own diff is the oracle.
@Suite struct DiffTests {
    @Test func aDryRunShowsTheDiffAndTheGuardsAndWritesNothing() throws {
        try withFixtureRepo("three-apps") { repo in
            let tip = try repo.tip()
            let result = try repo.rewind("rollback", "api", "--dry-run")
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try repo.tip() == tip)
            // The target: api 1.2.0 (fixture commit 4).
            let oracle = try repo.git("diff", "--no-color", tip, repo.commits[3], "--", "apps/api")
            #expect(result.stdout.contains(oracle), "git's diff:\n\(oracle)\nin:\n\(result.stdout)")
            #expect(result.stdout.contains("Guards checked:") && result.stdout.contains("ok: artifact of api 1.2.0 is present"), "\(result.stdout)")
            #expect(result.stdout.contains("ok: no irreversible migration is crossed"))
            #expect(!result.stdout.contains("\u{1B}["), "no colour when piped")
            let json = try repo.rewind("rollback", "api", "--dry-run", "--format", "json")
            let object = try #require(try parseJSON(json.stdout) as? [String: Any])
            let diffs = try #require(object["diffs"] as? [[String: Any]])
            #expect(diffs.count == 1 && diffs[0]["app"] as? String == "api" && (diffs[0]["diff"] as? String).map { oracle.hasPrefix($0.trimmingCharacters(in: .newlines)) } == true)
            #expect((object["guardsChecked"] as? [String])?.isEmpty == false)
            // A written rollback shows what it changed too.
            let written = try repo.rewind("rollback", "api")
            #expect(written.stdout.contains(oracle), "\(written.stdout)")
        }
    }

    @Test func diffBetweenTwoReleasesOfAnApp() throws {
        try withFixtureRepo("three-apps") { repo in
            let result = try repo.rewind("diff", "api#1", "api#3", "api")
            #expect(result.status == 0, "\(result.stderr)")
            let releases = try parseJSON(try repo.rewind("releases", "api", "--format", "json").stdout)
            let list = try #require((releases as? [[String: Any]])?.first?["releases"] as? [[String: Any]])
            let first = try #require(list.first { $0["number"] as? Int == 1 }?["commit"] as? String)
            let third = try #require(list.first { $0["number"] as? Int == 3 }?["commit"] as? String)
            #expect(result.stdout.contains(try repo.git("diff", "--no-color", first, third, "--", "apps/api")), "\(result.stdout)")
            #expect(result.stdout.hasPrefix("api: 1.0.0 -> 1.2.0"), "\(result.stdout)")
            // Every app that differs, without an app; nothing for an unchanged one.
            let all = try repo.rewind("diff", repo.commits[0], "main")
            #expect(all.stdout.contains("api:") && all.stdout.contains("web:") && all.stdout.contains("worker:"), "\(all.stdout)")
            let none = try repo.rewind("diff", repo.commits[5], repo.commits[6], "api")
            #expect(none.status == 0 && none.stdout.contains("No app changes"), "\(none.stdout)")
            #expect(try repo.rewind("diff", "api#1", "api#99").status == 4)
        }
    }
}
