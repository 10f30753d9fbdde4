import Foundation
import Testing
import TestSupport

/// A hold is a safety mechanism: no write may drop one as a side effect.
/// On a tip whose rewind.pins.yaml does not parse, every write but the
/// revert that repairs it is refused with the file, the line and the way out.
@Suite struct PinsFileTests {
    /// api pinned, then a hand edit that breaks the pins file; returns the breaking commit.
    static func brokenPins(_ repo: FixtureRepo) throws -> String {
        let pin = try repo.rewind("pin", "api", "--reason", "incident 7")
        guard pin.status == 0 else { throw TestFailure("pin failed: \(pin.stderr)") }
        return try repo.commitChange("hand edit of the pins") { path in
            let file = path + "/rewind.pins.yaml"
            let text = try String(contentsOfFile: file, encoding: .utf8)
            try writeFile(file, text + "  worker: [unclosed\n")
        }
    }

    @Test(arguments: [["pin", "worker"], ["unpin", "api"], ["rollback", "worker", "--to", "#1"], ["rollback", "--all", "--to", "HEAD~3"], ["revert", "HEAD~2"]])
    func everyWriteOnABrokenPinsFileIsRefusedAndTheHoldKept(command: [String]) throws {
        try withFixtureRepo("three-apps") { repo in
            let broken = try Self.brokenPins(repo)
            let before = try repo.snapshot()
            let result = try repo.rewind(command)
            #expect(result.status == 2, "\(command): \(result.stdout)\(result.stderr)")
            #expect(result.stderr.contains("rewind.pins.yaml"), "\(result.stderr)")
            #expect(result.stderr.contains("rewind.pins.yaml:"), "the line is named: \(result.stderr)")
            #expect(result.stderr.contains("rewind revert HEAD"), "the way out is named: \(result.stderr)")
            #expect(try repo.snapshot() == before, "\(command) wrote something")
            #expect(try repo.tip() == broken)
            #expect(try repo.git("show", "main:rewind.pins.yaml").contains("api:"))
        }
    }

    /// The way out: reverting the commit that broke the file restores the
    /// hold it had; then pin works again and keeps both holds.
    @Test func revertingTheBreakingCommitRestoresTheHold() throws {
        try withFixtureRepo("three-apps") { repo in
            _ = try Self.brokenPins(repo)
            let revert = try repo.rewind("revert", "HEAD")
            #expect(revert.status == 0, "\(revert.stderr)")
            #expect(try repo.git("show", "main:rewind.pins.yaml").contains("api:"))
            let pin = try repo.rewind("pin", "worker")
            #expect(pin.status == 0, "\(pin.stderr)")
            let pins = try repo.git("show", "main:rewind.pins.yaml")
            #expect(pins.contains("api:") && pins.contains("worker:") && pins.contains("incident 7"), "\(pins)")
        }
    }
}
