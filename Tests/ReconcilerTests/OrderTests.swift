import Foundation
import Testing
import TestSupport

/// Three dependent apps on the process platform: the order in which their
/// processes start follows dependsOn, reversed for a rollback commit.
@Suite struct OrderTests {
    static func apps(_ version: String) -> [HarnessApp] {
        [HarnessApp("db", appYAML: demoServiceYAML(version: version)),
         HarnessApp("api", dependsOn: ["db"], appYAML: demoServiceYAML(version: version)),
         HarnessApp("web", dependsOn: ["api"], appYAML: demoServiceYAML(version: version))]
    }

    /// The apps in the order the reconciler started `version` of them (its
    /// log, latest starts of that version); each really runs that version.
    func startOrder(_ h: ReconcilerHarness, _ version: String) throws -> [String] {
        let lines = h.log.split(separator: "\n")
        let started = try ["db", "api", "web"].map { name -> (String, Int) in
            guard try h.applied(name).version == version else { throw TestFailure("\(name) does not run \(version)") }
            guard let index = lines.lastIndex(where: { $0.contains("applying \(name) \(version) ") }) else { throw TestFailure("\(name) \(version) was not applied") }
            return (name, index)
        }
        return started.sorted { $0.1 < $1.1 }.map(\.0)
    }

    @Test func deployUpgradeRollbackAndPinFollowDependencies() throws {
        try withReconciler(apps: Self.apps("1.0.0")) { h in
            try h.start()
            for app in ["db", "api", "web"] { try h.waitHealthy(app, "1.0.0") }
            #expect(try startOrder(h, "1.0.0") == ["db", "api", "web"])
            let first = try h.commits()[0]

            for app in Self.apps("2.0.0") { try h.writeApp(app) }
            let upgrade = try h.commit("everything 2.0.0")
            for app in ["db", "api", "web"] { try h.waitHealthy(app, "2.0.0") }
            #expect(try startOrder(h, "2.0.0") == ["db", "api", "web"])
            #expect(h.notes(on: upgrade, waitingFor: ["applied app=web version=2.0.0"]).contains("applied app=web version=2.0.0"))

            // A rollback commit is applied in reverse order: dependents first.
            let rollback = try rewind(["rollback", "--all", "--to", first, "--repo", h.repo, "--reason", "2.0.0 is slow"])
            #expect(rollback.status == 0, "\(rollback.stderr)")
            for app in ["db", "api", "web"] { try h.waitHealthy(app, "1.0.0") }
            #expect(try startOrder(h, "1.0.0") == ["web", "api", "db"])
            let rollbackCommit = try h.commits()[0]
            let note = h.notes(on: rollbackCommit, waitingFor: ["db", "api", "web"].map { "verified app=\($0)" })
            for app in ["db", "api", "web"] { #expect(note.contains("verified app=\(app)")) }

            // A pin holds api while a later commit changes it.
            #expect(try rewind(["pin", "api", "--repo", h.repo, "--reason", "hold"]).status == 0)
            let apiPid = try h.applied("api").pid
            for app in Self.apps("3.0.0") { try h.writeApp(app) }
            let bump = try h.commit("bot: everything 3.0.0")
            try h.waitHealthy("web", "3.0.0")
            try h.waitHealthy("db", "3.0.0")
            let api = try h.app("api")
            #expect((api["applied"] as? [String: Any])?["version"] as? String == "1.0.0")
            #expect(api["pin"] as? String == "1.0.0")
            #expect(try h.applied("api").pid == apiPid)
            #expect(h.notes(on: bump, waitingFor: ["held app=api"]).contains("held app=api"))
        }
    }
}
