import Foundation
import Testing
import TestSupport

/// Dependency waves: apps whose dependencies are satisfied start and are
/// waited for together; the next wave starts when they are healthy.
@Suite struct WaveTests {
    /// The log's lines, for order checks.
    func position(_ h: ReconcilerHarness, _ text: String) throws -> Int {
        let lines = h.log.split(separator: "\n")
        guard let index = lines.firstIndex(where: { $0.contains(text) }) else { throw TestFailure("no log line with '\(text)'\n\(h.log.suffix(3000))") }
        return index
    }

    static func apps(readyAfter: String) -> [HarnessApp] {
        [HarnessApp("a", appYAML: demoServiceYAML(version: "1", args: ["--ready-after", readyAfter])),
         HarnessApp("b", appYAML: demoServiceYAML(version: "1", args: ["--ready-after", readyAfter])),
         HarnessApp("c", dependsOn: ["a", "b"], appYAML: demoServiceYAML(version: "1", args: ["--ready-after", readyAfter]))]
    }

    @Test func appsOfOneWaveStartTogetherAndTheNextWaveWaits() throws {
        try withReconciler(apps: Self.apps(readyAfter: "500ms")) { h in
            try h.start()
            try h.waitHealthy("c", "1")
            // a and b both started before either was healthy: one wave.
            #expect(try position(h, "applying b 1") < position(h, "a 1 is healthy"))
            // c waited for both.
            let (c, a, b) = (try position(h, "applying c 1"), try position(h, "a 1 is healthy"), try position(h, "b 1 is healthy"))
            #expect(c > a && c > b)
        }
    }

    @Test func concurrencyOneKeepsTheOldOrder() throws {
        try withReconciler(apps: Self.apps(readyAfter: "200ms")) { h in
            try h.start(["--concurrency", "1"])
            try h.waitHealthy("c", "1")
            #expect(try position(h, "applying b 1") > position(h, "a 1 is healthy"))
        }
    }

    /// A long health wait does not hide a new tip: the app the new tip
    /// changes stops waiting, the others finish, nothing fails.
    @Test func aNewTipDuringALongWaitStopsTheWaitsItMakesMoot() throws {
        let apps = [HarnessApp("slow", appYAML: demoServiceYAML(version: "1")), HarnessApp("fast", appYAML: demoServiceYAML(version: "1"))]
        try withReconciler(apps: apps) { h in
            try h.start()
            try h.waitHealthy("slow", "1")
            try h.waitHealthy("fast", "1")
            try h.write("apps/slow/app.yaml", demoServiceYAML(version: "2", args: ["--ready-after", "60s"], healthTimeout: "90s"))
            try h.write("apps/fast/app.yaml", demoServiceYAML(version: "2", args: ["--ready-after", "300ms"]))
            try h.commit("slow 2 and fast 2")
            try h.waitUntil("slow 2 is being waited for") { h.log.contains("applying slow 2") }
            try h.write("apps/slow/app.yaml", demoServiceYAML(version: "3"))
            try h.commit("slow 3 instead")
            try h.waitHealthy("slow", "3", timeout: 20)
            try h.waitHealthy("fast", "2")
            #expect(h.log.contains("slow: the tip moved on; stopped waiting for 2"))
            #expect(!h.log.contains("failed"), "\(h.log.suffix(2000))")
            #expect(try h.commits().count == 3, "no rollback commit")
        }
    }
}
