import Foundation
import SystemSupport
import Testing
import TestSupport

/// Blue-green and canary for `platform: container`, through Debian's HAProxy
/// in front of Podman: each version's container is published on a port of
/// its own, and the proxy moves traffic between them.
@Suite(.serialized) struct ContainerTrafficTests {
    @Test func blueGreenUnderLoadLosesNoRequestAndACrashingCanaryIsAbortedByOneRollbackCommit() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        let podman = try TestPodman(insecure: [registry.host])
        defer { podman.close() }
        let demo = ContainerPlatformTests.demo
        var images: [String: String] = [:]
        for version in ["1.0", "2.0", "3.0"] {
            images[version] = "\(registry.host)/team/web:\(version)@" + (try registry.publishImage("team/web", tag: version, program: demo, files: ["VERSION": version]))
        }
        func running(_ version: String) throws -> [String] {
            try podman.podman(["ps", "--filter", "label=rewind.app=web", "--filter", "label=rewind.version=\(version)", "--format", "{{.ID}}"])
                .stdout.split(separator: "\n").map(String.init)
        }
        guard let listen = Loopback.freeAppPort() else { throw TestFailure("no free port") }
        let blueGreen = "traffic:\n  listen: 127.0.0.1:\(listen)\n  strategy: blueGreen\n  scaleDownDelay: 2s\n"
        let canary = "traffic:\n  listen: 127.0.0.1:\(listen)\n  strategy: canary\n  steps: [50, 100]\n  interval: 1h\n"
        try withReconciler(apps: [HarnessApp("web", appYAML: ContainerPlatformTests.appYAML("1.0", images["1.0"] ?? "") + blueGreen)]) { h in
            try h.start(["--container-socket", podman.socket])
            try h.waitHealthy("web", "1.0", timeout: 60)
            let load = ProgressiveDeliveryTests.Load(port: listen)
            defer { load.stop() }
            try h.waitUntil("requests flow through the proxy to the container") { (load.counts["1.0"] ?? 0) >= 20 }

            try h.write("apps/web/app.yaml", ContainerPlatformTests.appYAML("2.0", images["2.0"] ?? "") + blueGreen)
            try h.commit("web 2.0")
            try h.waitUntil("the switch to 2.0", timeout: 60) {
                try ProgressiveDeliveryTests.rollout(h, "web")?["version"] as? String == "2.0" && ProgressiveDeliveryTests.proxyRoutesOnlyToCurrent(h, "web")
            }
            load.resetAfterInFlight()
            try h.waitUntil("2.0 serves after the switch") { (load.counts["2.0"] ?? 0) >= 20 }
            #expect(load.counts["1.0"] == nil, "after the switch, all traffic reaches the new container")
            try h.waitUntil("the rollout ends after scaleDownDelay", timeout: 30) { try ProgressiveDeliveryTests.rollout(h, "web") == nil }
            try h.waitUntil("the 1.0 container is stopped and removed", timeout: 30) { try running("1.0").isEmpty }
            load.stop()
            #expect(load.failed.isEmpty, "failed requests during the blue-green switch: \(load.failed.prefix(5))")
            #expect(try running("2.0").count == 1)

            // A canary that crashes once it has traffic: taken out, and one rollback commit returns to 2.0.
            try h.write("apps/web/app.yaml", ContainerPlatformTests.appYAML("3.0", images["3.0"] ?? "", args: ["--crash-after", "4s"]) + canary)
            let bad = try h.commit("web 3.0 canary")
            try h.waitUntil("the canary at 50%", timeout: 60) { try ProgressiveDeliveryTests.rollout(h, "web")?["weight"] as? Int == 50 }
            try h.waitUntil("the canary is aborted and rolled back", timeout: 60) {
                try h.applied("web").version == "2.0" && ProgressiveDeliveryTests.rollbackCommits(h).count == 1
            }
            let rollback = try #require(try ProgressiveDeliveryTests.rollbackCommits(h).first)
            let message = try git(["log", "-1", "--format=%B", rollback], in: h.repo)
            #expect(message.contains("Rewind-Reason: web release \(bad.prefix(7))") && message.contains("canary step 1 of 2"), "\(message)")
            try h.waitUntil("only the 2.0 container is left", timeout: 30) { try running("3.0").isEmpty && running("2.0").count == 1 }
            let shares = try ProgressiveDeliveryTests.shares(port: listen, count: 40)
            #expect(shares == ["2.0": 40], "every request reaches 2.0: \(shares)")
        }
    }
}
