import Foundation
import GitKit
import Logging
import Platforms
import Reconciler
import ReconcilerStatus
import SystemSupport
import TestSupport

/// A real deployment repository (the git CLI writes it), a state directory,
/// and a reconciler on the fake platform, proxy, metrics source and
/// notification transport, with a manual clock: the real `tick`, one turn
/// at a time, as swift-nio's EmbeddedEventLoop drives a channel.
public final class FakeWorld {
    public let harness: ReconcilerHarness
    public let clock = ManualClock()
    public let platform: FakePlatform
    public let router = FakeRouter()
    public let metrics = FakeMetrics()
    public let transport = FakeTransport()
    public private(set) var reconciler: Reconciler!
    /// What the reconciler logged (level and message), in order.
    public let log = LogCapture()

    /// `configure` changes the options before the reconciler is made.
    public init(apps: [HarnessApp], policy: String? = nil, concurrency: Int = 8, configure: (inout ReconcilerOptions) -> Void = { _ in }) throws {
        harness = try policy.map { try ReconcilerHarness(apps: apps, policy: $0) } ?? ReconcilerHarness(apps: apps)
        platform = FakePlatform(clock: clock)
        var options = ReconcilerOptions(repoPath: harness.repo, environment: [:], searchPath: [])
        options.stateDirectory = harness.stateDir
        options.artifactRoot = harness.artifacts
        options.concurrency = concurrency
        options.stop = StopFlag()
        options.metrics = metrics
        let clock = self.clock
        options.notifier = Notifier(targets: [Notifier.Target(url: "http://127.0.0.1:9/hook", slack: false)].compactMap { $0 },
                                    transport: transport, background: false, clock: { clock.monotonicMilliseconds() }, log: { _ in })
        configure(&options)
        let log = self.log
        reconciler = try Reconciler(options: options, logger: Logger(label: "test", factory: { _ in log }),
                                    drivers: [.process: platform, .exec: platform], clock: clock, router: router)
    }

    deinit { harness.close() }

    /// Ticks until nothing more is written and the tip stays (a rollback
    /// commit is applied by the tick after it, as is a tip that moved
    /// during a pass), at most five, with no time passing.
    public func converge() {
        for _ in 0..<5 {
            let tip = try? reconciler.repo.tip()
            let result = try? reconciler.tick(now: clock.monotonicMilliseconds())
            if result != .passAgain && (try? reconciler.repo.tip()) == tip { return }
        }
    }

    /// The loop of `Reconciler.run` for `milliseconds` of manual time: a
    /// tick every poll interval (50 ms), notifications delivered as they fall due.
    public func run(for milliseconds: Int64) {
        let end = clock.monotonicMilliseconds() + milliseconds
        while clock.monotonicMilliseconds() < end {
            clock.advance(50)
            while (try? reconciler.tick(now: clock.monotonicMilliseconds())) == .passAgain {}
            deliverNotifications()
        }
    }

    /// Delivers the notifications that are due through the fake transport.
    public func deliverNotifications() {
        while reconciler.options.notifier?.deliverDue() == true {}
    }

    public var state: ReconcilerState { reconciler.state }
    /// What status says a human must look at for `app` (the escalation store, as status reads it).
    public func needsHuman(_ app: String) -> String? {
        (try? StatusReport.build(repo: reconciler.repo, stateDirectory: harness.stateDir))?.apps.first { $0.name == app }?.needsHuman
    }
    public func app(_ name: String) -> AppState { reconciler.state.apps[name] ?? AppState() }
    public func commits() throws -> [String] { try harness.commits() }
    public func message(_ commit: String) throws -> String { try git(["log", "-1", "--format=%B", commit], in: harness.repo) }
    /// The notes on a commit (the git CLI reads them).
    public func notes(_ commit: String) -> String { (try? git(["notes", "--ref", "rewind", "show", commit], in: harness.repo)) ?? "" }
}

/// A process app.yaml for the fake platform (it runs nothing).
public func fakeAppYAML(version: String, artifact: String? = nil, healthTimeout: String = "1s", traffic: String? = nil) -> String {
    var yaml = "platform: process\nversion: \"\(version)\"\nprocess:\n  command: /bin/true\nhealth:\n  http: /health\n  timeout: \(healthTimeout)\n  interval: 100ms\n"
    if let artifact { yaml += "artifact:\n  path: \(artifact)\n" }
    if let traffic { yaml += "traffic:\n" + traffic }
    return yaml
}

/// Log lines, kept for the test to read.
public final class LogCapture: LogHandler, @unchecked Sendable {
    private let lock = NSLock()
    private var stored: [(Logger.Level, String)] = []
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .trace

    public init() {}

    public var lines: [(level: Logger.Level, message: String)] { lock.withLock { stored } }
    public func contains(_ text: String) -> Bool { lines.contains { $0.message.contains(text) } }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        lock.withLock { stored.append((event.level, "\(event.message)")) }
    }
}
