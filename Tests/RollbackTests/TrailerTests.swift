import Testing
@testable import GitKit
@testable import Rollback

private let a = OID(hex: String(repeating: "a", count: 40))!
private let b = OID(hex: String(repeating: "b", count: 40))!

@Test func trailersRoundTrip() throws {
    let trailers = RollbackTrailers(action: .rollback, targets: [a, b], apps: ["api", "web"], reason: "error rate\n12%",
                                    trigger: .alert, alert: "HighErrorRate", fingerprint: "f00d", forced: ["x"])
    let message = "Roll back api\n\nBody.\n\n" + trailers.rendered + "\n"
    let parsed = try #require(RollbackTrailers.parse(message))
    #expect(parsed.reason == "error rate 12%")
    #expect(parsed.target(for: "web") == b)
    #expect(parsed.target(for: "api") == a)
    #expect(parsed.alert == "HighErrorRate" && parsed.fingerprint == "f00d" && parsed.trigger == .alert)
}

@Test(arguments: [
    ("Revert \"x\"\n\nThis reverts commit \(String(repeating: "a", count: 40)).\n", true),
    ("Revert \"x\"\n\nThis reverts commit abc.\n", false),
    ("api 1.2\n", false),
])
func recognisesGitRevertMessages(message: String, recognised: Bool) {
    #expect((RollbackTrailers.gitRevertTarget(message) == a) == recognised)
    #expect(RollbackTrailers.parse(message) == nil)
}

@Test(arguments: [("apps/a", "../b", false), ("apps/a", "../../x", false), ("apps/a", "../../../etc", true), ("apps/a", "/etc/passwd", true), ("apps/a", "./../../..", true)])
func symlinkEscapes(directory: String, target: String, escapes: Bool) {
    #expect(SymlinkCheck.leavesRepository(target: target, linkDirectory: directory) == escapes)
}
