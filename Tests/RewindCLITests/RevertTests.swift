import Foundation
import Testing
import TestSupport

@Suite struct RevertTests {
    /// For every commit of the fixture, rewind's revert tree equals the one
    /// `git revert --no-edit` makes in a clone, and both conflict alike.
    @Test(arguments: 1..<7)
    func revertMatchesGitRevert(step: Int) throws {
        try withFixtureRepo("three-apps") { repo in
            let target = repo.commits[step]
            try withTemporaryDirectory { tmp in
                try git(["clone", "-q", repo.path, tmp + "/oracle"], in: tmp)
                let oracle = try run("/usr/bin/git", ["revert", "--no-edit", target], in: tmp + "/oracle")
                let result = try repo.rewind("revert", target, "--force")
                if oracle.status == 0 {
                    #expect(result.status == 0, "\(result.stderr)")
                    #expect(try repo.git("rev-parse", "main^{tree}") == (try git(["rev-parse", "HEAD^{tree}"], in: tmp + "/oracle")))
                    #expect(try repo.git("log", "-1", "--format=%s") == (try git(["log", "-1", "--format=%s"], in: tmp + "/oracle")))
                    #expect(try repo.git("log", "-1", "--format=%B").contains("This reverts commit \(target)."))
                } else {
                    #expect(result.status == 1)
                    #expect(result.stderr.contains("conflicts"), "\(result.stderr)")
                    #expect(try repo.tip() == repo.commits.last)
                }
            }
        }
    }

    @Test func revertOfAMergeUsesMainlineOne() throws {
        try withFixtureRepo("three-apps") { repo in
            try repo.git("checkout", "-q", "-b", "feature")
            try repo.commitChange("web extra") { try writeFile($0 + "/apps/web/extra.txt", "x\n") }
            try repo.git("checkout", "-q", "main")
            try repo.commitChange("api notes") { try writeFile($0 + "/apps/api/notes.txt", "n\n") }
            try repo.git("merge", "-q", "--no-ff", "-m", "merge feature", "feature")
            let merge = try repo.tip()
            try withTemporaryDirectory { tmp in
                try git(["clone", "-q", repo.path, tmp + "/oracle"], in: tmp)
                try git(["revert", "-m", "1", "--no-edit", merge], in: tmp + "/oracle")
                let result = try repo.rewind("revert", merge)
                #expect(result.status == 0, "\(result.stderr)")
                #expect(try repo.git("rev-parse", "main^{tree}") == (try git(["rev-parse", "HEAD^{tree}"], in: tmp + "/oracle")))
                #expect(try repo.git("log", "-1", "--format=%B").contains("reversing\nchanges made to"))
            }
        }
    }

    @Test func revertingARevertRestoresTheOriginal() throws {
        try withFixtureRepo("three-apps") { repo in
            let original = try repo.git("rev-parse", "main^{tree}")
            #expect(try repo.rewind("revert", repo.commits[2]).status == 0)
            let firstRevert = try repo.tip()
            #expect(try repo.git("rev-parse", "main^{tree}") != original)
            let again = try repo.rewind("revert", firstRevert)
            #expect(again.status == 0, "\(again.stderr)")
            #expect(try repo.git("rev-parse", "main^{tree}") == original)
            // Reverting the same commit twice: already rolled back, no commit.
            let tip = try repo.tip()
            let twice = try repo.rewind("revert", repo.commits[2])
            #expect(twice.status == 0)
            #expect(try repo.tip() != tip || twice.stdout.contains("already"))
        }
    }

    @Test func trailersParseWithGitInterpretTrailers() throws {
        try withFixtureRepo("three-apps") { repo in
            let result = try repo.rewind("revert", repo.commits[2], "--reason", "web errors\nspiking")
            #expect(result.status == 0, "\(result.stderr)")
            let message = try repo.git("log", "-1", "--format=%B")
            let parsed = try git(["interpret-trailers", "--parse"], in: repo.path, stdin: message)
            #expect(parsed.contains("Rewind-Action: revert"))
            #expect(parsed.contains("Rewind-Target: \(repo.commits[2])"))
            #expect(parsed.contains("Rewind-App: web"))
            #expect(parsed.contains("Rewind-Reason: web errors spiking"))
            #expect(parsed.contains("Rewind-Trigger: manual"))
            #expect(message.hasPrefix("Revert \"web 1.1.0\"\n\nThis reverts commit \(repo.commits[2]).\n"))
        }
    }
}
