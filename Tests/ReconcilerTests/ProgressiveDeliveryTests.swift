import Foundation
import GitKit
import ReconcilerStatus
import SystemSupport
import TestSupport
import Testing
import Traffic

/// Blue-green and canary releases through a real HAProxy (Debian's), with
/// real demo services and a load generator on loopback.
@Suite("Progressive delivery", .serialized)
struct ProgressiveDeliveryTests {
    /// Sends GET / to the app's listen port one request at a time from a
    /// thread of its own, and counts the answers: by version, and failures.
    final class Load: @unchecked Sendable {
        private let lock = NSLock()
        private var versions: [String: Int] = [:]
        private var failures: [String] = []
        private var running = true
        private let done = DispatchSemaphore(value: 0)

        init(port: Int, pause: Double = 0.005) {
            Thread {
                while self.isRunning {
                    do {
                        let response = try Loopback.get(port: port, path: "/", timeoutMilliseconds: 2_000)
                        let body = response.body
                        self.lock.withLock {
                            if response.status == 200, let version = body.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines) {
                                self.versions[version, default: 0] += 1
                            } else {
                                self.failures.append("\(response.status) \(body.prefix(60))")
                            }
                        }
                    } catch {
                        self.lock.withLock { self.failures.append("\(error)") }
                    }
                    Thread.sleep(forTimeInterval: pause)
                }
                self.done.signal()
            }.start()
        }

        private var isRunning: Bool { lock.withLock { running } }

        /// Stops and waits for the request in flight (again: nothing).
        func stop() {
            let wasRunning = lock.withLock { () -> Bool in
                defer { running = false }
                return running
            }
            if wasRunning { done.wait() }
        }

        var counts: [String: Int] { lock.withLock { versions } }
        var failed: [String] { lock.withLock { failures } }
        func reset() { lock.withLock { versions = [:]; failures = [] } }

        /// Forgets what was counted so far and the answer to the request in
        /// flight now, which may have been sent before what the test just
        /// saw: afterwards, every answer counted was asked for later.
        func resetAfterInFlight() {
            reset()
            let deadline = Date().addingTimeInterval(10)
            while lock.withLock({ versions.isEmpty && failures.isEmpty }) && Date() < deadline { Thread.sleep(forTimeInterval: 0.002) }
            reset()
        }
    }

    static func appYAML(version: String, traffic: String, args: [String] = [], extra: String = "") -> String {
        demoServiceYAML(version: version, args: args) + "traffic:\n" + traffic + extra
    }

    static func freePort() throws -> Int {
        guard let port = Loopback.freeAppPort() else { throw TestFailure("no free port") }
        return port
    }

    /// The versions' share of `count` requests sent one after another.
    static func shares(port: Int, count: Int) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for _ in 0..<count {
            let response = try Loopback.get(port: port, path: "/", timeoutMilliseconds: 2_000)
            let version = response.body.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            counts[response.status == 200 ? version : "failed", default: 0] += 1
        }
        return counts
    }

    static func rollout(_ h: ReconcilerHarness, _ app: String) throws -> [String: Any]? {
        (try h.app(app)["traffic"] as? [String: Any])?["rollout"] as? [String: Any]
    }

    /// True once the proxy itself sends everything to the app's recorded
    /// instance: one server has weight, and it is that instance's (a
    /// server's name ends with its port). The state is saved a moment before
    /// the proxy follows it, so the state alone says so too early, and the
    /// old server alone at full weight before the sync is one server too.
    static func proxyRoutesOnlyToCurrent(_ h: ReconcilerHarness, _ app: String) throws -> Bool {
        guard let port = try h.app(app)["port"] as? Int else { return false }
        let live = try h.proxyWeights(app).filter { $0.value > 0 }
        return live.count == 1 && live.keys.first?.hasSuffix("-\(port)") == true
    }

    static func rollbackCommits(_ h: ReconcilerHarness) throws -> [String] {
        try h.commits().filter { (try? git(["log", "-1", "--format=%B", $0], in: h.repo))?.contains("Rewind-Action: rollback") == true }
    }

    @Test("blue-green: the switch under steady load loses no request, and afterwards everything reaches the new version")
    func blueGreenHealthy() throws {
        let listen = try Self.freePort()
        let traffic = "  listen: 127.0.0.1:\(listen)\n  strategy: blueGreen\n  scaleDownDelay: 2s\n"
        try withReconciler(apps: [HarnessApp("web", appYAML: Self.appYAML(version: "1.0.0", traffic: traffic))]) { h in
            try h.start()
            try h.waitHealthy("web", "1.0.0")
            let load = Load(port: listen)
            defer { load.stop() }
            try h.waitUntil("requests flow through the proxy") { (load.counts["1.0.0"] ?? 0) >= 20 }
            try h.writeApp(HarnessApp("web", appYAML: Self.appYAML(version: "2.0.0", traffic: traffic)))
            let release = try h.commit("web 2.0.0")
            // Switched: the proxy itself routes to 2.0.0 only (the state's
            // rollout names 2.0.0 a moment before the proxy follows it).
            try h.waitUntil("the switch to 2.0.0") {
                try Self.rollout(h, "web")?["version"] as? String == "2.0.0" && Self.rollout(h, "web")?["weight"] as? Int == 100
                    && Self.proxyRoutesOnlyToCurrent(h, "web")
            }
            load.resetAfterInFlight()
            try h.waitUntil("2.0.0 serves after the switch") { (load.counts["2.0.0"] ?? 0) >= 20 }
            #expect(load.counts["1.0.0"] == nil, "after the switch, all traffic reaches the new version")
            try h.waitUntil("the old version stops after scaleDownDelay", timeout: 20) { try Self.rollout(h, "web") == nil }
            load.stop()
            #expect(load.failed.isEmpty, "failed requests: \(load.failed.prefix(5))")
            // The old server leaves the proxy once its requests in flight are
            // answered, a moment after the state says the rollout ended.
            try h.waitUntil("the proxy lets go of 1.0.0", timeout: 10) { try h.proxyWeights("web").count == 1 }
            try h.waitUntil("the promotion's note") { h.notes(on: release, waitingFor: ["promoted app=web"]).contains("promoted app=web") }
            let notes = h.notes(on: release, waitingFor: ["step app=web weight=100 version=2.0.0 strategy=blueGreen", "promoted app=web version=2.0.0"])
            #expect(notes.contains("step app=web weight=100 version=2.0.0 strategy=blueGreen"))
            #expect(notes.contains("promoted app=web version=2.0.0"))
            #expect(try Self.rollbackCommits(h).isEmpty)
        }
    }

    @Test("canary: each step's share matches its weight, a breach of the step's query takes it to 0 and writes one rollback commit naming the step and query")
    func canary() throws {
        let listen = try Self.freePort()
        let h = try ReconcilerHarness(apps: [HarnessApp("api", appYAML: Self.appYAML(version: "1.0.0", traffic: "  listen: \(listen)\n  strategy: canary\n  steps: [25, 50, 100]\n  interval: 1h\n"))])
        defer { h.close() }
        let monitoring = try MonitoringStack(scrape: [], rules: "", webhook: "http://127.0.0.1:9/", token: "unused", fileTargets: h.stateDir + "/traffic/targets.json")
        defer { monitoring.close() }
        try h.start(["--prometheus-url", "http://127.0.0.1:\(monitoring.prometheusPort)", "--analysis-interval", "500ms"])
        try h.waitHealthy("api", "1.0.0")
        let failing = h.root + "/failing"
        let traffic = """
              listen: \(listen)
              strategy: canary
              steps: [25, 50, 100]
              interval: 1h
              analysis:
                - name: canary-errors
                  query: 'sum(http_requests_total{app="$app",version="$version",code="500"})'
                  threshold: 0
                  comparison: ">"

            """
        try h.writeApp(HarnessApp("api", appYAML: Self.appYAML(version: "2.0.0", traffic: traffic, args: ["--fail-file", failing])))
        let release = try h.commit("api 2.0.0")
        try h.waitUntil("the canary at 25%") { (try Self.rollout(h, "api"))?["weight"] as? Int == 25 }
        // The proxy follows the saved state a moment later: measure once it has.
        try h.waitUntil("the proxy at 75/25") { try h.proxyWeights("api").values.filter { $0 > 0 }.sorted() == [25, 75] }
        let shares = try Self.shares(port: listen, count: 400)
        let canaryShare = Double(shares["2.0.0"] ?? 0) / 4
        #expect(abs(canaryShare - 25) <= 5, "canary share \(canaryShare)% of 400 requests: \(shares)")
        #expect(shares["failed"] == nil)
        let weights = try h.proxyWeights("api")
        #expect(weights.values.sorted() == [25, 75], "proxy weights: \(weights)")
        let status = try h.app("api")
        #expect(((status["traffic"] as? [String: Any])?["rollout"] as? [String: Any])?["line"] as? String == "step app=api weight=25 version=2.0.0 step=1/3")

        // The canary starts failing: Prometheus sees its 500s, Rewind takes it out.
        let load = Load(port: listen)
        defer { load.stop() }
        try writeFile(failing, "")
        try h.waitUntil("the canary is out of traffic and rolled back", timeout: 40) {
            try h.applied("api").version == "1.0.0" && Self.rollbackCommits(h).count == 1
        }
        #expect(try h.proxyWeights("api").values.sorted() == [100], "only the stable version is left")
        load.resetAfterInFlight()
        try h.waitUntil("only 1.0.0 answers") { (load.counts["1.0.0"] ?? 0) >= 20 }
        #expect(load.counts["2.0.0"] == nil && load.failed.isEmpty)
        load.stop()
        let rollback = try #require(try Self.rollbackCommits(h).first)
        let message = try git(["log", "-1", "--format=%B", rollback], in: h.repo)
        #expect(message.contains("Rewind-Trigger: analysis"))
        #expect(message.contains("canary step 1 of 3"), "the reason names the step: \(message)")
        #expect(message.contains("canary-errors"), "the reason names the query: \(message)")
        let notes = h.notes(on: release, waitingFor: ["step app=api weight=25 version=2.0.0", "aborted app=api weight=25 version=2.0.0"])
        #expect(notes.contains("step app=api weight=25 version=2.0.0"))
        #expect(notes.contains("aborted app=api weight=25 version=2.0.0"))
        try h.waitUntil("the rollback is verified") { h.notes(on: rollback, waitingFor: ["verified app=api"]).contains("verified app=api") }
        #expect(try Self.rollbackCommits(h).count == 1)
    }

    @Test("manual controls: pause and resume hold and release a canary, promote skips to 100%, abort takes it out and commits; each leaves a note")
    func manualControls() throws {
        let listen = try Self.freePort()
        let traffic = "  listen: \(listen)\n  strategy: canary\n  steps: [10, 50, 100]\n  interval: 1h\n"
        try withReconciler(apps: [HarnessApp("api", appYAML: Self.appYAML(version: "1.0.0", traffic: traffic))]) { h in
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            func control(_ verb: String, _ extra: [String] = []) throws -> ProcessResult {
                try rewind([verb, "api", "--repo", h.repo, "--state-dir", h.stateDir, "--actor", "ops@test"] + extra)
            }
            let none = try control("promote")
            #expect(none.status == 1 && none.stderr.contains("no rollout in progress"), "\(none.stderr)")

            try h.writeApp(HarnessApp("api", appYAML: Self.appYAML(version: "2.0.0", traffic: traffic)))
            let second = try h.commit("api 2.0.0")
            try h.waitUntil("the canary at 10%") { (try Self.rollout(h, "api"))?["weight"] as? Int == 10 }
            let paused = try control("pause", ["--reason", "looking at the graphs"])
            #expect(paused.status == 0, "\(paused.stderr)")
            #expect((try Self.rollout(h, "api"))?["paused"] as? Bool == true)
            #expect(try control("pause").stderr.contains("paused already"))
            #expect(try control("resume").status == 0)
            #expect((try Self.rollout(h, "api"))?["paused"] as? Bool == false)
            let promoted = try control("promote", ["--format", "json"])
            #expect(promoted.status == 0 && promoted.stdout.replacingOccurrences(of: " ", with: "").contains("\"ok\":true"), "\(promoted.stdout)\(promoted.stderr)")
            #expect(try Self.rollout(h, "api") == nil)
            #expect(try h.proxyWeights("api").values.sorted() == [100])
            #expect(try Self.shares(port: listen, count: 20) == ["2.0.0": 20])
            let notes = h.notes(on: second, waitingFor: ["paused app=api version=2.0.0 weight=10 by=ops@test", "resumed app=api", "promoted app=api version=2.0.0"])
            for line in ["paused app=api version=2.0.0 weight=10 by=ops@test", "resumed app=api", "promoted app=api version=2.0.0"] {
                #expect(notes.contains(line), "\(line) in \(notes)")
            }

            try h.writeApp(HarnessApp("api", appYAML: Self.appYAML(version: "3.0.0", traffic: traffic)))
            let third = try h.commit("api 3.0.0")
            try h.waitUntil("the canary of 3.0.0 at 10%") { (try Self.rollout(h, "api"))?["version"] as? String == "3.0.0" }
            let aborted = try control("abort", ["--reason", "latency"])
            #expect(aborted.status == 0, "\(aborted.stderr)")
            #expect(aborted.stdout.contains("rollback commit"))
            #expect(try Self.shares(port: listen, count: 20) == ["2.0.0": 20])
            let rollbacks = try Self.rollbackCommits(h)
            #expect(rollbacks.count == 1)
            let message = try git(["log", "-1", "--format=%B", rollbacks.first ?? "HEAD"], in: h.repo)
            #expect(message.contains("Rewind-Trigger: manual") && message.contains("Rewind-Actor: ops@test") && message.contains("latency"), "\(message)")
            #expect(h.notes(on: third, waitingFor: ["aborted app=api weight=10 version=3.0.0"]).contains("aborted app=api weight=10 version=3.0.0"))
            try h.waitUntil("the abort's rollback is verified") { h.notes(on: rollbacks.first ?? "", waitingFor: ["verified app=api"]).contains("verified app=api") }
        }
    }

    @Test("manual controls refuse clearly: an unknown app (4), no reconciler running (1), a bad --actor (64)")
    func manualControlsRefuse() throws {
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            let unknown = try rewind(["abort", "nosuch", "--repo", h.repo, "--state-dir", h.stateDir])
            #expect(unknown.status == 4 && unknown.stderr.contains("no app 'nosuch'"), "\(unknown.stderr)")
            let idle = try rewind(["pause", "api", "--repo", h.repo, "--state-dir", h.stateDir, "--format", "json"])
            #expect(idle.status == 1 && idle.stdout.contains("no reconciler runs"), "\(idle.stdout)")
            let actor = try rewind(["promote", "api", "--repo", h.repo, "--actor", "two words"])
            #expect(actor.status == 64 && actor.stderr.contains("--actor"), "\(actor.stderr)")
            #expect(!FileManager.default.fileExists(atPath: h.stateDir + "/requests/api.json"), "nothing is left behind")
        }
    }

    @Test("a rollback across two reversible migrations drains traffic, runs the down commands newest first, then restores traffic; a failing down escalates and stays drained")
    func reversibleMigrations() throws {
        let listen = try Self.freePort()
        let traffic = "  listen: \(listen)\n  strategy: blueGreen\n  scaleDownDelay: 1s\n"
        // Each down logs its migration and what the app's address answered meanwhile.
        let down = "#!/bin/sh\ncode=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:\(listen)/)\necho \"down $1 $code\" >> \"$HARNESS_DIR/downs.log\"\n[ ! -e \"$HARNESS_DIR/fail-$1\" ]\n"
        let hooks = "hooks:\n  preRollback: \"echo pre >> $HARNESS_DIR/downs.log\"\n  postRollback: \"echo post >> $HARNESS_DIR/downs.log\"\n"
        let v1 = Self.appYAML(version: "1.0.0", traffic: traffic, extra: "migrations:\n  - id: \"001\"\n" + hooks)
        let v2 = Self.appYAML(version: "2.0.0", traffic: traffic, extra: """
            migrations:
              - id: "001"
              - id: "002"
                down: ["./down.sh", "002"]
              - id: "003"
                down: ["./down.sh", "003"]

            """ + hooks)
        for failing in [false, true] {
            try withReconciler(apps: [HarnessApp("db", appYAML: v1, files: ["down.sh": down])]) { h in
                try h.start()
                try h.waitHealthy("db", "1.0.0")
                try h.writeApp(HarnessApp("db", appYAML: v2, files: ["down.sh": down]))
                try h.commit("db 2.0.0")
                try h.waitUntil("2.0.0 is promoted") { try h.applied("db").version == "2.0.0" && (try Self.rollout(h, "db")) == nil }
                if failing { try writeFile(h.root + "/fail-002", "") }
                let rolled = try rewind(["rollback", "db", "--repo", h.repo, "--reason", "bad schema"])
                #expect(rolled.status == 0, "\(rolled.stderr)")
                let rollback = try #require(try h.commits().first)
                let log = { (try? String(contentsOfFile: h.root + "/downs.log", encoding: .utf8)) ?? "" }
                if failing {
                    try h.waitUntil("the failing down escalates") { (try h.app("db"))["needsHuman"] is String }
                    #expect(log().split(separator: "\n") == ["pre", "down 003 503", "down 002 503"], "\(log())")
                    #expect(try Self.shares(port: listen, count: 5) == ["failed": 5], "traffic stays drained")
                    #expect(try h.proxyWeights("db").values.allSatisfy { $0 == 0 })
                    try h.waitUntil("the failed stage's note") { h.notes(on: rollback, waitingFor: ["sequence app=db stage=down id=002 result=failed"]).contains("sequence app=db stage=down id=002 result=failed") }
                } else {
                    try h.waitUntil("1.0.0 serves again") { try h.applied("db").version == "1.0.0" && log().contains("post") }
                    #expect(log().split(separator: "\n") == ["pre", "down 003 503", "down 002 503", "post"], "no traffic reached the app while the downs ran: \(log())")
                    #expect(try Self.shares(port: listen, count: 10) == ["1.0.0": 10])
                    try h.waitUntil("the last stage's note") { h.notes(on: rollback, waitingFor: ["sequence app=db stage=hook name=postRollback"]).contains("sequence app=db stage=hook name=postRollback") }
                    let notes = h.notes(on: rollback)
                    for stage in ["stage=hook name=preRollback", "stage=drain", "stage=down id=003", "stage=down id=002", "stage=start", "stage=restore", "stage=hook name=postRollback"] {
                        #expect(notes.contains("sequence app=db \(stage)"), "\(stage) in \(notes)")
                    }
                }
            }
        }
    }

    @Test("kill -9 of the reconciler mid-canary: after a restart the proxy routes what the state says, and a failure then writes exactly one rollback commit")
    func killMidCanary() throws {
        let listen = try Self.freePort()
        let sick = FileManager.default.temporaryDirectory.appendingPathComponent("rewind-sick-\(UUID().uuidString.prefix(6))").path
        defer { try? FileManager.default.removeItem(atPath: sick) }
        let traffic = "  listen: \(listen)\n  strategy: canary\n  steps: [25, 100]\n  interval: 1h\n"
        try withReconciler(apps: [HarnessApp("api", appYAML: Self.appYAML(version: "1.0.0", traffic: traffic))]) { h in
            try h.start()
            try h.waitHealthy("api", "1.0.0")
            try h.writeApp(HarnessApp("api", appYAML: Self.appYAML(version: "2.0.0", traffic: traffic, args: ["--health-fail-file", sick])))
            try h.commit("api 2.0.0")
            try h.waitUntil("the canary at 25%") { (try Self.rollout(h, "api"))?["weight"] as? Int == 25 }
            // The proxy follows the saved state a moment later: its weights are read once it has.
            try h.waitUntil("the proxy at 75/25") { try h.proxyWeights("api").values.filter { $0 > 0 }.sorted() == [25, 75] }
            let before = try h.proxyWeights("api")
            let proxyPid = try String(contentsOfFile: h.stateDir + "/traffic/api/proxy.pid", encoding: .utf8)
            h.kill9()
            try h.start()
            try h.waitUntil("the restarted reconciler is up") { (try h.status())["reconcilerPid"] is NSNumber }
            #expect(try h.proxyWeights("api") == before, "the adopted proxy keeps the state's weights")
            #expect(try String(contentsOfFile: h.stateDir + "/traffic/api/proxy.pid", encoding: .utf8) == proxyPid, "the proxy was adopted, not started twice")
            #expect((try Self.rollout(h, "api"))?["weight"] as? Int == 25)
            // The proxy dies too: it is started again with the last known weights.
            let pid = try #require(proxyPid.split(separator: " ").first.flatMap { Int32($0) })
            kill(pid, SIGKILL)
            try h.waitUntil("the proxy runs again with the state's weights") {
                let now = try String(contentsOfFile: h.stateDir + "/traffic/api/proxy.pid", encoding: .utf8)
                return try now != proxyPid && h.proxyWeights("api") == before
            }
            #expect(try Self.shares(port: listen, count: 40).keys.sorted() == ["1.0.0", "2.0.0"])
            try writeFile(sick, "")
            try h.waitUntil("the canary is rolled back") { try Self.rollbackCommits(h).count == 1 && h.applied("api").version == "1.0.0" }
            do {
                try h.waitUntil("verified") { h.notes(on: (try Self.rollbackCommits(h)).first ?? "").contains("verified app=api") }
            } catch {
                // Seen once in a fresh-clone run, not in 6 runs alone: the reconciler's log says where it stopped.
                Issue.record("\(error)\nstatus: \((try? h.status()) ?? [:])\nthe reconciler's log: \(h.log.suffix(4_000))")
                throw error
            }
            #expect(try Self.rollbackCommits(h).count == 1)
        }
    }
}

@testable import Reconciler
import Platforms

/// What the proxy should route, from the state alone (no proxy needed).
@Test func wantedServersFollowTheState() {
    let stable = Instance(tree: OID(hex: String(repeating: "a", count: 40))!, commit: OID(hex: String(repeating: "1", count: 40))!, version: "1.0", pid: 1, port: 4001, startedAt: 0)
    let canary = Instance(tree: OID(hex: String(repeating: "b", count: 40))!, commit: OID(hex: String(repeating: "2", count: 40))!, version: "2.0", pid: 2, port: 4002, startedAt: 0)
    var app = AppState()
    app.instance = stable
    app.health = .healthy
    #expect(Reconciler.wantedServers(app).mapValues(\.weight) == ["vaaaaaaaaaaaa-4001": 100])
    app.instance = canary
    app.rollout = Rollout(strategy: .canary, stable: stable, stableRelease: OID(hex: String(repeating: "c", count: 40)), step: 1, weight: 25, stepStartedAt: 0)
    #expect(Reconciler.wantedServers(app).mapValues(\.weight) == ["vaaaaaaaaaaaa-4001": 75, "vbbbbbbbbbbbb-4002": 25])
    app.rollout?.strategy = .blueGreen
    let blueGreen = Reconciler.wantedServers(app)
    #expect(blueGreen.mapValues(\.weight) == ["vaaaaaaaaaaaa-4001": 0, "vbbbbbbbbbbbb-4002": 100])
    #expect(blueGreen["vaaaaaaaaaaaa-4001"]?.draining == true)
    app.trafficHeld = "coordinated rollback"
    #expect(Reconciler.wantedServers(app).values.allSatisfy { $0.weight == 0 }, "drained: nothing gets traffic")
    app.rollout = nil
    app.trafficHeld = nil
    app.health = .failed
    #expect(Reconciler.wantedServers(app).isEmpty, "a failed instance gets no traffic")
}
