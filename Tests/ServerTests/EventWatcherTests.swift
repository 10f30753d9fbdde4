import Foundation
import Logging
import SystemSupport
import Testing
import TestSupport
@testable import Server

/// The web UI's live updates: the watcher publishes a commit as soon as the
/// branch moves (inotify), not at its next look.
@Suite struct EventWatcherTests {
    /// Synchronous on purpose: the watcher runs on a thread of its own and
    /// the hub is read directly, so nothing waits for Swift's cooperative
    /// threads, which the suite's other tests may hold.
    @Test func aCommitIsPublishedWithoutWaitingForTheNextLook() throws {
        let harness = try ReconcilerHarness(apps: [HarnessApp("api", appYAML: "platform: exec\nversion: \"1\"\nexec:\n  apply: /bin/true\n")])
        defer { harness.close() }
        let hub = EventHub()
        // A listener, so that the watcher computes the status (the stream itself is not read).
        let stream = try #require(hub.subscribe())
        // Two minutes between looks: only the watch can publish the commit within the deadline.
        let watcher = EventWatcher(hub: hub, repoPath: harness.repo, branch: nil, stateDirectory: harness.stateDir, intervalMilliseconds: 120_000,
                                   logger: Logger(label: "test"))
        let ended = AtomicFlag()
        BackgroundThread.start {
            watcher.loop()
            ended.set()
        }
        defer {
            watcher.finish()
            hub.close()
            _ = stream
            try? harness.waitUntil("the watcher ended", timeout: 10) { ended.value }
        }
        try harness.waitUntil("the first status", timeout: 30) { hub.lastStatus != nil }
        try harness.write("apps/api/app.yaml", "platform: exec\nversion: \"2\"\nexec:\n  apply: /bin/true\n")
        let commit = try harness.commit("api 2")
        try harness.waitUntil("the commit's status is published", timeout: 30) { hub.lastStatus?.data.contains("\"tip\":\"\(commit)\"") == true }
    }
}
