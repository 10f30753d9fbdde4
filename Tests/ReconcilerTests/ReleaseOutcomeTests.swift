import Foundation
@testable import Reconciler
import SystemSupport
import Testing
import ReconcilerDoubles
import TestSupport

/// `rewind releases` shows each release's outcome from the notes, the
/// trigger, the reason and the actor (helm history's STATUS and DESCRIPTION).
@Suite struct ReleaseOutcomeTests {
    @Test func releasesShowOutcomesTriggersAndWhoActed() throws {
        let world = try FakeWorld(apps: [HarnessApp("api", appYAML: fakeAppYAML(version: "1"))])
        world.converge()
        try world.harness.write("apps/api/app.yaml", fakeAppYAML(version: "2"))
        try world.harness.commit("api 2")
        world.platform.behaviours["api 2"] = .unhealthy
        world.converge()
        #expect(try world.commits().count == 3)
        let result = try rewind(["releases", "api", "--format", "json", "--repo", world.harness.repo])
        #expect(result.status == 0, "\(result.stderr)")
        let listing = try #require((try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])?.first?["releases"] as? [[String: Any]])
        #expect(listing.count == 3)
        let (first, bad, rollback) = (listing[0], listing[1], listing[2])
        #expect(first["outcome"] as? String == "healthy" && first["trigger"] is NSNull)
        #expect(bad["outcome"] as? String == "rolled-back", "\(bad)")
        #expect(rollback["outcome"] as? String == "verified", "\(rollback)")
        #expect(rollback["trigger"] as? String == "analysis")
        #expect((rollback["reason"] as? String)?.contains("failed: not healthy within 1s") == true, "\(rollback)")
        #expect(rollback["actor"] as? String == "rewind@\(Clock.hostName())")
        let table = try rewind(["releases", "api", "--repo", world.harness.repo])
        #expect(table.stdout.contains("OUTCOME") && table.stdout.contains("rolled-back") && table.stdout.contains("verified") && table.stdout.contains("analysis"), "\(table.stdout)")
        // The commit itself says who acted, as a trailer git reads.
        let trailers = try git(["log", "-1", "--format=%(trailers:key=Rewind-Actor,valueonly)", "main"], in: world.harness.repo)
        #expect(trailers == "rewind@\(Clock.hostName())")
    }
}
