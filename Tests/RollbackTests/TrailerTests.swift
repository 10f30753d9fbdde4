import Testing
import TestSupport
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

/// Found by `make fuzz` (fixtures/fuzz/trailers/crash-f2f1…): a
/// hand-written message naming an app twice paired both targets with it,
/// and printed trailers that parsed back to other targets.
@Test func anAppNamedTwiceIsOneApp() throws {
    let message = "Roll back web\n\nRewind-Action: rollback\nRewind-Target: \(a.hex)\nRewind-Target: \(b.hex)\nRewind-App: web\nRewind-App: web\n"
    let parsed = try #require(RollbackTrailers.parse(message))
    #expect(parsed.apps == ["web"])
    #expect(parsed.target(for: "web") == a)
    let again = try #require(RollbackTrailers.parse("x\n\n" + parsed.rendered + "\n"))
    #expect(again.apps == parsed.apps && again.targets == parsed.targets)
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

/// Each target names its app, so the pairing survives any order of the
/// lines; git's own trailer parser reads them; the actor is kept.
@Test func perAppTargetsNameTheirAppAndGitReadsThem() throws {
    var trailers = RollbackTrailers(action: .rollback, targets: [a, b], apps: ["api", "web"], reason: "x", trigger: .analysis)
    trailers.actor = "rewind@deploy-1"
    let rendered = trailers.rendered
    #expect(rendered.contains("Rewind-Target: \(a.hex) api") && rendered.contains("Rewind-Target: \(b.hex) web"), "\(rendered)")
    #expect(rendered.contains("Rewind-Actor: rewind@deploy-1"))
    // Lines in another order: still paired by name.
    let lines = rendered.split(separator: "\n").map(String.init)
    let shuffled = lines.filter { !$0.hasPrefix("Rewind-Target") } + lines.filter { $0.hasPrefix("Rewind-Target") }.reversed()
    let parsed = try #require(RollbackTrailers.parse("Roll back\n\n" + shuffled.joined(separator: "\n") + "\n"))
    #expect(parsed.target(for: "api") == a && parsed.target(for: "web") == b)
    #expect(parsed.actor == "rewind@deploy-1")
    let git = try TestSupport.run("/usr/bin/git", ["interpret-trailers", "--parse"], stdin: "Roll back\n\n" + rendered + "\n")
    #expect(git.stdout.contains("Rewind-Target: \(a.hex) api") && git.stdout.contains("Rewind-Actor: rewind@deploy-1"), "\(git.stdout)")
    // The older form (targets in the order of the apps) still reads.
    let old = "Roll back\n\nRewind-Action: rollback\nRewind-Target: \(a.hex)\nRewind-Target: \(b.hex)\nRewind-App: api\nRewind-App: web\n"
    #expect(try #require(RollbackTrailers.parse(old)).target(for: "web") == b)
}

/// An update commit's digests and tag, and an allow commit's digest, parse
/// back; neither is a rollback to the classifier.
@Test func updateAndAllowTrailersRoundTripAndAreDeploys() throws {
    var update = RollbackTrailers(action: .update, targets: [], apps: ["api"], reason: "newest", trigger: .registry)
    (update.oldDigest, update.newDigest, update.tag) = ("sha256:" + String(repeating: "1", count: 64), "sha256:" + String(repeating: "2", count: 64), "v1.2.0\nx")
    let parsed = try #require(RollbackTrailers.parse("Update api to v1.2.0\n\n" + update.rendered + "\n"))
    #expect(parsed.action == .update && parsed.trigger == .registry && parsed.oldDigest == update.oldDigest && parsed.newDigest == update.newDigest && parsed.tag == "v1.2.0 x")
    #expect(CommitKind(message: "Update api\n\n" + update.rendered + "\n").kind == .deploy)
    var allow = RollbackTrailers(action: .allow, targets: [a], apps: ["api"], reason: nil)
    allow.allowed = "sha256:" + String(repeating: "3", count: 64)
    let allowed = try #require(RollbackTrailers.parse("Allow\n\n" + allow.rendered + "\n"))
    #expect(allowed.allowed == allow.allowed && allowed.action == .allow)
    #expect(!CommitKind(message: "Allow\n\n" + allow.rendered + "\n").returnsToEarlier)
}

/// A note's value from outside (an alert's reason) stays on its line
/// whatever its line ends: CRLF, one Character in Swift, is one too, so
/// no text can add a note line of its own.
@Test func aNoteValueWithLineBreaksStaysOnItsLine() {
    let note = ReleaseNote(.failed, app: "api", fields: [("reason", "boom\r\nverified app=api\rnext\nlast")], time: 0, host: "vm")
    #expect(!note.line.contains { $0.isNewline }, "\(note.line)")
    let parsed = ReleaseNote.parseAll(note.line + "\r\n" + ReleaseNote(.verified, app: "web", time: 0, host: "vm").line + "\r\n")
    #expect(parsed.map(\.outcome) == [.failed, .verified])
    #expect(parsed.first?.value("reason") == "boom verified app=api next last")
}

/// A host finds the line it wrote for an outcome and an app by bytes: a
/// field that starts with a combining mark joins the space before it into
/// one Character, where a Character prefix would miss the line.
@Test func aNoteLineIsFoundByItsKeyWhateverFollows() throws {
    let line = "failed app=api \u{06D6}had=x host=vm"
    let key = ReleaseNote.key(.failed, app: "api")
    #expect(!line.hasPrefix(key))  // what the Character comparison saw
    #expect(ReleaseNote.isLine(line, key: key, host: "vm"))
    #expect(!ReleaseNote.isLine(line, key: key, host: "other"))
    #expect(!ReleaseNote.isLine(line, key: ReleaseNote.key(.failed, app: "ap"), host: "vm"))
    let parsed = try #require(ReleaseNote.parse(line))
    #expect((parsed.line + " ").utf8.starts(with: parsed.key.utf8))
}
