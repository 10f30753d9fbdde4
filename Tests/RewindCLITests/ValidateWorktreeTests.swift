import Foundation
import Testing
import TestSupport

/// Validation before committing: the working tree's files, a guess for a
/// misspelt field, and --strict.
@Suite struct ValidateWorktreeTests {
    @Test func theWorkingTreeIsCheckedAndNothingOnDiskChanges() throws {
        try withFixtureRepo("three-apps") { repo in
            let yaml = repo.path + "/apps/api/app.yaml"
            try (try String(contentsOfFile: yaml, encoding: .utf8) + "version: [\n").write(toFile: yaml, atomically: true, encoding: .utf8)
            try "platform: process\n".write(toFile: repo.path + "/apps/api/extra.txt", atomically: true, encoding: .utf8)
            let status = try repo.git("status", "--porcelain")
            let objects = try repo.git("count-objects", "-v")
            let index = try Data(contentsOf: URL(fileURLWithPath: repo.path + "/.git/index"))
            let result = try repo.rewind("validate", "--worktree")
            #expect(result.status == 2, "\(result.stdout)\(result.stderr)")
            #expect(result.stderr.contains("apps/api/app.yaml:") && result.stderr.contains("the working tree is not a valid desired state"), "\(result.stderr)")
            // Nothing staged, written or moved.
            #expect(try repo.git("status", "--porcelain") == status)
            #expect(try repo.git("count-objects", "-v") == objects)
            #expect(try Data(contentsOf: URL(fileURLWithPath: repo.path + "/.git/index")) == index)
            // The committed tip is still valid.
            #expect(try repo.rewind("validate").status == 0)
            // Fixed in the working tree: valid before it is committed.
            try repo.git("checkout", "--", "apps/api/app.yaml")
            let fixed = try repo.rewind("validate", "--worktree")
            #expect(fixed.status == 0 && fixed.stdout.contains("working tree: valid"), "\(fixed.stderr)")
            #expect(try repo.rewind("validate", "--worktree", "HEAD").status == 64)
        }
    }

    @Test func aMisspeltFieldGetsAGuessAndStrictMakesItAnError() throws {
        try withFixtureRepo("three-apps") { repo in
            let yaml = repo.path + "/apps/web/app.yaml"
            try (try String(contentsOfFile: yaml, encoding: .utf8) + "helth:\n  http: /x\n").write(toFile: yaml, atomically: true, encoding: .utf8)
            let lenient = try repo.rewind("validate", "--worktree")
            #expect(lenient.status == 0, "\(lenient.stderr)")
            #expect(lenient.stderr.contains("helth: unknown field, ignored (did you mean 'health'?"), "\(lenient.stderr)")
            let strict = try repo.rewind("validate", "--worktree", "--strict")
            #expect(strict.status == 2 && strict.stderr.contains("errors under --strict"), "\(strict.stderr)")
            // A name far from every field gets no guess.
            try (try String(contentsOfFile: yaml, encoding: .utf8) + "zzzzzz: 1\n").write(toFile: yaml, atomically: true, encoding: .utf8)
            let far = try repo.rewind("validate", "--worktree")
            #expect(far.stderr.contains("zzzzzz: unknown field, ignored (allowed here:"), "\(far.stderr)")
        }
    }
}
