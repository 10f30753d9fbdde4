import Foundation
import Testing
import TestSupport

/// The conventions a kubectl or helm user expects.
@Suite struct ConventionsTests {
    @Test func aMisspeltCommandGetsAGuess() throws {
        let result = try rewind(["rolback", "api"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("unknown command 'rolback'; did you mean 'rollback'?"), "\(result.stderr)")
        let far = try rewind(["frobnicate"])
        #expect(far.status == 64 && !far.stderr.contains("did you mean") && far.stderr.contains("rewind --help"), "\(far.stderr)")
    }

    @Test func errorsAreJSONUnderFormatJSON() throws {
        try withFixtureRepo("three-apps") { repo in
            let result = try repo.rewind("rollback", "nope", "--format", "json")
            #expect(result.status == 4)
            let object = try #require(try parseJSON(result.stdout) as? [String: Any])
            let error = try #require(object["error"] as? [String: Any])
            #expect(error["message"] as? String == "unknown app 'nope'" && error["exitCode"] as? Int == 4 && (error["hint"] as? String)?.contains("api") == true)
            let releases = try repo.rewind("releases", "nope", "--format", "json")
            let parsed = try parseJSON(releases.stdout) as? [String: Any]
            #expect(releases.status == 4 && parsed?["error"] is [String: Any], "\(releases.stdout)")
        }
    }

    @Test func toAcceptsAVersionLabel() throws {
        try withFixtureRepo("three-apps") { repo in
            let result = try repo.rewind("rollback", "api", "--to", "1.2.0")
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try repo.git("show", "main:apps/api/app.yaml").contains("version: 1.2.0"))
            let missing = try repo.rewind("rollback", "api", "--to", "9.9.9")
            #expect(missing.status == 4 && missing.stderr.contains("neither a revision nor a version of api") && missing.stderr.contains("1.3.0"), "\(missing.stderr)")
        }
    }

    @Test func helpListsACommandsOwnOptionsFirstAndOffersOnlyWhatWorks() throws {
        let help = try rewind(["rollback", "--help"]).stdout
        let to = try #require(help.range(of: "--to <to>"))
        let repo = try #require(help.range(of: "--repo <repo>"))
        let key = try #require(help.range(of: "--ssh-key"))
        #expect(to.lowerBound < repo.lowerBound && repo.lowerBound < key.lowerBound, "\(help)")
        #expect(help.contains("--force"))
        #expect(!(try rewind(["unpin", "--help"]).stdout.contains("--force")), "unpin crosses no migration")
        #expect(try rewind(["unpin", "api", "--force"]).status == 64)
    }

    @Test func completionOffersAppNamesAndTimesAreUTC() throws {
        try withFixtureRepo("three-apps") { repo in
            let script = try rewind(["--generate-completion-script", "bash"])
            #expect(script.status == 0 && script.stdout.contains("---completion rollback"))
            let names = try rewind(["---completion", "rollback", "--", "positional@0", "2", "1", "rewind", "rollback", "w"], in: repo.path)
            #expect(names.stdout.split(separator: "\n").map(String.init).sorted() == ["web", "worker"], "\(names.stdout)\(names.stderr)")
            let releases = try repo.rewind("releases", "api")
            let dates = releases.stdout.split(separator: "\n").dropFirst().map { $0.split(separator: " ", omittingEmptySubsequences: true)[3] }
            #expect(!dates.isEmpty && dates.allSatisfy { $0.hasSuffix("Z") && $0.count == 20 }, "\(dates)")
        }
    }
}
