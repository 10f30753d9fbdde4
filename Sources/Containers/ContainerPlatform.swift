import DeployModel
import FoundationEssentials
import Platforms
import Synchronization
import SystemSupport

/// The `container` platform: each version of an app runs as a container of
/// its own, labelled `rewind.app`, `rewind.tree`, `rewind.commit` and
/// `rewind.version`, published on a port of its own on 127.0.0.1. The image
/// is pulled (by digest) before anything is created, so a registry that
/// fails leaves the running version alone.
public final class ContainerPlatform: Sendable {
    public let engine: ContainerEngine
    /// Containers the engine reported dead (`die` events), by id: a crash is
    /// seen from the engine's event stream, not by asking after every container.
    private let died = Mutex<Set<String>>([])
    private let following = AtomicFlag()
    /// The engine's API version was checked (Podman's `/version` takes half
    /// a second): later starts only ping it, until it stops answering.
    private let versionChecked = Mutex(false)
    /// Containers whose output is copied into their app's log file, by id:
    /// when (monotonic ms) a stream that ended may be opened again
    /// (`Int64.max` while one is open).
    private let logged = Mutex<[String: Int64]>([:])

    /// Which Rewind started a container (label `rewind.owner`: its state
    /// directory): only its own are adopted or swept.
    public let owner: String

    /// The `X-Registry-Auth` for a registry (from `--registry-auth`), if any.
    let registryAuth: @Sendable (String) -> String?
    /// Picks the port on 127.0.0.1 a new version's container is published on.
    let ports: @Sendable () -> Int?

    public init(engine: ContainerEngine, owner: String, registryAuth: @escaping @Sendable (String) -> String? = { _ in nil },
                ports: @escaping @Sendable () -> Int? = { Loopback.freeAppPort() }) {
        self.engine = engine
        self.owner = owner
        self.registryAuth = registryAuth
        self.ports = ports
    }

    /// Follows the engine's `die` events of Rewind's containers on a thread
    /// of its own, from the first container on; a stream that ends is opened
    /// again a second later, from a little before it ended.
    func followEvents() {
        guard !following.value else { return }
        following.set()
        BackgroundThread.start { [self] in
            var since = Clock.wallMilliseconds() / 1000 - 1
            while true {
                engine.events(since: since) { [self] id, labels in
                    // Only this reconciler's versions: not one-off tasks, not another reconciler's containers.
                    guard labels["rewind.owner"] == owner, labels["rewind.task"] == nil else { return }
                    _ = died.withLock { $0.insert(id) }
                }
                since = Clock.wallMilliseconds() / 1000 - 5
                Clock.sleep(milliseconds: 1_000)
            }
        }
    }

    /// The engine's name for an image pinned by digest.
    static func imageName(_ image: OCIReference) -> String { "\(image.registry)/\(image.repository)@\(image.digest ?? "")" }

    public func start(_ deployment: Deployment, journal: (Instance) throws -> Void) throws -> Instance {
        guard let settings = deployment.spec.container else { throw PlatformError("\(deployment.app) has no container settings") }
        let image = Self.imageName(settings.image)
        do {
            // An engine that does not answer holds the release (tried again); one that speaks no API Rewind does fails it.
            if versionChecked.withLock({ $0 }) { try engine.ping() } else { _ = try engine.version() }
            versionChecked.withLock { $0 = true }
            try ensureImage(settings.image)
        } catch where error.unreachable {
            versionChecked.withLock { $0 = false }  // perhaps another engine when it is back
            throw Self.unavailable(deployment, error)
        } catch {
            throw PlatformError("\(deployment.app): \(error)")
        }
        followEvents()
        if let adopted = adopt(deployment) {
            try journal(adopted)
            return adopted
        }
        // A port that was free when picked may be taken before the engine binds it: another is tried, twice.
        var taken: [String] = []
        while taken.count < 3 {
            guard let hostPort = ports() else { throw PlatformError("no free port on 127.0.0.1 for \(deployment.app)") }
            do {
                return try launch(deployment, settings, image: image, hostPort: hostPort, journal: journal)
            } catch let error as EngineError where error.description.contains("address already in use") {
                taken.append(String(hostPort))
            } catch let error as EngineError where error.unreachable {
                throw Self.unavailable(deployment, error)
            } catch let error as EngineError {
                throw PlatformError("\(deployment.app): \(error)")
            }
        }
        throw PlatformError("\(deployment.app): ports \(taken.joined(separator: ", ")) on 127.0.0.1 were each in use when the container engine published them; "
                            + "nothing was started, the running version stays (free ports, or another Rewind on this host with the same range?)")
    }

    /// The engine did not answer: the release waits for it (tried again), not failed.
    static func unavailable(_ deployment: Deployment, _ error: EngineError) -> PlatformUnavailable {
        PlatformUnavailable("\(deployment.app) \(deployment.spec.version) waits for the container engine: \(error); the running version keeps serving")
    }

    /// Pulls `image` unless the engine's store has it, with the registry's credentials.
    private func ensureImage(_ image: OCIReference) throws(EngineError) {
        if !engine.hasImage(Self.imageName(image)) { try engine.pull(image, auth: registryAuth(image.registry)) }
    }

    /// `; last output: …` of a container that ended (its last 3 lines), or nothing.
    private func lastOutput(_ id: String) -> String {
        let output = engine.lastOutput(id, lines: 3)
        return output.isEmpty ? "" : "; last output: \(Bounded.text(output, limit: 300))"
    }

    /// Creates and starts the version's container on `hostPort`, journaled
    /// first by the name it will have; a container that does not start (or
    /// cannot be recorded) is removed. Throws the engine's or the journal's error.
    private func launch(_ deployment: Deployment, _ settings: ContainerSettings, image: String, hostPort: Int,
                        journal: (Instance) throws -> Void) throws -> Instance {
        var instance = Instance(tree: deployment.tree, commit: deployment.commit, version: deployment.spec.version, port: hostPort, startedAt: Clock.wallMilliseconds())
        instance.platform = .container
        instance.launch = "rewind-\(deployment.app)-\(deployment.tree.short)-\(hostPort)"
        try journal(instance)
        let spec = containerSpec(deployment, settings, name: instance.launch ?? "", image: image, hostPort: hostPort)
        do {
            let id = try engine.create(spec)
            instance.container = id
            try journal(instance)
            try engine.start(id)
            followLogs(id, into: deployment.logFile, since: instance.startedAt / 1000 - 1)
        } catch {
            if let id = instance.container { try? engine.remove(id, force: true) }
            throw error
        }
        return instance
    }

    /// A running container of this owner for the same app and tree, which a
    /// lost state no longer names: taken over instead of starting a second.
    func adopt(_ deployment: Deployment) -> Instance? {
        guard let found = ((try? engine.list(label: "rewind.app=\(deployment.app)")) ?? []).first(where: { summary in
            let labels = summary.Labels ?? [:]
            return labels["rewind.owner"] == owner && labels["rewind.tree"] == deployment.tree.hex && labels["rewind.task"] == nil && summary.State == "running"
        }), let state = try? engine.inspect(found.Id), state.State.Running, let port = state.hostPort else { return nil }
        var instance = Instance(tree: deployment.tree, commit: deployment.commit, version: deployment.spec.version, port: port, startedAt: Clock.wallMilliseconds())
        instance.platform = .container
        instance.container = state.Id
        instance.launch = String(state.Name.drop { $0 == "/" })
        return instance
    }

    public func sweep(keeping: [Instance]) -> [String] {
        let kept = Set(keeping.compactMap(\.container))
        let names = Set(keeping.compactMap(\.launch))
        guard let listed = try? engine.list(label: "rewind.owner=\(owner)") else { return [] }
        var removed: [String] = []
        for summary in listed where summary.Labels?["rewind.owner"] == owner && summary.Labels?["rewind.task"] == nil && !kept.contains(summary.Id) {
            let name = (summary.Names?.first).map { String($0.drop { $0 == "/" }) } ?? ""
            guard !names.contains(name) else { continue }
            try? engine.stop(summary.Id, timeoutSeconds: nil)
            try? engine.remove(summary.Id, force: true)
            logged.withLock { $0[summary.Id] = nil }
            _ = died.withLock { $0.remove(summary.Id) }
            removed.append("\(summary.Labels?["rewind.app"] ?? "?") \(summary.Labels?["rewind.version"] ?? "?") (container \(summary.Id.prefix(12)))")
        }
        return removed
    }

    /// Copies a container's output into the app's log file (what `rewind
    /// logs` reads), on a thread of its own, one stream per container. A
    /// stream that ends (the container did, or the engine restarted) may be
    /// opened again 5 s later by `observe`, from the log file's last change on.
    func followLogs(_ id: String, into file: String, since: Int64) {
        let now = Clock.monotonicMilliseconds()
        let open = logged.withLock { streams in
            guard now >= streams[id] ?? 0 else { return false }
            streams[id] = .max
            return true
        }
        guard open else { return }
        BackgroundThread.start { [self] in
            FileIO.makeParent(file)
            engine.followLogs(id, since: since) { FileIO.append(file, $0) }
            // Unless the container was stopped (and forgotten) meanwhile.
            logged.withLock { if $0[id] == .max { $0[id] = Clock.monotonicMilliseconds() + 5_000 } }
        }
    }

    /// What a version's container runs with: without `hostPort`, nothing is
    /// published (a one-off command).
    func containerSpec(_ deployment: Deployment, _ settings: ContainerSettings, name: String, image: String, hostPort: Int?) -> ContainerSpec {
        var spec = ContainerSpec(name: name, image: image)
        spec.entrypoint = settings.command
        spec.command = settings.args
        let inside = settings.port ?? hostPort
        var environment = settings.env
        for (key, value) in deployment.rewindEnvironment where key != "REWIND_APP_DIR" && key != "REWIND_ARTIFACT" { environment[key] = value }
        if let inside { environment["PORT"] = String(inside) }
        spec.environment = environment
        spec.labels = ["rewind.app": deployment.app, "rewind.tree": deployment.tree.hex, "rewind.commit": deployment.commit.hex,
                       "rewind.version": deployment.spec.version, "rewind.owner": owner]
        if let hostPort {
            spec.port = inside
            spec.hostPort = hostPort
        }
        spec.user = settings.user
        spec.memoryBytes = settings.memory
        spec.nanoCPUs = settings.cpus.map { Int64($0 * 1_000_000_000) }
        spec.stopTimeoutSeconds = Int(settings.stopTimeout.milliseconds / 1000)
        spec.binds = settings.volumes.map { volume in
            volume.isBind ? "\(deployment.files)/\(volume.source.dropFirst(2)):\(volume.target):ro" : "\(volume.source):\(volume.target)"
        }
        return spec
    }

    public func healthProblem(_ instance: Instance, _ deployment: Deployment) -> String? {
        if case .exited(let why) = observe(instance, deployment, thorough: false) { return why }
        if let path = deployment.spec.health?.http {
            return HTTPHealth.problem(port: instance.port, path: path)
        }
        return Clock.wallMilliseconds() - instance.startedAt >= 1_000 ? nil : "starting"
    }

    public func observe(_ instance: Instance, _ deployment: Deployment, thorough: Bool) -> Observation {
        guard let id = instance.container else { return .exited("no container recorded") }
        followEvents()
        // An adopted container's output (or one whose stream ended) goes on into the log file from where it stopped.
        if Clock.monotonicMilliseconds() >= logged.withLock({ $0[id] ?? 0 }) {
            let since = FileIO.signature(deployment.logFile).map { $0.modified / 1_000_000_000 } ?? instance.startedAt / 1000
            followLogs(id, into: deployment.logFile, since: since)
        }
        // Cheap unless the engine said it died, or a full pass looks anyway.
        guard thorough || died.withLock({ $0.contains(id) }) else { return .running }
        do {
            let state = try engine.inspect(id)
            guard !state.State.Running else { return .running }
            return .exited("container \(id.prefix(12)) exited with status \(state.State.ExitCode)" + lastOutput(id))
        } catch where error.status == 404 {
            return .exited("container \(id.prefix(12)) is gone")
        } catch {
            // The engine did not answer: say nothing changed rather than restart what may run.
            return .running
        }
    }

    public func isRunning(_ instance: Instance) -> Bool {
        guard let id = instance.container else { return false }
        return (try? engine.inspect(id))?.State.Running == true
    }

    /// Asks the container to stop (SIGTERM) without waiting, so that the
    /// old containers of apps that became healthy together stop together.
    public func requestStop(_ instance: Instance) {
        guard let id = instance.container else { return }
        try? engine.signal(id, "SIGTERM")
    }

    /// Stops the container (its stop timeout, then killed) and removes it; a
    /// container created but not yet recorded is found by its name.
    public func stop(_ instance: Instance) {
        guard let id = instance.container ?? instance.launch else { return }
        // The container's own stop timeout (container.stopTimeout) applies.
        try? engine.stop(id, timeoutSeconds: nil)
        try? engine.remove(id, force: true)
        logged.withLock { $0[id] = nil }
        _ = died.withLock { $0.remove(id) }
    }

    /// Runs `command` (a migration's `down`) once, in a container of the
    /// deployment's image with its environment and volumes, labelled
    /// `rewind.task`; removed afterwards. Nil when it exited 0, else why not.
    public func runOnce(_ command: [String], _ deployment: Deployment, what: String, timeoutMilliseconds: Int64) -> String? {
        guard let settings = deployment.spec.container, !command.isEmpty else { return "\(deployment.app) has no container settings" }
        let image = Self.imageName(settings.image)
        var spec = containerSpec(deployment, settings, name: "rewind-\(deployment.app)-\(what)-\(deployment.tree.short)-\(UInt32.random(in: 0...UInt32.max))",
                                 image: image, hostPort: nil)
        spec.entrypoint = [command[0]]
        spec.command = Array(command.dropFirst())
        spec.labels["rewind.task"] = what
        var created: String?
        defer { if let created { try? engine.remove(created, force: true) } }
        do {
            try ensureImage(settings.image)
            let id = try engine.create(spec)
            created = id
            try engine.start(id)
            let status: Int
            do {
                status = try engine.wait(id, timeoutMilliseconds: timeoutMilliseconds)
            } catch where error.timedOut {
                return "\(what) command timed out after \(Duration(milliseconds: timeoutMilliseconds)) in a container of \(image)"
            }
            guard status != 0 else { return nil }
            return "\(what) command exited with status \(status) in a container of \(image)" + lastOutput(id)
        } catch {
            return "\(what) command in a container of \(image): \(error)"
        }
    }

    public func canOverlap(_ deployment: Deployment, with current: Instance) -> Bool { true }
}

/// Whether a rollback's target is at hand, knowing the container engine's
/// store: an image the engine has counts as cached, so a rollback to it
/// works with the registry down. Artifacts, and images the engine lacks,
/// are asked of `base` (the artifact cache, then the registry).
public struct EngineAwareAvailability: ArtifactAvailability {
    public let base: any ArtifactAvailability
    public let engine: ContainerEngine?

    public init(base: any ArtifactAvailability, engine: ContainerEngine?) {
        self.base = base
        self.engine = engine
    }

    public func availability(of artifact: Artifact) -> ArtifactCheck { base.availability(of: artifact) }

    public func availability(ofImage image: OCIReference) -> ArtifactCheck {
        let name = ContainerPlatform.imageName(image)
        if let engine, engine.hasImage(name) { return .cached("the container engine at \(engine.socket) has \(name)") }
        return base.availability(ofImage: image)
    }
}
