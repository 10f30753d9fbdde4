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

/// Links are resolved as in the deployed copy of the app: from the app
/// directory's own root, following the app's other links.
@Test(arguments: [
    ("conf", "other/file", false), ("d1/conf", "../file", false), ("conf", "../shared", true),
    ("d1/d2/d3/d4/repo-config", "../../../../../config", true), ("conf", "/etc/passwd", true),
    ("conf", "./../..", true), ("a", "b/..", true), ("loop", "loop", true),
])
func symlinkLeavesTheApp(link: String, target: String, leaves: Bool) {
    // "b" is itself a link out of the app; "a -> b/.." goes through it.
    let links = [link: target, "b": "../.."]
    #expect(AppTreeCheck.leavesApp(link: link, links: links) == leaves)
}

/// Values from outside are cut visibly, with their full length, so that a
/// 100 kB alert name cannot become a 100 kB trailer.
@Test func trailerValuesAreBounded() throws {
    let huge = String(repeating: "A", count: 100_000)
    let trailers = RollbackTrailers(action: .rollback, targets: [a], apps: ["api"], reason: huge, trigger: .alert, alert: huge, fingerprint: huge, forced: [huge])
    for line in trailers.rendered.split(separator: "\n") {
        #expect(line.count <= 1_024 + 20, "\(line.prefix(40))")
    }
    #expect(trailers.rendered.contains("… (100000 characters in all)"))
    let parsed = try #require(RollbackTrailers.parse("Roll back\n\n" + trailers.rendered + "\n"))
    #expect(parsed.alert?.count == 256)
    #expect(parsed.reason?.count == 1_024)
}
