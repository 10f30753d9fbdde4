import Containers
import DeployModel
import Platforms
import SystemSupport

/// Runs apps on one kind of platform. The reconciler owns this protocol:
/// its drivers are passed in (`Reconciler.init`), so that its unit tests run
/// it against a fake platform. Drivers are synchronous and called from the
/// reconciler's one thread.
public protocol PlatformDriver {
    /// Starts a deployment (spawns the process, or runs the apply command).
    /// `journal` is called with what is about to start before anything
    /// starts, then with the instance as soon as it exists, so that a
    /// reconciler killed meanwhile finds it. When `journal` throws (the
    /// state cannot be written), nothing is started, or what was is stopped.
    func start(_ deployment: Deployment, journal: (Instance) throws -> Void) throws -> Instance
    /// Like `start`, without waiting for a slow start (an apply command) to
    /// end: `poll` it. Journaled like `start`.
    func startInBackground(_ deployment: Deployment, journal: (Instance) throws -> Void) throws -> PendingStart
    /// Nil while a background start runs; the instance once it succeeded;
    /// throws when it failed or timed out.
    func poll(_ pending: PendingStart) throws -> Instance?
    /// Stops a background start that is no longer wanted.
    func cancel(_ pending: PendingStart)
    /// Nil when the instance is healthy, else why not.
    func healthProblem(_ instance: Instance, _ deployment: Deployment) -> String?
    /// Whether the instance still runs (cheap; called every tick for
    /// processes). `thorough` also runs slow checks (exec: observe).
    func observe(_ instance: Instance, _ deployment: Deployment, thorough: Bool) -> Observation
    /// Whether an instance recorded by an earlier reconciler still runs.
    func isRunning(_ instance: Instance) -> Bool
    /// Stops an instance and waits until it has.
    func stop(_ instance: Instance)
    /// Asks an instance to stop without waiting (several retire at once;
    /// `stop` then reaps each).
    func requestStop(_ instance: Instance)
    /// True when a new instance can start while `current` still serves.
    func canOverlap(_ deployment: Deployment, with current: Instance) -> Bool
}

extension PlatformDriver {
    public func startInBackground(_ deployment: Deployment, journal: (Instance) throws -> Void) throws -> PendingStart {
        PendingStart(started: try start(deployment, journal: journal), deployment: deployment)
    }

    public func poll(_ pending: PendingStart) throws -> Instance? { pending.started }

    public func cancel(_ pending: PendingStart) {
        if let started = pending.started { stop(started) }
    }

    public func requestStop(_ instance: Instance) {}
}

/// A platform that runs a deployment's one-off commands (a migration's
/// `down`) where its versions run, instead of on the host: the container
/// platform runs them in a container of the target's image.
public protocol OneOffRunner {
    /// Nil when `command` exited 0, else why not.
    func runOnce(_ command: [String], _ deployment: Deployment, what: String, timeoutMilliseconds: Int64) -> String?
}

extension ContainerPlatform: OneOffRunner {}

/// A platform whose instances outlive Rewind (containers): what it runs for
/// this reconciler and the state does not name (left by a lost state, or by
/// an engine that failed between create and record) is removed.
public protocol Sweeping {
    /// Stops and removes this reconciler's instances other than `keeping`; returns what it removed, in words.
    func sweep(keeping: [Instance]) -> [String]
}

extension ContainerPlatform: Sweeping {}

extension ProcessPlatform: PlatformDriver {}
extension ExecPlatform: PlatformDriver {}
extension ContainerPlatform: PlatformDriver {}

/// The clocks the reconciler reads and the sleep it waits with; passed in,
/// so that unit tests run it on a manual clock.
public protocol ReconcilerClock {
    /// Milliseconds on a monotonic clock: timeouts and durations.
    func monotonicMilliseconds() -> Int64
    /// Milliseconds since 1970: what is written down.
    func wallMilliseconds() -> Int64
    /// Waits (a manual clock moves on instead).
    func sleep(milliseconds: Int64)
}

/// The machine's clocks.
public struct SystemClock: ReconcilerClock {
    public init() {}
    public func monotonicMilliseconds() -> Int64 { Clock.monotonicMilliseconds() }
    public func wallMilliseconds() -> Int64 { Clock.wallMilliseconds() }
    public func sleep(milliseconds: Int64) { Clock.sleep(milliseconds: milliseconds) }
}

extension Reconciler {
    /// The process, exec and container platforms, with the apps' environment (less
    /// Rewind's secrets) and the options' search path and stop grace.
    public static func standardDrivers(_ options: ReconcilerOptions, stateDirectory: String) -> [Platform: any PlatformDriver] {
        let inherited = InheritedEnvironment.forApps(options.environment, deny: options.secretEnvironment)
        var process = ProcessPlatform(environment: inherited, searchPath: options.searchPath)
        process.graceMilliseconds = options.stopGrace
        var drivers: [Platform: any PlatformDriver] = [.process: process, .exec: ExecPlatform(environment: inherited, searchPath: options.searchPath)]
        // Containers need an engine: --container-socket, else Docker's or Podman's usual socket when there is one.
        if let socket = options.containerSocket ?? ContainerEngine.defaultSocket(), let engine = try? ContainerEngine(socket: socket) {
            let credentials = options.registry.credentials
            drivers[.container] = ContainerPlatform(engine: engine, owner: stateDirectory, registryAuth: { credentials.engineAuth(for: $0) })
        }
        return drivers
    }
}
