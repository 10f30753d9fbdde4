import Foundation
import GitKit
import Logging
import Platforms
@testable import Reconciler
import Synchronization
import SystemSupport
import ReconcilerStatus
import TestSupport

/// A clock that moves only when the reconciler sleeps or a test advances it.
final class ManualClock: ReconcilerClock, @unchecked Sendable {
    private(set) var monotonic: Int64 = 1_000_000
    private(set) var wall: Int64
    /// Called after every sleep (a test makes something happen mid-wait).
    var onSleep: (() -> Void)?

    /// Starts at the real wall time: commits the git CLI makes are "now".
    init() { wall = Clock.wallMilliseconds() }

    func monotonicMilliseconds() -> Int64 { monotonic }
    func wallMilliseconds() -> Int64 { wall }
    func sleep(milliseconds: Int64) {
        advance(max(milliseconds, 1))
        onSleep?()
    }

    func advance(_ milliseconds: Int64) {
        monotonic += milliseconds
        wall += milliseconds
    }
}

/// How a version of an app behaves on the fake platform.
enum FakeBehaviour {
    case healthy
    /// Healthy once it has run this long.
    case healthyAfter(Int64)
    /// Never healthy.
    case unhealthy
    /// Healthy, then exits this long after each start.
    case crashesAfter(Int64)
    /// Cannot start.
    case failsToStart
}

/// A platform that runs nothing: instances are records, health follows the
/// behaviour a test gave each version, and every start and stop is logged.
final class FakePlatform: PlatformDriver {
    let clock: ManualClock
    /// By "app version"; `.healthy` when not given.
    var behaviours: [String: FakeBehaviour] = [:]
    /// "start a 1", "stop a 1", in order.
    private(set) var events: [String] = []
    /// Instances started and not stopped, by pid, with their app.
    private(set) var running: [Int32: Instance] = [:]
    private var appOf: [Int32: String] = [:]
    /// The most instances waiting to become healthy at once.
    private(set) var mostStartingAtOnce = 0
    /// Called on every health probe with the app and version.
    var onProbe: ((String, String) -> Void)?
    private var nextPid: Int32 = 4_000_000

    init(clock: ManualClock) { self.clock = clock }

    func behaviour(_ app: String, _ version: String) -> FakeBehaviour { behaviours["\(app) \(version)"] ?? .healthy }

    func start(_ deployment: Deployment, journal: (Instance) throws -> Void) throws -> Instance {
        var instance = Instance(tree: deployment.tree.hex, commit: deployment.commit.hex, version: deployment.spec.version, startedAt: clock.wallMilliseconds())
        instance.platform = .process
        try journal(instance)
        if case .failsToStart = behaviour(deployment.app, deployment.spec.version) {
            throw PlatformError("cannot start \(deployment.app) \(deployment.spec.version): no such program")
        }
        nextPid += 1
        instance.pid = nextPid
        try journal(instance)
        running[nextPid] = instance
        appOf[nextPid] = deployment.app
        events.append("start \(deployment.app) \(deployment.spec.version)")
        mostStartingAtOnce = max(mostStartingAtOnce, running.values.filter { !isHealthy($0, deployment.app) }.count)
        return instance
    }

    private func isHealthy(_ instance: Instance, _ app: String) -> Bool {
        let age = clock.wallMilliseconds() - instance.startedAt
        switch behaviour(app, instance.version) {
        case .healthy, .crashesAfter: return true
        case .healthyAfter(let after): return age >= after
        case .unhealthy, .failsToStart: return false
        }
    }

    func healthProblem(_ instance: Instance, _ deployment: Deployment) -> String? {
        onProbe?(deployment.app, instance.version)
        if case .exited(let why) = observe(instance, deployment, thorough: false) { return why }
        return isHealthy(instance, deployment.app) ? nil : "GET /health answered 503"
    }

    func observe(_ instance: Instance, _ deployment: Deployment, thorough: Bool) -> Observation {
        guard let pid = instance.pid, running[pid] != nil else { return .exited("process \(instance.pid ?? 0) is gone") }
        if case .crashesAfter(let after) = behaviour(deployment.app, instance.version), clock.wallMilliseconds() - instance.startedAt >= after {
            running[pid] = nil
            events.append("crash \(deployment.app) \(instance.version)")
            return .exited("process \(pid) exited with status 1")
        }
        return .running
    }

    func isRunning(_ instance: Instance) -> Bool { instance.pid.map { running[$0] != nil } ?? false }

    func stop(_ instance: Instance) {
        guard let pid = instance.pid, running.removeValue(forKey: pid) != nil else { return }
        events.append("stop \(instance.version)")
    }

    func canOverlap(_ deployment: Deployment, with current: Instance) -> Bool { true }

    /// The versions running, by app name (from the events).
    func versions(_ app: String) -> [String] {
        running.filter { appOf[$0.key] == app }.map(\.value.version).sorted()
    }
}

/// A real deployment repository (the git CLI writes it), a state directory,
/// and a reconciler on the fake platform and the manual clock, driven one
/// pass or one supervision round at a time.
final class FakeWorld {
    let harness: ReconcilerHarness
    let clock = ManualClock()
    let platform: FakePlatform
    private(set) var reconciler: Reconciler!

    init(apps: [HarnessApp], policy: String? = nil, concurrency: Int = 8) throws {
        harness = try policy.map { try ReconcilerHarness(apps: apps, policy: $0) } ?? ReconcilerHarness(apps: apps)
        platform = FakePlatform(clock: clock)
        var options = ReconcilerOptions(repoPath: harness.repo, environment: [:], searchPath: [])
        options.stateDirectory = harness.stateDir
        options.artifactRoot = harness.artifacts
        options.concurrency = concurrency
        options.stop = StopFlag()
        options.once = true
        reconciler = try Reconciler(options: options, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                                    drivers: [.process: platform, .exec: platform], clock: clock)
    }

    deinit { harness.close() }

    /// Passes until nothing more is written and the tip stays (a rollback
    /// commit is applied by the pass after it, as is a tip that moved
    /// during a pass), at most five: the loop of `Reconciler.run`.
    func converge() {
        for _ in 0..<5 {
            let tip = try? reconciler.repo.tip()
            let moved = reconciler.pass(full: false)
            reconciler.flushNotes()
            if !moved && (try? reconciler.repo.tip()) == tip { return }
        }
    }

    /// Supervision rounds for `milliseconds` of manual time, 50 ms apart,
    /// each followed by a pass when the tip moved.
    func supervise(for milliseconds: Int64) {
        let end = clock.monotonicMilliseconds() + milliseconds
        var tip = try? reconciler.repo.tip()
        while clock.monotonicMilliseconds() < end {
            clock.advance(50)
            reconciler.supervise()
            if let now = try? reconciler.repo.tip(), now != tip {
                tip = now
                converge()
            }
        }
        reconciler.flushNotes()
    }

    var state: ReconcilerState { reconciler.state }
    func app(_ name: String) -> AppState { reconciler.state.apps[name] ?? AppState() }
    func commits() throws -> [String] { try harness.commits() }
    func message(_ commit: String) throws -> String { try git(["log", "-1", "--format=%B", commit], in: harness.repo) }
}

/// A process app.yaml for the fake platform (it runs nothing).
func fakeAppYAML(version: String, artifact: String? = nil, healthTimeout: String = "1s") -> String {
    var yaml = "platform: process\nversion: \"\(version)\"\nprocess:\n  command: /bin/true\nhealth:\n  http: /health\n  timeout: \(healthTimeout)\n  interval: 100ms\n"
    if let artifact { yaml += "artifact:\n  path: \(artifact)\n" }
    return yaml
}
