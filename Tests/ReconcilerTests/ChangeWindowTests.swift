import DeployModel
import Foundation
import ReconcilerDoubles
import ReconcilerStatus
import Rollback
import SystemSupport
import Testing
import TestSupport

/// Change windows (`windows:`): the calendar in the tz database's zones
/// (across a DST change), the reconciler holding a deploy and not a
/// rollback on the manual clock, the override trailer, `rewind check`, and the audit's overrides.
@Suite struct ChangeWindowTests {
    static func ms(_ iso: String) -> Int64 {
        let formatter = ISO8601DateFormatter()
        return Int64((formatter.date(from: iso)?.timeIntervalSince1970 ?? 0) * 1000)
    }

    static func window(_ kind: ChangeWindow.Kind, _ cron: String, hours: Int64, zone: String = "UTC", rollbacks: Bool = false) throws -> ChangeWindow {
        ChangeWindow(kind: kind, schedule: try CronSchedule(parsing: cron), duration: Duration(milliseconds: hours * 3_600_000), timeZone: zone, apps: [], holdsRollbacks: rollbacks)
    }

    @Test func aFridayFreezeInBerlinEndsOnMondayMorningInWinterAndInSummer() throws {
        let freeze = try Self.window(.deny, "0 18 * * 5", hours: 64, zone: "Europe/Berlin")
        // Winter (UTC+1): Friday 4 December 2026, 19:30 in Berlin.
        let winter = ChangeCalendar([freeze], at: Self.ms("2026-12-04T18:30:00Z"))
        let held = try #require(winter.hold(app: "api", rollback: false))
        #expect(held.hasPrefix("held by freeze until 2026-12-07T09:00:00Z"), "\(held)")
        #expect(winter.hold(app: "api", rollback: true) == nil, "a rollback is the way out of an incident")
        #expect(winter.hold(app: "api", rollback: false, overridden: true) == nil, "Rewind-Override: freeze")
        #expect(ChangeCalendar([freeze], at: Self.ms("2026-12-04T16:59:00Z")).hold(app: "api", rollback: false) == nil, "17:59 in Berlin: not yet")
        #expect(ChangeCalendar([freeze], at: Self.ms("2026-12-07T09:00:00Z")).hold(app: "api", rollback: false) == nil, "over on Monday at 10:00")
        // Summer (UTC+2): Friday 3 July 2026, 18:30 in Berlin.
        let summer = try #require(ChangeCalendar([freeze], at: Self.ms("2026-07-03T16:30:00Z")).hold(app: "api", rollback: false))
        #expect(summer.hasPrefix("held by freeze until 2026-07-06T08:00:00Z"), "\(summer)")
        // A freeze that holds rollbacks too.
        let total = try Self.window(.deny, "0 18 * * 5", hours: 64, zone: "Europe/Berlin", rollbacks: true)
        #expect(ChangeCalendar([total], at: Self.ms("2026-12-04T18:30:00Z")).hold(app: "api", rollback: true) != nil)
    }

    @Test func anAllowWindowLetsDeploysThroughOnlyInsideIt() throws {
        let office = try Self.window(.allow, "0 9 * * 1-5", hours: 8, zone: "America/New_York")
        #expect(ChangeCalendar([office], at: Self.ms("2026-12-07T15:00:00Z")).hold(app: "api", rollback: false) == nil, "Monday 10:00 in New York")
        let saturday = try #require(ChangeCalendar([office], at: Self.ms("2026-12-05T15:00:00Z")).hold(app: "api", rollback: false))
        #expect(saturday.contains("held outside every allow window") && saturday.contains("the next opens at 2026-12-07T14:00:00Z"), "\(saturday)")
    }

    /// On the fake platform and the manual clock: a deny window open now
    /// holds a deploy (status says until when), lets a rollback commit
    /// through, lets an overridden commit through, and the held release
    /// applies once the window is over.
    @Test func theReconcilerHoldsADeployInAFreezeButNotARollbackOrAnOverride() throws {
        let now = Clock.wallMilliseconds()
        let hour = (now / 3_600_000) % 24, minute = (now / 60_000) % 60
        let windows = "windows:\n  - kind: deny\n    schedule: \"\(minute) \(hour) * * *\"\n    duration: 2h\n"
        let world = try FakeWorld(apps: [HarnessApp("api", appYAML: fakeAppYAML(version: "1.0")), HarnessApp("web", appYAML: fakeAppYAML(version: "5.0"))])
        world.converge()
        let config = try String(contentsOfFile: world.harness.repo + "/rewind.yaml", encoding: .utf8)
        try world.harness.write("rewind.yaml", config + windows)
        try world.harness.write("apps/api/app.yaml", fakeAppYAML(version: "1.1"))
        let release = try world.harness.commit("api 1.1, and a freeze from now on for 2 hours")
        world.converge()
        #expect(world.app("api").instance?.version == "1.0", "held")
        world.deliverNotifications()
        #expect(world.transport.events == ["freeze-held"], "told once: \(world.transport.events)")
        world.converge()
        world.deliverNotifications()
        #expect(world.transport.events == ["freeze-held"], "not again while the hold lasts")
        let held = try #require(world.app("api").freeze)
        #expect(held.hasPrefix("held by freeze until ") && held.contains("deny window '\(minute) \(hour) * * *' UTC for 2h"), "\(held)")
        let status = try StatusReport.build(repo: try DeployRepository(path: world.harness.repo, branch: nil), stateDirectory: world.harness.stateDir)
        #expect(status.apps.first { $0.name == "api" }?.waitingFor.hasPrefix("the change window: held by freeze until") == true)
        guard case .waiting(let waits) = WaitCondition(apps: ["api"]).judge(status) else { Issue.record("rewind wait would not wait"); return }
        #expect(waits["api"]?.contains("1.1 to be applied (runs 1.0); held by freeze until") == true, "\(waits)")

        // A rollback commit (git revert of the release) applies during the freeze... of the app's tree only.
        try world.harness.write("apps/api/app.yaml", fakeAppYAML(version: "1.0"))
        try git(["commit", "-q", "-am", "Revert \"api 1.1\"\n\nThis reverts commit \(release)."], in: world.harness.repo)
        world.converge()
        #expect(world.app("api").freeze == nil && world.app("api").instance?.version == "1.0")
        // A deploy with the override trailer applies.
        try world.harness.write("apps/web/app.yaml", fakeAppYAML(version: "5.1"))
        try git(["commit", "-q", "-am", "web 5.1, urgent\n\nRewind-Override: freeze"], in: world.harness.repo)
        world.converge()
        #expect(world.app("web").instance?.version == "5.1", "overridden")
        // Another deploy is held again, and applies once the window is over (a full pass comes every 30 s).
        try world.harness.write("apps/web/app.yaml", fakeAppYAML(version: "5.2"))
        try world.harness.commit("web 5.2")
        world.converge()
        #expect(world.app("web").instance?.version == "5.1" && world.app("web").freeze != nil)
        world.run(for: 2 * 3_600_000 + 31_000)
        #expect(world.app("web").instance?.version == "5.2" && world.app("web").freeze == nil, "\(world.app("web"))")
    }

    /// `rewind check` fails on a deploy commit made inside a deny window of
    /// its parent's rewind.yaml, not on a rollback or an overridden one.
    @Test func checkFailsOnADeployCommitInsideADenyWindow() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0"))]) { h in
            let config = try String(contentsOfFile: h.repo + "/rewind.yaml", encoding: .utf8)
            try h.write("rewind.yaml", config + "windows:\n  - kind: deny\n    schedule: \"0 18 * * 5\"\n    duration: 64h\n    timeZone: Europe/Berlin\n")
            let base = try h.commit("a weekend freeze")
            func commit(_ version: String, _ message: String, at date: String) throws {
                try h.write("apps/api/app.yaml", demoServiceYAML(version: version))
                try git(["add", "-A"], in: h.repo)
                _ = try run("/usr/bin/git", ["commit", "-q", "-m", message], in: h.repo, environment: ["GIT_COMMITTER_DATE": date, "GIT_AUTHOR_DATE": date])
            }
            try commit("1.1", "api 1.1 on a Thursday", at: "2026-12-03T12:00:00Z")
            try commit("1.2", "api 1.2 on Saturday\n\nRewind-Override: freeze", at: "2026-12-05T12:00:00Z")
            let clean = try rewind(["check", "\(base)..HEAD", "--repo", h.repo])
            #expect(clean.status == 0, "\(clean.stdout)\(clean.stderr)")
            try commit("1.3", "api 1.3 on Saturday", at: "2026-12-05T13:00:00Z")
            let caught = try rewind(["check", "\(base)..HEAD", "--repo", h.repo])
            #expect(caught.status == 3, "\(caught.stderr)")
            #expect(caught.stderr.contains("\"api 1.3 on Saturday\" deploys app api inside a change window: held by freeze until 2026-12-07T09:00:00Z"), "\(caught.stderr)")
            #expect(caught.stderr.contains("Rewind-Override: freeze"), "the hint names the override")
            let json = try rewind(["check", "\(base)..HEAD", "--repo", h.repo, "--format", "json"])
            #expect(json.stdout.contains("\"window\"") && json.stdout.contains("api 1.3 on Saturday"), "\(json.stdout)")
            // The audit lists the override, and only it.
            let audit = try rewind(["audit", "--since", "2026-12-01", "--until", "2026-12-31", "--repo", h.repo, "--format", "json"])
            let report = try #require(try JSONSerialization.jsonObject(with: Data(audit.stdout.utf8)) as? [String: Any], "\(audit.stderr)")
            let overrides = (report["freezeOverrides"] as? [[String: Any]]) ?? []
            #expect(overrides.compactMap { $0["summary"] as? String } == ["api 1.2 on Saturday"] && overrides.first?["apps"] as? [String] == ["api"], "\(overrides)")
            let markdown = try rewind(["audit", "--since", "2026-12-01", "--until", "2026-12-31", "--repo", h.repo, "--format", "markdown"]).stdout
            #expect(markdown.contains("## Freeze overrides") && markdown.contains("api 1.2 on Saturday"), "\(markdown)")
        }
    }

    /// End to end, with `rewind reconcile` and real processes: during a deny
    /// window a deploy is held (status says until when) while a rollback
    /// commit applies.
    @Test func endToEndADeployIsHeldAndARollbackAppliesDuringAFreeze() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            try h.write("apps/api/app.yaml", demoServiceYAML(version: "1.1.0"))
            let good = try h.commit("api 1.1.0")
            try h.waitHealthy("api", "1.1.0")
            let now = Clock.wallMilliseconds()
            let config = try String(contentsOfFile: h.repo + "/rewind.yaml", encoding: .utf8)
            try h.write("rewind.yaml", config + "windows:\n  - kind: deny\n    schedule: \"\((now / 60_000) % 60) \((now / 3_600_000) % 24) * * *\"\n    duration: 2h\n")
            try h.write("apps/api/app.yaml", demoServiceYAML(version: "1.2.0"))
            try h.commit("api 1.2.0 and a freeze from now on")
            try h.waitUntil("the release is held by the freeze") { ((try h.app("api"))["freeze"] as? String)?.hasPrefix("held by freeze until") == true }
            #expect(try h.applied("api").version == "1.1.0")
            #expect(((try h.app("api"))["waitingFor"] as? String)?.hasPrefix("the change window: held by freeze until") == true)
            // A rollback to 1.0.0 (the release before 1.1.0) applies during the freeze.
            let rollback = try rewind(["rollback", "api", "--to", "\(good)~1", "--repo", h.repo, "--reason", "incident during the freeze"])
            #expect(rollback.status == 0, "\(rollback.stderr)")
            try h.waitHealthy("api", "1.0.0")
            #expect((try h.app("api"))["freeze"] is NSNull, "nothing is held: the tip returns api to 1.0.0")
        }
    }
}
