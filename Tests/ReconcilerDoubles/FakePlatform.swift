import Foundation
import GitKit
import Logging
import Platforms
import Reconciler
import Synchronization
import SystemSupport
import ReconcilerStatus
import TestSupport

/// A clock that moves only when the reconciler sleeps or a test advances it.
public final class ManualClock: ReconcilerClock, @unchecked Sendable {
    public private(set) var monotonic: Int64 = 1_000_000
    public private(set) var wall: Int64
    /// Called after every sleep (a test makes something happen mid-wait).
    public var onSleep: (() -> Void)?

    /// Starts at the real wall time: commits the git CLI makes are "now".
    public init() { wall = Clock.wallMilliseconds() }

    public func monotonicMilliseconds() -> Int64 { monotonic }
    public func wallMilliseconds() -> Int64 { wall }
    public func sleep(milliseconds: Int64) {
        advance(max(milliseconds, 1))
        onSleep?()
    }

    public func advance(_ milliseconds: Int64) {
        monotonic += milliseconds
        wall += milliseconds
    }
}

/// How a version of an app behaves on the fake platform.
public enum FakeBehaviour {
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
public final class FakePlatform: PlatformDriver {
    public let clock: ManualClock
    /// By "app version"; `.healthy` when not given.
    public var behaviours: [String: FakeBehaviour] = [:]
    /// "start a 1", "stop a 1", in order.
    public private(set) var events: [String] = []
    /// Instances started and not stopped, by pid, with their app.
    public private(set) var running: [Int32: Instance] = [:]
    private var appOf: [Int32: String] = [:]
    /// The most instances waiting to become healthy at once.
    public private(set) var mostStartingAtOnce = 0
    /// Called on every health probe with the app and version.
    public var onProbe: ((String, String) -> Void)?
    /// Called after each start with the app and version.
    public var onStart: ((String, String) -> Void)?
    private var nextPid: Int32 = 4_000_000

    public init(clock: ManualClock) { self.clock = clock }

    public func behaviour(_ app: String, _ version: String) -> FakeBehaviour { behaviours["\(app) \(version)"] ?? .healthy }

    public func start(_ deployment: Deployment, journal: (Instance) throws -> Void) throws -> Instance {
        var instance = Instance(tree: deployment.tree, commit: deployment.commit, version: deployment.spec.version, startedAt: clock.wallMilliseconds())
        instance.platform = .process
        try journal(instance)
        if case .failsToStart = behaviour(deployment.app, deployment.spec.version) {
            throw PlatformError("cannot start \(deployment.app) \(deployment.spec.version): no such program")
        }
        nextPid += 1
        instance.pid = nextPid
        // A port of its own, as the process platform gives (the proxy routes to it).
        instance.port = 20_000 + Int(nextPid % 10_000)
        try journal(instance)
        running[nextPid] = instance
        appOf[nextPid] = deployment.app
        events.append("start \(deployment.app) \(deployment.spec.version)")
        mostStartingAtOnce = max(mostStartingAtOnce, running.values.filter { !isHealthy($0, deployment.app) }.count)
        onStart?(deployment.app, deployment.spec.version)
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

    public func healthProblem(_ instance: Instance, _ deployment: Deployment) -> String? {
        onProbe?(deployment.app, instance.version)
        if case .exited(let why) = observe(instance, deployment, thorough: false) { return why }
        return isHealthy(instance, deployment.app) ? nil : "GET /health answered 503"
    }

    public func observe(_ instance: Instance, _ deployment: Deployment, thorough: Bool) -> Observation {
        guard let pid = instance.pid, running[pid] != nil else { return .exited("process \(instance.pid ?? 0) is gone") }
        if case .crashesAfter(let after) = behaviour(deployment.app, instance.version), clock.wallMilliseconds() - instance.startedAt >= after {
            running[pid] = nil
            events.append("crash \(deployment.app) \(instance.version)")
            return .exited("process \(pid) exited with status 1")
        }
        return .running
    }

    public func isRunning(_ instance: Instance) -> Bool { instance.pid.map { running[$0] != nil } ?? false }

    public func stop(_ instance: Instance) {
        guard let pid = instance.pid, running.removeValue(forKey: pid) != nil else { return }
        events.append("stop \(instance.version)")
    }

    public func canOverlap(_ deployment: Deployment, with current: Instance) -> Bool { true }

    /// The versions running, by app name (from the events).
    public func versions(_ app: String) -> [String] {
        running.filter { appOf[$0.key] == app }.map(\.value.version).sorted()
    }
}

