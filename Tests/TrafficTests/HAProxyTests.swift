import Foundation
import Testing
import TestSupport
import SystemSupport
@testable import Traffic

/// A real HAProxy (Debian's) driven through its runtime API, in front of
/// two real demo-service processes: dynamic servers, weights, drain. The
/// groundwork of progressive delivery (issue 15).
@Suite struct HAProxyTests {
    /// Starts a demo service answering "hello from api VERSION" on a free port.
    static func demo(_ version: String, root: String, extra: [String] = []) throws -> (pid: pid_t, port: Int) {
        guard let port = Loopback.freeAppPort() else { throw TestFailure("no free port") }
        var environment = ProcessInfo.processInfo.environment
        environment["REWIND_VERSION"] = version
        let program = URL(fileURLWithPath: rewindBinary).deletingLastPathComponent().appendingPathComponent("rewind-demo-service").path
        let pid = try Spawn.start(SpawnOptions(program: program, arguments: ["--name", "api", "--port", "\(port)"] + extra, environment: environment, outputFile: root + "/demo-\(version).log"))
        let deadline = Date().addingTimeInterval(10)
        while !Loopback.canConnect(port: port) {
            guard Date() < deadline else { throw TestFailure("demo service \(version) did not listen") }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return (pid, port)
    }

    /// The versions that answer `count` requests through the proxy.
    static func answers(_ port: Int, _ count: Int) throws -> [String: Int] {
        var seen: [String: Int] = [:]
        for _ in 0..<count {
            let response = try Loopback.get(port: port, path: "/", timeoutMilliseconds: 2_000)
            let version = response.body.split(separator: " ").last.map { String($0).trimmingCharacters() } ?? "?"
            seen[response.status == 200 ? version : "status \(response.status)", default: 0] += 1
        }
        return seen
    }

    @Test func weightsSteerRealTrafficBetweenTwoVersions() throws {
        try withTemporaryDirectory { root in
            let v1 = try Self.demo("1.0.0", root: root), v2 = try Self.demo("2.0.0", root: root)
            guard let listen = Loopback.freeAppPort() else { throw TestFailure("no free port") }
            let config = HAProxyConfig(directory: root + "/proxy", frontends: [.init(app: "api", listenPort: listen)])
            let proxy = try config.start()
            defer {
                for pid in [proxy, v1.pid, v2.pid] { _ = Spawn.stop(pid, graceMilliseconds: 2_000) }
            }
            let runtime = HAProxyRuntime(socket: config.socket)
            #expect(try runtime.servers(backend: "api").isEmpty, "the backend starts empty")
            try runtime.addServer(backend: "api", name: "v1", address: "127.0.0.1", port: v1.port, weight: 100)
            #expect(try Self.answers(listen, 40) == ["1.0.0": 40])
            // A canary at 25%: within 5 points over 400 requests.
            try runtime.addServer(backend: "api", name: "v2", address: "127.0.0.1", port: v2.port, weight: 0)
            try runtime.setWeight(backend: "api", server: "v1", weight: 75)
            try runtime.setWeight(backend: "api", server: "v2", weight: 25)
            let split = try Self.answers(listen, 400)
            #expect(split.keys.sorted() == ["1.0.0", "2.0.0"], "\(split)")
            #expect(abs(Double(split["2.0.0"] ?? 0) / 400 - 0.25) <= 0.05, "\(split)")
            let servers = try runtime.servers(backend: "api")
            #expect(servers.map(\.name) == ["v1", "v2"] && servers.map(\.weight) == [75, 25], "\(servers)")
            #expect(servers.allSatisfy { $0.port == v1.port || $0.port == v2.port })
            // The abort: weight 0, and the very next requests go to the stable version.
            try runtime.setWeight(backend: "api", server: "v2", weight: 0)
            #expect(try Self.answers(listen, 40) == ["1.0.0": 40])
            // Blue-green: everything to v2, v1 drained then removed.
            try runtime.setWeight(backend: "api", server: "v2", weight: 100)
            try runtime.setState(backend: "api", server: "v1", .drain)
            #expect(try Self.answers(listen, 40) == ["2.0.0": 40])
            #expect(try runtime.servers(backend: "api").first { $0.name == "v1" }?.draining == true)
            try runtime.deleteServer(backend: "api", server: "v1")
            #expect(try runtime.servers(backend: "api").map(\.name) == ["v2"])
            // Refusals say what and where.
            do {
                try runtime.setWeight(backend: "api", server: "nope", weight: 10)
                Issue.record("an unknown server was accepted")
            } catch {
                #expect("\(error)".contains("refused 'set server api/nope weight 10'"), "\(error)")
            }
            #expect(throws: TrafficError.self) { try runtime.addServer(backend: "api", name: "bad name", address: "127.0.0.1", port: 1, weight: 1) }
            #expect(throws: TrafficError.self) { try runtime.setWeight(backend: "api", server: "v2", weight: 300) }
            #expect(throws: TrafficError.self) { try runtime.command("show info\nshutdown") }
        }
    }

    /// The supervisor brings HAProxy to the state, does nothing when it
    /// matches, and after a kill -9 of the proxy starts it again with the
    /// last known weights (also read back from traffic.json).
    @Test func aKilledProxyComesBackWithTheLastWeights() throws {
        try withTemporaryDirectory { root in
            let v1 = try Self.demo("1.0.0", root: root), v2 = try Self.demo("2.0.0", root: root)
            guard let listen = Loopback.freeAppPort() else { throw TestFailure("no free port") }
            let supervisor = HAProxySupervisor(config: HAProxyConfig(directory: root + "/proxy", frontends: [.init(app: "api", listenPort: listen)]))
            defer {
                supervisor.stop()
                for pid in [v1.pid, v2.pid] { _ = Spawn.stop(pid, graceMilliseconds: 2_000) }
            }
            var state = TrafficState()
            state.backends["api"] = ["v1": .init(address: "127.0.0.1", port: v1.port, weight: 90), "v2": .init(address: "127.0.0.1", port: v2.port, weight: 10)]
            #expect(try supervisor.ensure(state).changes == 2)
            #expect(try supervisor.ensure(state).changes == 0, "nothing to change")
            let first = try Self.answers(listen, 400)
            #expect(abs(Double(first["2.0.0"] ?? 0) / 400 - 0.10) <= 0.05, "\(first)")
            let old = try #require(supervisor.pid)
            kill(old, SIGKILL)
            var status: Int32 = 0
            waitpid(old, &status, 0)
            #expect(throws: (any Error).self) { try Loopback.get(port: listen, path: "/", timeoutMilliseconds: 500) }
            let saved = try #require(TrafficState.load(supervisor.stateFile))
            #expect(saved == state)
            #expect(try supervisor.ensure(saved).changes == 2, "restarted and filled again")
            #expect(supervisor.pid != old)
            let again = try Self.answers(listen, 400)
            #expect(abs(Double(again["2.0.0"] ?? 0) / 400 - 0.10) <= 0.05, "\(again)")
            // An abort: v2 to 0, then gone.
            state.backends["api"]?["v2"]?.weight = 0
            #expect(try supervisor.ensure(state).changes == 1)
            #expect(try Self.answers(listen, 40) == ["1.0.0": 40])
            state.backends["api"]?["v2"] = nil
            #expect(try supervisor.ensure(state) == SyncResult(changes: 2), "put in maintenance, then deleted")
            #expect(try HAProxyRuntime(socket: supervisor.config.socket).servers(backend: "api").map(\.name) == ["v1"])
        }
    }

    /// Sorted by name, "a-old" would be drained before "b-new" exists: a
    /// moment with no server taking requests (a failed request under load).
    @Test func syncAddsAndRaisesBeforeItLowersOrDrains() {
        let running = ["a-old": HAProxyRuntime.Server(name: "a-old", address: "127.0.0.1", port: 1, weight: 100, operationalState: 2, adminState: 0),
                       "c-other": HAProxyRuntime.Server(name: "c-other", address: "127.0.0.1", port: 3, weight: 10, operationalState: 2, adminState: 0)]
        let wanted = ["a-old": TrafficState.Server(address: "127.0.0.1", port: 1, weight: 0, draining: true),
                      "b-new": TrafficState.Server(address: "127.0.0.1", port: 2, weight: 100),
                      "c-other": TrafficState.Server(address: "127.0.0.1", port: 3, weight: 50)]
        #expect(HAProxyRuntime.syncOrder(wanted, running: running) == ["b-new", "c-other", "a-old"])
    }

    @Test func aServerWithARequestInFlightLeavesOnALaterSync() throws {
        try withTemporaryDirectory { root in
            let slow = try Self.demo("1.0.0", root: root, extra: ["--latency", "1s"]), next = try Self.demo("2.0.0", root: root)
            guard let listen = Loopback.freeAppPort() else { throw TestFailure("no free port") }
            let config = HAProxyConfig(directory: root + "/proxy", frontends: [.init(app: "api", listenPort: listen)])
            let proxy = try config.start()
            defer {
                for pid in [proxy, slow.pid, next.pid] { _ = Spawn.stop(pid, graceMilliseconds: 2_000) }
            }
            let runtime = HAProxyRuntime(socket: config.socket)
            try runtime.sync(backend: "api", to: ["v1": .init(address: "127.0.0.1", port: slow.port, weight: 100)])
            let answered = AtomicFlag()
            Thread {
                if (try? Loopback.get(port: listen, path: "/", timeoutMilliseconds: 5_000))?.status == 200 { answered.set() }
            }.start()
            try waitFor("the request reaches v1", timeout: 5) {
                // show stat's fifth column: the server's current sessions.
                try runtime.command("show stat").split(separator: "\n").contains { $0.hasPrefix("api,v1,") && $0.split(separator: ",")[4] != "0" }
            }
            let first = try runtime.sync(backend: "api", to: ["v2": .init(address: "127.0.0.1", port: next.port, weight: 100)])
            #expect(first.leaving == ["v1"], "v1 still serves a request: \(first)")
            #expect(try Self.answers(listen, 5) == ["2.0.0": 5], "nothing new reaches v1")
            try waitFor("the slow request is answered", timeout: 5) { answered.value }
            let second = try runtime.sync(backend: "api", to: ["v2": .init(address: "127.0.0.1", port: next.port, weight: 100)])
            #expect(second.leaving.isEmpty)
            #expect(try runtime.servers(backend: "api").map(\.name) == ["v2"])
        }
    }

    @Test func aMissingSocketOrProgramIsAClearError() throws {
        try withTemporaryDirectory { root in
            do {
                _ = try HAProxyRuntime(socket: root + "/none.sock").servers(backend: "api")
                Issue.record("no error")
            } catch {
                #expect("\(error)".contains(root + "/none.sock") && "\(error)".contains("refuses connections"), "\(error)")
            }
            do {
                _ = try HAProxyConfig(directory: root, frontends: [.init(app: "api", listenPort: 1)]).start(haproxy: "no-such-haproxy")
                Issue.record("no error")
            } catch {
                #expect("\(error)".contains("'no-such-haproxy' program is not installed"), "\(error)")
            }
        }
    }

    @Test func serversStateParsesHAProxysColumns() {
        let text = """
        1
        # be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
        3 api 1 v1 127.0.0.1 2 8 75 75 4 1 0 0 0 0 0 0 - 41000 - 0 0 - - 0
        """
        let servers = HAProxyRuntime.parseServersState(text)
        #expect(servers == [HAProxyRuntime.Server(name: "v1", address: "127.0.0.1", port: 41000, weight: 75, operationalState: 2, adminState: 8)])
        #expect(servers.first?.draining == true && servers.first?.inMaintenance == false)
    }
}

/// An HAProxy runtime socket that never answers, or hangs up: an error
/// within the runtime API's deadline, never a death or a hang.
@Suite struct HAProxySocketFaultTests {
    @Test func aSocketThatNeverAnswersTimesOut() throws {
        try withTemporaryDirectory { dir in
            let host = try FaultyHost(.silent, unixPath: dir + "/haproxy.sock")
            defer { host.stop() }
            var runtime = HAProxyRuntime(socket: dir + "/haproxy.sock")
            runtime.timeoutMilliseconds = 300
            let error = try #require(throws: TrafficError.self) { try runtime.servers(backend: "api") }
            #expect("\(error)".contains("no answer"), "\(error)")
        }
    }

    @Test func aSocketThatHangsUpIsAnError() throws {
        try withTemporaryDirectory { dir in
            let host = try FaultyHost(.hangsUp, unixPath: dir + "/haproxy.sock")
            defer { host.stop() }
            let runtime = HAProxyRuntime(socket: dir + "/haproxy.sock")
            for _ in 0..<10 {
                #expect(throws: (any Error).self) { _ = try runtime.servers(backend: "api") }
            }
        }
    }
}
