import Foundation
import Testing
import TestSupport

/// A generated history with known facts: 40 deploys over 6 weeks on 3 apps,
/// 6 rollbacks of all four kinds and triggers, one escalation, notes with
/// chosen timestamps, two guard refusals and one hand-written note. Every
/// number `rewind audit --format json` prints is computed again here from
/// the plan, without Rewind's code.
@Suite struct AuditOracleTests {
    static let apps = ["api", "web", "worker"]
    /// Monday 2026-09-07T00:00:00Z.
    static let t0: Int64 = 1_788_739_200

    enum Kind: String { case deploy, revert, rollback, pin, gitRevert = "git-revert", unpin }

    /// One commit of the plan, with the notes it gets (offsets in seconds from its time).
    struct Step {
        var kind: Kind
        var app: String
        var time: Int64
        var version: Int
        var trigger = "manual"
        var applied: Int64? = 30
        var healthy: Int64? = 60
        var failed: Int64? = nil
        var startsAt: Int64? = nil
        var verified: Int64? = nil
        var escalated: Int64? = nil
        var forced: String? = nil
        /// For rollbacks: the index of the step it undoes.
        var undoes: Int? = nil
        var sha = ""
    }

    /// The plan: 39 daily deploys rotating over the apps, a fix-forward,
    /// and after six bad deploys a rollback 900 s later.
    static func plan() -> [Step] {
        var steps: [Step] = []
        var versions = ["api": 0, "web": 0, "worker": 0]
        let rollbacks: [Int: (Kind, String)] = [3: (.revert, "manual"), 7: (.rollback, "alert"), 11: (.pin, "api"),
                                                15: (.gitRevert, "manual"), 19: (.rollback, "analysis"), 23: (.revert, "analysis")]
        for k in 0..<39 {
            let app = apps[k % 3]
            versions[app, default: 0] += 1
            let time = t0 + Int64(k) * 86_400 + 36_000
            var step = Step(kind: .deploy, app: app, time: time, version: versions[app] ?? 0, healthy: 40 + 10 * Int64(k % 5))
            if let (kind, trigger) = rollbacks[k] {
                if kind != .revert || trigger != "manual" { step.failed = 600 }
                if trigger == "alert" { step.startsAt = 300 }
                steps.append(step)
                let bad = steps.count - 1
                var rollback = Step(kind: kind, app: app, time: time + 900, version: (versions[app] ?? 0) - 1, trigger: trigger,
                                    applied: 30, healthy: 45, verified: 60, undoes: bad)
                if kind == .gitRevert { rollback.verified = nil }
                if k == 23 { rollback.verified = nil; rollback.failed = 120; rollback.escalated = 130 }
                if k == 3 { rollback.forced = "api migration 0002_drop_column is irreversible" }
                if kind != .pin { versions[app] = (versions[app] ?? 0) - 1 }
                steps.append(rollback)
                if kind == .pin {
                    // Unpinned after the next worker deploy (the fix).
                    steps.append(Step(kind: .unpin, app: app, time: time + 3 * 86_400 + 3_600, version: 0, applied: nil, healthy: nil))
                }
            } else if k == 27 {
                step.failed = 600
                steps.append(step)
                versions[app, default: 0] += 1
                steps.append(Step(kind: .deploy, app: app, time: time + 3 * 3600, version: versions[app] ?? 0, healthy: 75))
            } else {
                steps.append(step)
            }
        }
        return steps.sorted { $0.time < $1.time }
    }

    static func appYAML(_ app: String, _ version: Int) -> String {
        "platform: exec\nversion: 1.0.\(version)\nexec:\n  apply: ./deploy.sh\n  timeout: 30s\n"
    }

    static func iso(_ seconds: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }

    /// Writes the plan with the git CLI; returns the steps with their commit ids.
    static func build(_ dir: String) throws -> [Step] {
        func commit(_ message: String, at time: Int64) throws -> String {
            let env = TestEnvironment.git.merging(["GIT_AUTHOR_DATE": "@\(time) +0000", "GIT_COMMITTER_DATE": "@\(time) +0000"]) { $1 }
            try git(["add", "-A"], in: dir)
            let result = try run("/usr/bin/git", ["commit", "-q", "--allow-empty", "-F", "-"], in: dir, environment: env, stdin: message)
            guard result.status == 0 else { throw TestFailure("git commit failed: \(result.stderr)") }
            return try git(["rev-parse", "HEAD"], in: dir)
        }
        try git(["init", "-q", "-b", "main", dir], in: "/")
        try writeFile("\(dir)/rewind.yaml", "apps:\n" + apps.map { "  - name: \($0)\n    path: apps/\($0)\n" }.joined())
        for app in apps { try writeFile("\(dir)/apps/\(app)/app.yaml", appYAML(app, 0)) }
        let initial = try commit("Initial state", at: t0 - 7 * 86_400)
        var notes: [String: [String]] = [:]
        for app in apps {
            notes[initial, default: []] += ["applied app=\(app) version=1.0.0 time=\(iso(t0 - 7 * 86_400 + 30)) host=test",
                                            "healthy app=\(app) version=1.0.0 time=\(iso(t0 - 7 * 86_400 + 60)) host=test"]
        }
        var steps = plan()
        var releaseOfApp: [String: [String]] = ["api": [initial], "web": [initial], "worker": [initial]]
        for i in steps.indices {
            let step = steps[i]
            let app = step.app
            var message: String
            switch step.kind {
            case .deploy:
                try writeFile("\(dir)/apps/\(app)/app.yaml", appYAML(app, step.version))
                message = "Deploy \(app) 1.0.\(step.version)\n"
            case .revert, .rollback, .gitRevert:
                let bad = steps[step.undoes ?? 0].sha
                let previous = releaseOfApp[app]?.dropLast().last ?? initial
                try writeFile("\(dir)/apps/\(app)/app.yaml", appYAML(app, step.version))
                if step.kind == .gitRevert {
                    message = "Revert \"Deploy \(app)\"\n\nThis reverts commit \(bad).\n"
                } else {
                    let target = step.kind == .revert ? bad : previous
                    message = "rewind: \(step.kind.rawValue) \(app)\n\nRewind-Action: \(step.kind.rawValue)\nRewind-Target: \(target)\nRewind-App: \(app)\n"
                        + "Rewind-Reason: \(app) release \(bad.prefix(7)) failed\nRewind-Trigger: \(step.trigger)\n"
                        + (step.trigger == "alert" ? "Rewind-Alert: HighErrorRate\n" : "")
                        + (step.forced.map { "Rewind-Forced: \($0)\n" } ?? "")
                        + (step.trigger != "manual" ? "Rewind-Actor: rewind@test\n" : "")
                }
            case .pin:
                let previous = releaseOfApp[app]?.dropLast().last ?? initial
                let tree = try git(["rev-parse", "\(previous):apps/\(app)"], in: dir)
                try writeFile("\(dir)/rewind.pins.yaml", "pins:\n  \(app):\n    tree: \(tree)\n    target: \(previous)\n")
                message = "rewind: pin \(app)\n\nRewind-Action: pin\nRewind-Target: \(previous)\nRewind-App: \(app)\nRewind-Reason: held\nRewind-Trigger: api\nRewind-Actor: ci-token\n"
            case .unpin:
                try writeFile("\(dir)/rewind.pins.yaml", "pins: {}\n")
                message = "rewind: unpin \(app)\n\nRewind-Action: unpin\nRewind-App: \(app)\nRewind-Trigger: manual\n"
            }
            let sha = try commit(message, at: step.time)
            steps[i].sha = sha
            if step.kind == .deploy { releaseOfApp[app, default: []].append(sha) }
            if step.kind == .revert || step.kind == .rollback || step.kind == .gitRevert { releaseOfApp[app]?.removeLast() }
            var lines: [String] = []
            let version = "1.0.\(step.version)"
            if let a = step.applied { lines.append("applied app=\(app) version=\(version) duration=20ms time=\(iso(step.time + a)) host=test") }
            if let h = step.healthy { lines.append("healthy app=\(app) version=\(version) time=\(iso(step.time + h)) host=test") }
            if let f = step.failed {
                var line = "failed app=\(app) version=\(version) reason=\"health check failed\" time=\(iso(step.time + f)) host=test"
                if let s = step.startsAt { line += " alert=HighErrorRate startsAt=\(iso(step.time + s)) labels=\"alertname=HighErrorRate,app=\(app)\"" }
                lines.append(line)
            }
            if let v = step.verified { lines.append("verified app=\(app) time=\(iso(step.time + v)) host=test") }
            if let e = step.escalated { lines.append("escalated app=\(app) reason=\"rollback did not recover\" time=\(iso(step.time + e)) host=test") }
            notes[sha, default: []] += lines
        }
        // Two guard refusals, and a line written by hand.
        let refusedOn = steps[20].sha
        notes[refusedOn, default: []] += ["refused app=api guard=migration trigger=alert reason=\"irreversible\" time=\(iso(steps[20].time + 5)) host=test",
                                          "refused app=web guard=artifact trigger=manual reason=\"missing\" time=\(iso(steps[20].time + 6)) host=test"]
        notes[steps[30].sha, default: []].append("looks fine to me -- bob")
        for (sha, lines) in notes {
            try git(["notes", "--ref=rewind", "add", "-f", "-F", "-", sha], in: dir, stdin: lines.joined(separator: "\n") + "\n")
        }
        return steps
    }

    static func audit(_ dir: String, _ extra: [String] = []) throws -> [String: Any] {
        let result = try rewind(["audit", "--repo", dir, "--since", iso(t0), "--until", iso(t0 + 42 * 86_400), "--format", "json"] + extra)
        guard result.status == 0 else { throw TestFailure("rewind audit failed (\(result.status)): \(result.stderr)\(result.stdout)") }
        guard let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else { throw TestFailure("not JSON: \(result.stdout)") }
        return json
    }

    /// Median (mean of the two middle values, rounded down) and nearest-rank p90.
    static func summary(_ values: [Int64]) -> (Int64?, Int64?) {
        let s = values.sorted()
        guard !s.isEmpty else { return (nil, nil) }
        let n = s.count
        let median = n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
        let rank = Int((Double(n) * 0.9).rounded(.up))
        return (median, s[rank - 1])
    }

    /// What the plan says the metrics of `steps` (one app's or all) are, in [from, until).
    static func expected(_ all: [Step], apps: [String], from: Int64, until: Int64) -> [String: Any] {
        let steps = all.filter { apps.contains($0.app) }
        let inRange = steps.filter { $0.time >= from && $0.time < until }
        let deploys = inRange.filter { $0.kind == .deploy }
        let undone = Set(all.compactMap(\.undoes))
        var failed: [Step] = []
        var lead: [Int64] = []
        var recovery: [Int64] = []
        var unplanned = inRange.filter { $0.kind != .deploy && $0.kind != .unpin }.count
        for step in deploys {
            if let h = step.healthy { lead.append(h * 1000) }
            let index = all.firstIndex { $0.sha == step.sha } ?? 0
            guard step.failed != nil || undone.contains(index) else { continue }
            failed.append(step)
            let rollbackTime = all.first { $0.undoes == index }?.time
            let start = step.failed.map { f in step.time + min(f, step.startsAt ?? f) } ?? rollbackTime ?? 0
            let healthy = all[(index + 1)...].filter { $0.app == step.app }.compactMap { s in s.healthy.map { s.time + $0 } }.first { $0 >= start }
            if let healthy { recovery.append((healthy - start) * 1000) }
        }
        // Fix-forward: a deploy of the app within 24 h after the commit of one of its failed releases.
        for step in deploys {
            if steps.contains(where: { f in f.app == step.app && f.kind == .deploy && failed.contains { $0.sha == f.sha } && step.time > f.time && step.time - f.time <= 86_400 }) {
                unplanned += 1
            }
        }
        let (leadMedian, leadP90) = summary(lead)
        let (recoveryMedian, recoveryP90) = summary(recovery)
        return ["deploys": inRange.count, "deployReleases": deploys.count, "failed": failed.count, "leadMedian": leadMedian as Any, "leadP90": leadP90 as Any,
                "recoveryMedian": recoveryMedian as Any, "recoveryP90": recoveryP90 as Any, "recoveryCount": recovery.count, "unplanned": unplanned]
    }

    static func check(_ got: [String: Any], _ want: [String: Any], _ what: String) {
        func int(_ path: [String]) -> Int64? {
            var node: Any? = got
            for key in path { node = (node as? [String: Any])?[key] }
            return (node as? NSNumber)?.int64Value
        }
        #expect(int(["deploymentFrequency", "deploys"]) == Int64(want["deploys"] as? Int ?? -1), "\(what): deploys")
        #expect(int(["changeFailRate", "deployReleases"]) == Int64(want["deployReleases"] as? Int ?? -1), "\(what): deploy releases")
        #expect(int(["changeFailRate", "failed"]) == Int64(want["failed"] as? Int ?? -1), "\(what): failed releases")
        #expect(int(["changeLeadTime", "medianMilliseconds"]) == want["leadMedian"] as? Int64, "\(what): lead time median")
        #expect(int(["changeLeadTime", "p90Milliseconds"]) == want["leadP90"] as? Int64, "\(what): lead time p90")
        #expect(int(["failedDeploymentRecoveryTime", "medianMilliseconds"]) == want["recoveryMedian"] as? Int64, "\(what): recovery median")
        #expect(int(["failedDeploymentRecoveryTime", "p90Milliseconds"]) == want["recoveryP90"] as? Int64, "\(what): recovery p90")
        #expect(int(["failedDeploymentRecoveryTime", "count"]) == Int64(want["recoveryCount"] as? Int ?? -1), "\(what): recovery count")
        #expect(int(["deploymentReworkRate", "unplanned"]) == Int64(want["unplanned"] as? Int ?? -1), "\(what): unplanned deploys")
        let deploys = Double(want["deploys"] as? Int ?? 0), releases = Double(want["deployReleases"] as? Int ?? 0)
        let rate = ((got["changeFailRate"] as? [String: Any])?["rate"] as? NSNumber)?.doubleValue
        if releases > 0 { #expect(abs((rate ?? -1) - Double(want["failed"] as? Int ?? 0) / releases) < 0.0001, "\(what): change fail rate") }
        let rework = ((got["deploymentReworkRate"] as? [String: Any])?["rate"] as? NSNumber)?.doubleValue
        if deploys > 0 { #expect(abs((rework ?? -1) - Double(want["unplanned"] as? Int ?? 0) / deploys) < 0.0001, "\(what): rework rate") }
    }

    @Test func everyNumberOfTheAuditMatchesThePlan() throws {
        try withTemporaryDirectory { dir in
            let steps = try Self.build(dir)
            let json = try Self.audit(dir)
            let from = Self.t0, until = Self.t0 + 42 * 86_400
            #expect(steps.filter { $0.kind == .deploy && $0.time >= from }.count == 40)

            // The rollback table.
            let rows = json["rollbacks"] as? [[String: Any]] ?? []
            let rollbacks = steps.filter { [.revert, .rollback, .pin, .gitRevert].contains($0.kind) }
            #expect(rows.count == 6)
            #expect(rows.map { $0["commit"] as? String ?? "" } == rollbacks.map(\.sha))
            #expect(rows.map { $0["kind"] as? String ?? "" } == rollbacks.map(\.kind.rawValue))
            #expect(rows.map { $0["trigger"] as? String ?? "" } == rollbacks.map(\.trigger))
            for (row, step) in zip(rows, rollbacks) {
                let bad = steps[step.undoes ?? 0]
                let failure = bad.failed.map { f in min(f, bad.startsAt ?? f) }
                let detect = failure.map { ($0 - (bad.applied ?? 0)) * 1000 }
                let decision = failure.map { (900 - $0) * 1000 }
                #expect((row["timeToDetectMilliseconds"] as? NSNumber)?.int64Value == detect, "detect of \(step.kind)")
                #expect((row["timeToDecisionMilliseconds"] as? NSNumber)?.int64Value == decision, "decision of \(step.kind)")
                #expect((row["timeToRecoveryMilliseconds"] as? NSNumber)?.int64Value == (step.healthy ?? 0) * 1000, "recovery of \(step.kind)")
                let outcome = step.escalated != nil ? "escalated" : step.verified != nil ? "verified" : "unknown"
                #expect(row["outcome"] as? String == outcome)
                let app = (row["apps"] as? [[String: Any]])?.first
                #expect(app?["app"] as? String == step.app)
                #expect(app?["rolledBackRelease"] as? String == bad.sha)
                #expect(app?["from"] as? String == "1.0.\(bad.version)")
                #expect(app?["to"] as? String == "1.0.\(bad.version - 1)")
                #expect((row["forced"] as? [String])?.isEmpty == (step.forced == nil))
                #expect(row["actor"] as? String == (step.trigger == "manual" ? nil : step.trigger == "api" ? "ci-token" : "rewind@test"))
            }
            #expect(rows.first { $0["trigger"] as? String == "alert" }?["alert"] as? String == "HighErrorRate")

            // DORA, overall and per app, for the range and each week.
            let dora = json["dora"] as? [String: Any]
            let overall = dora?["overall"] as? [String: Any] ?? [:]
            Self.check(overall, Self.expected(steps, apps: Self.apps, from: from, until: until), "overall")
            let weeks = overall["weeks"] as? [[String: Any]] ?? []
            #expect(weeks.count == 6)
            for (w, week) in weeks.enumerated() {
                let start = from + Int64(w) * 7 * 86_400
                #expect(week["start"] as? String == Self.iso(start))
                let want = Self.expected(steps, apps: Self.apps, from: start, until: start + 7 * 86_400)
                #expect(((week["deploymentFrequency"] as? [String: Any])?["deploys"] as? NSNumber)?.intValue == want["deploys"] as? Int, "week \(w) deploys")
                #expect(((week["changeFailRate"] as? [String: Any])?["failed"] as? NSNumber)?.intValue == want["failed"] as? Int, "week \(w) failed")
            }
            for app in Self.apps {
                let got = (dora?["apps"] as? [String: Any])?[app] as? [String: Any] ?? [:]
                Self.check(got, Self.expected(steps, apps: [app], from: from, until: until), app)
            }

            // Seed 004's rollback metrics.
            let metrics = json["rollbackMetrics"] as? [String: Any] ?? [:]
            #expect((metrics["attempted"] as? NSNumber)?.intValue == 6)
            #expect((metrics["verified"] as? NSNumber)?.intValue == rollbacks.filter { $0.verified != nil }.count)
            #expect((metrics["automatic"] as? NSNumber)?.intValue == rollbacks.filter { $0.trigger == "alert" || $0.trigger == "analysis" }.count)
            #expect(abs(((metrics["successRate"] as? NSNumber)?.doubleValue ?? -1) - 4.0 / 6.0) < 0.0001)
            #expect(abs(((metrics["automationCoverage"] as? NSNumber)?.doubleValue ?? -1) - 0.5) < 0.0001)
            #expect(abs(((metrics["rollbacksPerRelease"] as? NSNumber)?.doubleValue ?? -1) - 6.0 / 40.0) < 0.0001)
            let guards = metrics["dataLossGuardsHit"] as? [String: Any]
            #expect((guards?["total"] as? NSNumber)?.intValue == 2)
            #expect((guards?["migration"] as? NSNumber)?.intValue == 1)
            #expect((guards?["artifact"] as? NSNumber)?.intValue == 1)

            // The escalation, and the hand-written note as a warning naming its commit.
            let escalations = json["escalations"] as? [[String: Any]] ?? []
            #expect(escalations.map { $0["release"] as? String ?? "" } == rollbacks.filter { $0.escalated != nil }.map(\.sha))
            let warnings = json["warnings"] as? [String] ?? []
            #expect(warnings.count == 1)
            #expect(warnings.first?.contains(String(steps[30].sha.prefix(7))) == true)

            // One app: only its rows and numbers.
            let web = try Self.audit(dir, ["web"])
            #expect((web["rollbacks"] as? [[String: Any]])?.count == rollbacks.filter { $0.app == "web" }.count)
            Self.check((web["dora"] as? [String: Any])?["overall"] as? [String: Any] ?? [:], Self.expected(steps, apps: ["web"], from: from, until: until), "web alone")
        }
    }

    /// The rollback table's commits are what the git CLI finds: commits on
    /// the first-parent chain with a `Rewind-Action` trailer (unpins are not
    /// rollbacks) and git's own reverts.
    @Test func theRollbackTableMatchesTheGitCLI() throws {
        try withTemporaryDirectory { dir in
            _ = try Self.build(dir)
            let json = try Self.audit(dir)
            let audited = Set((json["rollbacks"] as? [[String: Any]] ?? []).compactMap { $0["commit"] as? String })
            let since = "--since=\(Self.iso(Self.t0))"
            var fromGit = Set<String>()
            let trailers = try git(["log", "--first-parent", since, "--format=%H %(trailers:key=Rewind-Action,valueonly,separator=%x2C)", "main"], in: dir)
            for line in trailers.split(separator: "\n") {
                let words = line.split(separator: " ")
                if words.count == 2, words[1] != "unpin" { fromGit.insert(String(words[0])) }
            }
            let reverts = try git(["log", "--first-parent", since, "--grep=^This reverts commit ", "--format=%H", "main"], in: dir)
            fromGit.formUnion(reverts.split(separator: "\n").map(String.init))
            #expect(fromGit.count == 6)
            #expect(audited == fromGit)
        }
    }

    /// The digest in the git directory follows the notes and the branch,
    /// and a damaged one is computed again.
    @Test func theCachedDigestFollowsNewNotesAndCommits() throws {
        try withTemporaryDirectory { dir in
            let steps = try Self.build(dir)
            let outcomes = { (json: [String: Any]) in (json["rollbacks"] as? [[String: Any]] ?? []).map { $0["outcome"] as? String ?? "" } }
            let before = outcomes(try Self.audit(dir))
            #expect(before.filter { $0 == "unknown" }.count == 1)
            let gitRevert = steps.first { $0.kind == .gitRevert }?.sha ?? ""
            try git(["notes", "--ref=rewind", "append", "-m", "verified app=api time=\(Self.iso(Self.t0 + 20 * 86_400)) host=test", gitRevert], in: dir)
            #expect(outcomes(try Self.audit(dir)).filter { $0 == "unknown" }.isEmpty, "a new note is seen")
            let digests = try FileManager.default.contentsOfDirectory(atPath: dir + "/.git/rewind").filter { $0.hasPrefix("audit-") }
            #expect(digests.count == 1)
            try writeFile(dir + "/.git/rewind/" + (digests.first ?? "audit-x"), "damaged")
            #expect(outcomes(try Self.audit(dir)).filter { $0 == "unknown" }.isEmpty, "a damaged digest is computed again")
            // A new commit on the branch: a new release in the counts.
            let deploys = { (json: [String: Any]) in (((json["dora"] as? [String: Any])?["overall"] as? [String: Any])?["deploymentFrequency"] as? [String: Any])?["deploys"] as? NSNumber }
            let count = deploys(try Self.audit(dir))?.intValue ?? 0
            try writeFile(dir + "/apps/web/app.yaml", Self.appYAML("web", 99))
            try git(["add", "-A"], in: dir)
            let env = TestEnvironment.git.merging(["GIT_AUTHOR_DATE": "@\(Self.t0 + 41 * 86_400) +0000", "GIT_COMMITTER_DATE": "@\(Self.t0 + 41 * 86_400) +0000"]) { $1 }
            _ = try run("/usr/bin/git", ["commit", "-q", "-m", "web 1.0.99"], in: dir, environment: env)
            #expect(deploys(try Self.audit(dir))?.intValue == count + 1)
        }
    }
}
