import Foundation
import Testing
import TestSupport

/// A rollback tool must repair a bad commit: a broken tip stops neither the
/// listing nor the commands that undo it.
@Suite struct BrokenTipTests {
    @Test func aBrokenRewindYAMLIsListedAndRevertedAndNothingInvalidIsWritten() throws {
        try withFixtureRepo("three-apps") { repo in
            let good = try repo.tip()
            let broken = try repo.commitChange("break rewind.yaml") { path in
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path + "/rewind.yaml"))
                handle.seekToEndOfFile()
                handle.write(Data("apps: [oops\n".utf8))
                try handle.close()
            }
            // Listing works, and says what is wrong and how to repair it.
            let releases = try repo.rewind("releases", "api")
            #expect(releases.status == 0, "\(releases.stderr)")
            #expect(releases.stdout.contains("1.3.0"))
            #expect(releases.stderr.contains("rewind.yaml at the tip \(broken.prefix(7)) is invalid") && releases.stderr.contains("rewind revert HEAD"), "\(releases.stderr)")
            // The broken commit can be shown.
            let show = try repo.rewind("show", "HEAD")
            #expect(show.status == 0, "\(show.stderr)")
            #expect(show.stderr.contains("rewind.yaml at \(broken.prefix(7)) is invalid"), "\(show.stderr)")
            // Status names the refused tip and needs a human, without a reconciler.
            let status = try repo.rewind("status")
            #expect(status.status == 7, "\(status.stdout)\(status.stderr)")
            #expect(status.stdout.contains("rewind.yaml"), "\(status.stdout)")
            // A rollback that would leave rewind.yaml broken writes nothing and says how to repair it.
            let rollback = try repo.rewind("rollback", "api", "--to", "#2")
            #expect(rollback.status == 2, "\(rollback.stdout)\(rollback.stderr)")
            #expect(rollback.stderr.contains("rewind.yaml:") && rollback.stderr.contains("rewind revert HEAD"), "\(rollback.stderr)")
            #expect(try repo.tip() == broken)
            // The revert repairs the branch.
            let revert = try repo.rewind("revert", "HEAD")
            #expect(revert.status == 0, "\(revert.stderr)")
            #expect(try repo.git("rev-parse", "HEAD^{tree}") == (try repo.git("rev-parse", "\(good)^{tree}")))
            #expect(try repo.rewind("validate").status == 0)
            #expect(try repo.rewind("status").status == 0)
        }
    }

    /// An invalid app.yaml: rolling that app back repairs it.
    @Test func aBrokenAppIsRolledBackToAValidState() throws {
        try withFixtureRepo("three-apps") { repo in
            let good = try repo.tip()
            let broken = try repo.commitChange("break api") { path in
                try "platform: process\nversion: [\n".write(toFile: path + "/apps/api/app.yaml", atomically: true, encoding: .utf8)
            }
            #expect(try repo.rewind("releases").status == 0)
            let rollback = try repo.rewind("rollback", "api", "--to", good)
            #expect(rollback.status == 0, "\(rollback.stdout)\(rollback.stderr)")
            #expect(try repo.tip() != broken)
            #expect(try repo.git("rev-parse", "HEAD:apps/api") == (try repo.git("rev-parse", "\(good):apps/api")))
            #expect(try repo.rewind("validate").status == 0)
        }
    }
}
