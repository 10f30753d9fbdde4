import Artifacts
import Containers
import DeployModel
import GitKit
import Platforms
import ReconcilerStatus
import Rollback

extension Reconciler {
    /// The files, artifact and log place of a step's tree. The artifact is
    /// pulled (or found in the cache) and checked by its digest here, so a
    /// missing, unreachable or wrong artifact fails before anything is stopped.
    func makeDeployment(_ step: PlannedStep, commit: OID) throws -> Deployment {
        let name = step.ref.name
        let root = options.artifactRoot ?? desired?.config.artifactRoot
        var artifactPath: String?
        if let artifact = step.spec.artifact {
            if artifact.path != nil, let problem = Rollback.Artifacts.problem(artifact, app: name, version: step.spec.version, root: root).problem {
                throw PlatformError("\(problem); nothing was stopped, the running version stays")
            }
            do {
                let key = ArtifactStore.cacheKey(artifact)
                let wasCached = key.map { artifacts.isCached($0) } ?? true
                artifactPath = try artifacts.fetch(artifact) { _ in try Rollback.Artifacts.path(of: artifact, app: name, root: root) }
                if !wasCached { pruneArtifactCache() }
            } catch {
                throw PlatformError("artifact of \(name) \(step.spec.version) (\(artifact)): \(error); nothing was stopped, the running version stays")
            }
        }
        let files = try AppFiles.materialise(repo.git, tree: step.tree, root: "\(store.filesDirectory)/\(name)")
        return Deployment(app: name, spec: step.spec, commit: commit, tree: step.tree, files: files, artifactPath: artifactPath, logDirectory: store.logDirectory)
    }

    /// What the rollback guards ask: the artifact cache and registries, and
    /// the container engine's store for images.
    var rollbackArtifacts: any ArtifactAvailability {
        EngineAwareAvailability(base: artifacts, engine: (drivers[.container] as? ContainerPlatform)?.engine)
    }

    /// After a pull, the cache is brought under `--artifact-cache-size`. It
    /// keeps what a rollback needs (seed 001: "previous versions always
    /// available"): every applied artifact, those of every state of the
    /// branch within `policy.window` and the state before it (what the
    /// policy could roll back to), and pinned ones.
    func pruneArtifactCache() {
        guard let desired else { return }
        var keep = Set<String>()
        var seenTrees = Set<OID>()
        func add(_ app: AppRef, _ tree: OID?) {
            guard let tree, seenTrees.insert(tree).inserted, let spec = desired.spec(app, tree: tree),
                  let key = spec.artifact.flatMap(ArtifactStore.cacheKey) else { return }
            keep.insert(key)
        }
        for (name, app) in state.apps {
            guard let ref = desired.config.app(named: name) else { continue }
            for instance in [app.instance, app.pending, app.rollout?.stable].compactMap({ $0 }) { add(ref, instance.tree) }
        }
        for (name, pin) in desired.pins.pins {
            if let ref = desired.config.app(named: name) { add(ref, OID(hex: pin.tree)) }
        }
        for (ref, tree) in RollbackReach.trees(repo, apps: desired.config.apps, from: desired.commit, window: desired.config.policy.window,
                                               nowMilliseconds: clock.wallMilliseconds()) {
            add(ref, tree)
        }
        let report = artifacts.prune(keep: keep, limit: options.artifactCacheSize)
        if !report.evicted.isEmpty {
            logger.info("artifact cache: evicted \(report.evicted.count) (\(report.evicted.joined(separator: ", "))); \(report.bytes) bytes remain")
        }
        if report.keptOverLimit {
            logger.warning("artifact cache: \(report.bytes) bytes, over --artifact-cache-size (\(options.artifactCacheSize)), all of it needed for rollback; raise the bound")
        }
    }
}

extension ReconcilerOptions {
    /// The artifact cache of `stateDirectory` with these registry settings
    /// (the reconciler pulls through it; `serve`'s rollback guards ask it).
    public func artifactStore(stateDirectory: String) throws -> ArtifactStore {
        var artifacts = registry
        artifacts.directory = stateDirectory + "/artifacts"
        return ArtifactStore(options: artifacts)
    }
}
