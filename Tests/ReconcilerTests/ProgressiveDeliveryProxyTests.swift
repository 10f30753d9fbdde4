import Foundation
import GitKit
import ReconcilerStatus
import SystemSupport
import TestSupport
import Testing
import Traffic

/// Progressive delivery through a proxy Rewind did not start, and traffic
/// settings that cannot work.
extension ProgressiveDeliveryTests {
    @Test("traffic.proxy: Rewind drives an HAProxy it did not start through its socket and backend; a socket that refuses fails the release naming it")
    func attachedProxy() throws {
        let listen = try Self.freePort()
        let external = FileManager.default.temporaryDirectory.appendingPathComponent("rewind-haproxy-\(UUID().uuidString.prefix(6))").path
        defer { try? FileManager.default.removeItem(atPath: external) }
        let config = HAProxyConfig(directory: external, frontends: [.init(app: "shop", listenPort: listen)])
        let proxy = try config.start()
        defer { Spawn.stop(proxy, graceMilliseconds: 1_000) }
        let traffic = "  listen: \(listen)\n  strategy: canary\n  steps: [50, 100]\n  interval: 1h\n  proxy:\n    socket: \(config.socket)\n    backend: shop\n"
        try withReconciler(apps: [HarnessApp("shop", appYAML: Self.appYAML(version: "1.0.0", traffic: traffic))]) { h in
            try h.start()
            try h.waitHealthy("shop", "1.0.0")
            // The proxy follows the saved state a moment later: healthy in the state is not yet routed.
            try h.waitUntil("the attached proxy routes 1.0.0") {
                try HAProxyRuntime(socket: config.socket).servers(backend: "shop").filter { $0.weight > 0 && !$0.inMaintenance && $0.operationalState == 2 }.count == 1
            }
            let before = try Self.shares(port: listen, count: 10)
            #expect(before == ["1.0.0": 10], "\(before)")
            try h.writeApp(HarnessApp("shop", appYAML: Self.appYAML(version: "2.0.0", traffic: traffic)))
            try h.commit("shop 2.0.0")
            try h.waitUntil("the canary at 50%") { (try Self.rollout(h, "shop"))?["weight"] as? Int == 50 }
            // The proxy follows the saved state a moment later (the state is written first).
            try h.waitUntil("the attached proxy at 50/50") {
                try HAProxyRuntime(socket: config.socket).servers(backend: "shop").map(\.weight).sorted() == [50, 50]
            }
            #expect(!FileManager.default.fileExists(atPath: h.stateDir + "/traffic/shop/haproxy.cfg"), "no proxy of Rewind's own")
            // A socket that refuses: the next release fails, the canary's traffic is not touched.
            let broken = traffic.replacingOccurrences(of: config.socket, with: external + "/gone.sock")
            try h.writeApp(HarnessApp("shop", appYAML: Self.appYAML(version: "3.0.0", traffic: broken)))
            let third = try h.commit("shop 3.0.0")
            try h.waitUntil("3.0.0 fails") { h.notes(on: third, waitingFor: ["failed app=shop"]).contains("failed app=shop") }
            #expect(h.notes(on: third, waitingFor: ["\(external)/gone.sock refuses connections"]).contains("\(external)/gone.sock refuses connections"), "\(h.notes(on: third))")
        }
    }

    @Test("bad traffic: a listen port in use, or no haproxy program, fails the release with the reason, and the running version keeps serving")
    func proxyProblems() throws {
        let busy = try Self.freePort()
        // Something else listens on the port the app wants.
        let blocker = try Spawn.start(SpawnOptions(program: "/usr/bin/python3",
                                                   arguments: ["-c", "import socket,time; s=socket.socket(); s.bind(('127.0.0.1', \(busy))); s.listen(); time.sleep(120)"],
                                                   environment: ProcessInfo.processInfo.environment, outputFile: "/dev/null"))
        defer { Spawn.stop(blocker, graceMilliseconds: 100) }
        try withReconciler(apps: [HarnessApp("web", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            try h.start()
            try h.waitHealthy("web", "1.0.0")
            try waitFor("the blocker listens", timeout: 10) { Loopback.canConnect(port: busy) }
            try h.writeApp(HarnessApp("web", appYAML: Self.appYAML(version: "2.0.0", traffic: "  listen: \(busy)\n  strategy: blueGreen\n")))
            // The commit's own id: the rollback that follows at once may already be the newest commit.
            let release = try h.commit("web 2.0.0 behind a proxy")
            try h.waitUntil("the release fails") { h.notes(on: release, waitingFor: ["failed app=web"]).contains("failed app=web") }
            let failed = h.notes(on: release, waitingFor: ["traffic.listen 127.0.0.1:\(busy)", "nothing was started"])
            #expect(failed.contains("traffic.listen 127.0.0.1:\(busy)") && failed.contains("nothing was started"), "\(failed)")
            #expect(try h.applied("web").version == "1.0.0")
        }
        let port = try Self.freePort()
        try withReconciler(apps: [HarnessApp("web", appYAML: Self.appYAML(version: "1.0.0", traffic: "  listen: \(port)\n  strategy: blueGreen\n"))]) { h in
            try h.start(["--haproxy", "/nonexistent/haproxy"])
            try h.waitUntil("the release fails") { ((try h.app("web"))["failed"] as? String)?.contains("is not installed") == true }
            #expect(try h.applied("web").version == nil)
            #expect(!Loopback.canConnect(port: port))
        }
    }
}
