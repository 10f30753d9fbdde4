import Foundation
import SystemSupport
import Testing
import TestSupport

/// Day-to-day commands against a running reconciler: one app's detail, its
/// logs, and a release shown by number.
@Suite struct OperateTests {
    @Test func statusOfOneAppLogsAndReleasesByNumber() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0")), HarnessApp("web", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            try h.write("apps/api/app.yaml", demoServiceYAML(version: "1.1.0"))
            let second = try h.commit("api 1.1.0")
            try h.waitHealthy("api", "1.1.0")
            let pid = try #require(try h.applied("api").pid)
            try h.waitUntil("the healthy note is written") { h.notes(on: second, waitingFor: ["healthy app=api"]).contains("healthy app=api") }

            let detail = try rewind(["status", "api", "--repo", h.repo, "--state-dir", h.stateDir])
            #expect(detail.status == 0, "\(detail.stderr)")
            for text in ["pid \(pid)", "restarts:    0", "\(h.stateDir)/logs/api.log", "healthy since", "applied  version=1.1.0", "healthy  version=1.1.0", second.prefix(7).description] {
                #expect(detail.stdout.contains(text), "\(text) in:\n\(detail.stdout)")
            }
            #expect(!detail.stdout.contains("web"), "one app only")
            let json = try rewind(["status", "api", "--format", "json", "--repo", h.repo, "--state-dir", h.stateDir])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            #expect(object["pid"] as? Int == Int(pid) && object["logFile"] as? String == h.stateDir + "/logs/api.log")
            // One time form in JSON: RFC 3339 in UTC, with milliseconds.
            for key in ["startedAt", "healthySince", "healthObservedAt"] {
                let text = object[key] as? String ?? ""
                #expect(text.count == 24 && text.hasSuffix("Z") && text.dropFirst(19).hasPrefix("."), "\(key): \(text)")
            }
            #expect((object["history"] as? [[String: Any]])?.contains { $0["outcome"] as? String == "healthy" && $0["release"] as? String == String(second.prefix(7)) } == true)
            let unknown = try rewind(["status", "nope", "--repo", h.repo, "--state-dir", h.stateDir])
            #expect(unknown.status == 4 && unknown.stderr.contains("unknown app 'nope'"))

            // Logs: both versions' output, in order; --tail 1 the last line only.
            let logs = try rewind(["logs", "api", "--repo", h.repo, "--state-dir", h.stateDir])
            #expect(logs.status == 0, "\(logs.stderr)")
            let lines = logs.stdout.split(separator: "\n")
            let first = try #require(lines.firstIndex { $0.contains("demo service api 1.0.0 listening") })
            let next = try #require(lines.firstIndex { $0.contains("demo service api 1.1.0 listening") })
            #expect(first < next)
            let tail = try rewind(["logs", "api", "--tail", "1", "--repo", h.repo, "--state-dir", h.stateDir])
            #expect(tail.stdout.split(separator: "\n").count == 1 && tail.stdout.contains("1.1.0"), "\(tail.stdout)")
            #expect(try rewind(["logs", "nope", "--repo", h.repo, "--state-dir", h.stateDir]).status == 4)

            // show APP#N: the app's release number N.
            let shown = try rewind(["show", "api#2", "--repo", h.repo])
            #expect(shown.status == 0, "\(shown.stderr)")
            #expect(shown.stdout.contains("commit \(second)"), "\(shown.stdout)")
            let missing = try rewind(["show", "api#9", "--repo", h.repo])
            #expect(missing.status == 4 && missing.stderr.contains("has no release #9"), "\(missing.stderr)")
        }
    }

    /// `logs -f` prints what the app writes after it started, until interrupted.
    @Test func logsFollowPrintsWhatIsWrittenLater() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            let output = h.root + "/follow.out"
            let follower = try Spawn.start(SpawnOptions(program: rewindBinary, arguments: ["logs", "api", "-f", "--repo", h.repo, "--state-dir", h.stateDir],
                                                        environment: ProcessInfo.processInfo.environment, outputFile: output))
            defer { _ = Spawn.stop(follower, graceMilliseconds: 2_000) }
            try h.waitUntil("the existing output is printed") { ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").contains("api 1.0.0 listening") }
            try h.write("apps/api/app.yaml", demoServiceYAML(version: "1.1.0"))
            try h.commit("api 1.1.0")
            try h.waitUntil("the new version's output follows") { ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").contains("api 1.1.0 listening") }
        }
    }

    /// `status --watch` into a file (not a terminal): a line per app that changed.
    @Test func statusWatchStreamsALinePerChange() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0")), HarnessApp("web", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            try h.waitHealthy("web", "1.0.0")
            let output = h.root + "/watch.out"
            let watcher = try Spawn.start(SpawnOptions(program: rewindBinary, arguments: ["status", "--watch", "--repo", h.repo, "--state-dir", h.stateDir],
                                                       environment: ProcessInfo.processInfo.environment, outputFile: output))
            defer { _ = Spawn.stop(watcher, graceMilliseconds: 2_000) }
            func text() -> String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }
            try h.waitUntil("the first lines") { text().contains("web desired=1.0.0 applied=1.0.0 health=healthy") }
            try h.write("apps/api/app.yaml", demoServiceYAML(version: "1.1.0"))
            try h.commit("api 1.1.0")
            try h.waitUntil("the change is streamed") { text().contains("api desired=1.1.0 applied=1.1.0 health=healthy") }
            // Only what changed: web's line is not repeated.
            #expect(text().components(separatedBy: "web desired=").count - 1 == 1, "\(text())")
            #expect(text().split(separator: "\n").allSatisfy { $0.hasPrefix("20") }, "each line starts with its time")
        }
    }
}
