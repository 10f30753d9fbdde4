import Foundation
import Testing
import TestSupport

/// Built-in automatic rollback: failed releases become rollback commits.
@Suite struct AutoRollbackTests {
    @Test func aCrashLoopingReleaseIsRolledBackByOneCommit() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            try h.write("apps/api/app.yaml", demoServiceYAML(version: "1.1.0", args: ["--crash-after", "300ms"]))
            let bad = try h.commit("api 1.1.0")
            try h.waitUntil("a rollback commit is written", timeout: 40) { try h.commits().count == 3 }
            try h.waitHealthy("api", "1.0.0")
            let rollback = try h.commits()[0]
            let message = try git(["log", "-1", "--format=%B", rollback], in: h.repo)
            #expect(message.contains("Rewind-Action: rollback"))
            #expect(message.contains("Rewind-Trigger: analysis"))
            #expect(message.contains("Rewind-Reason: api release \(bad.prefix(7)) failed: crash-looping"))
            // Restarted with backoff before giving up.
            #expect(h.log.contains("restarting in 500 ms (restart 1)"))
            #expect(h.log.contains("restarting in 1000 ms (restart 2)"))
            #expect(h.notes(on: bad, waitingFor: ["rolled-back app=api by=\(rollback.prefix(7))"]).contains("rolled-back app=api by=\(rollback.prefix(7))"))
            try h.waitUntil("recovery is verified") { h.notes(on: rollback, waitingFor: ["verified app=api"]).contains("verified app=api") }
            // The incident report, as a note git itself shows.
            var incident = ""
            try h.waitUntil("the incident report is written") {
                incident = (try? git(["notes", "--ref=rewind-incident", "show", rollback], in: h.repo)) ?? ""
                return !incident.isEmpty
            }
            try Self.checkIncident(incident, repo: h.repo, bad: bad, rollback: rollback, app: "api", last: "verified")
            // Settled: no second commit.
            #expect(try h.commits().count == 3)
            // An engineer's plain rollback after the reconciler's writes nothing and says why.
            let manual = try rewind(["rollback", "api", "--repo", h.repo], environment: ["REWIND_ARTIFACT_ROOT": h.artifacts])
            #expect(manual.status == 0, "\(manual.stderr)")
            #expect(manual.stdout.contains("api is already rolled back: \(rollback.prefix(7))"), "\(manual.stdout)")
            #expect(manual.stdout.contains("set it to 1.0.0"))
            #expect(try h.commits().count == 3)
        }
    }

    /// A newcomer's case: one commit changes two apps and both fail. Both
    /// are rolled back by one commit, and git and the platform agree.
    @Test func twoAppsFailingInOneReleaseAreRolledBackByOneCommit() throws {
        let apps = [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0")), HarnessApp("worker", appYAML: demoServiceYAML(version: "2.1.0"))]
        try withReconciler(apps: apps) { h in
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            try h.waitHealthy("worker", "2.1.0")
            try h.write("apps/api/app.yaml", demoServiceYAML(version: "1.1.0", args: ["--health", "fail"], healthTimeout: "1s"))
            try h.write("apps/worker/app.yaml", demoServiceYAML(version: "2.9.0", args: ["--health", "fail"], healthTimeout: "1s"))
            let bad = try h.commit("api 1.1.0 and worker 2.9.0")
            try h.waitUntil("a rollback commit is written", timeout: 40) { try h.commits().count == 3 }
            try h.waitHealthy("api", "1.0.0")
            try h.waitHealthy("worker", "2.1.0")
            let rollback = try h.commits()[0]
            let message = try git(["log", "-1", "--format=%B", rollback], in: h.repo)
            #expect(message.contains("Rewind-App: api") && message.contains("Rewind-App: worker"), "\(message)")
            #expect(message.contains("Rewind-Trigger: analysis"))
            // Git names what runs.
            #expect(try git(["show", "main:apps/api/app.yaml"], in: h.repo).contains("1.0.0"))
            #expect(try git(["show", "main:apps/worker/app.yaml"], in: h.repo).contains("2.1.0"))
            let notes = h.notes(on: bad, waitingFor: ["rolled-back app=api by=\(rollback.prefix(7))", "rolled-back app=worker by=\(rollback.prefix(7))"])
            #expect(notes.contains("rolled-back app=api by=\(rollback.prefix(7))") && notes.contains("rolled-back app=worker by=\(rollback.prefix(7))"), "\(notes)")
            try h.waitUntil("both recoveries are verified") {
                let verified = h.notes(on: rollback)
                return verified.contains("verified app=api") && verified.contains("verified app=worker")
            }
            // No late duplicate: the count holds over a further second of passes.
            let deadline = Date().addingTimeInterval(1.5)
            while Date() < deadline {
                #expect(try h.commits().count == 3)
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
    }

    @Test func aFailingRollbackIsNotRolledBackAgain() throws {
        try withReconciler(apps: [try execApp("site", version: "1.0.0")]) { h in
            try h.start()
            try h.waitHealthy("site", "1.0.0")
            // Something outside the releases breaks health for every version.
            _ = FileManager.default.createFile(atPath: h.root + "/broken", contents: nil)
            try h.write("apps/site/app.yaml", execAppYAML(version: "1.1.0"))
            let bad = try h.commit("site 1.1.0")
            try h.waitUntil("a human is asked for", timeout: 40) { (try h.app("site")["waitingFor"] as? String ?? "").contains("a human") }
            let commits = try h.commits()
            #expect(commits.count == 3, "exactly one rollback commit")
            let waiting = try h.app("site")["waitingFor"] as? String ?? ""
            #expect(waiting.contains("rollback did not recover: likely not caused by the release"))
            #expect(h.notes(on: bad, waitingFor: ["rolled-back app=site"]).contains("rolled-back app=site"))
            #expect(h.notes(on: commits[0], waitingFor: ["escalated app=site"]).contains("escalated app=site"))
            var incident = ""
            try h.waitUntil("the incident report is written") {
                incident = (try? git(["notes", "--ref=rewind-incident", "show", commits[0]], in: h.repo)) ?? ""
                return !incident.isEmpty
            }
            try Self.checkIncident(incident, repo: h.repo, bad: bad, rollback: commits[0], app: "site", last: "the rollback did not recover site; escalated")
            #expect(try h.commits().count == 3)
            let status = try rewind(["status", "--repo", h.repo, "--state-dir", h.stateDir, "--format", "json"])
            #expect(status.status == 7, "an escalation needs a human")
            #expect(status.stdout.contains("\"needsHuman\""))
        }
    }

    /// The report's timeline is in order, starts with the bad release and
    /// ends with `last`; its durations are the notes' (to the millisecond).
    static func checkIncident(_ text: String, repo: String, bad: String, rollback: String, app: String, last: String) throws {
        #expect(text.hasPrefix("# Incident: \(app) rolled back by `\(rollback.prefix(7))`"), "\(text)")
        let rows = text.split(separator: "\n").drop { !$0.hasPrefix("## Timeline") }.dropFirst(3).prefix { $0.hasPrefix("| 20") }
        let times = rows.map { $0.split(separator: "|")[0].trimmingCharacters(in: .whitespaces) }
        #expect(rows.count >= 5, "\(text)")
        #expect(times == times.sorted(), "the timeline is in order")
        #expect(rows.first?.contains("release `\(bad.prefix(7))` of \(app)") == true, "\(rows.first ?? "")")
        #expect(rows.contains { $0.contains("\(app) failed:") }, "\(text)")
        #expect(rows.contains { $0.contains("rollback commit `\(rollback.prefix(7))` (rollback, trigger analysis)") }, "\(text)")
        #expect(rows.last?.contains(last) == true, "\(rows.last ?? "")")
        // Time to recovery: the rollback commit → its healthy note.
        let notes = try git(["notes", "--ref=rewind", "show", rollback], in: repo)
        let commitTime = Int64(try git(["log", "-1", "--format=%at", rollback], in: repo)) ?? 0
        if let healthy = notes.split(separator: "\n").first(where: { $0.hasPrefix("healthy app=\(app) ") }),
           let time = healthy.split(separator: " ").first(where: { $0.hasPrefix("time=") }).map({ String($0.dropFirst(5)) }),
           let date = { () -> Date? in
               let f = ISO8601DateFormatter()
               f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
               return f.date(from: time)
           }() {
            // Notes have milliseconds; the rolled-back note dates the commit to the millisecond.
            let rolledBack = try git(["notes", "--ref=rewind", "show", bad], in: repo).split(separator: "\n").first { $0.hasPrefix("rolled-back app=\(app) ") }
            let rolledBackTime = rolledBack?.split(separator: " ").first { $0.hasPrefix("time=") }.flatMap { word -> Date? in
                let f = ISO8601DateFormatter()
                f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                return f.date(from: String(word.dropFirst(5)))
            }
            let committed = rolledBackTime.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) }.flatMap { $0 >= commitTime * 1000 && $0 < commitTime * 1000 + 1000 ? $0 : nil } ?? commitTime * 1000
            let recovery = Int64((date.timeIntervalSince1970 * 1000).rounded()) - committed
            let recoveryText = text.split(separator: "\n").first { $0.hasPrefix("| time to recovery") } ?? ""
            #expect(recoveryText.contains(Self.human(max(0, recovery))), "\(recoveryText) vs \(recovery) ms")
        } else {
            // Never healthy again: no time to recovery.
            #expect(!notes.contains("healthy app=\(app) "), "\(notes)")
            #expect(text.contains("| time to recovery (rollback commit → healthy) | - |"), "\(text)")
        }
    }

    /// The report's duration words (the same rules, written again).
    static func human(_ ms: Int64) -> String {
        if ms < 1000 { return "\(ms)ms" }
        let s = ms / 1000
        if s < 60 { return ms < 10_000 ? "\(s).\(ms % 1000 / 100)s" : "\(s)s" }
        return s % 60 == 0 ? "\(s / 60)m" : "\(s / 60)m \(s % 60)s"
    }
}
