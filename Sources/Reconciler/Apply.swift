import DeployModel
import GitKit
import Platforms
import Rollback
import SystemSupport

extension Reconciler {
    /// Step 6 for one app; a failure when the release did not make it.
    func apply(_ step: PlannedStep, tip: OID) -> Failure? {
        switch step.action {
        case .none: return nil
        case .deploy: return deploy(step, tip: tip)
        case .verify: return verify(step, tip: tip)
        case .observe: return correctDrift(step, tip: tip)
        }
    }

    /// Starts the step's tree, waits until healthy, then retires the old
    /// instance: one app on its own (drift correction, a rollback to verify
    /// that is not running). A pass deploys its waves with `runWaves`.
    func deploy(_ step: PlannedStep, tip: OID) -> Failure? {
        switch begin(step, tip: tip, background: false) {
        case .finished(let failure):
            return failure
        case .waiting(var deploy):
            while true {
                if let outcome = check(&deploy) { return finish(deploy, problem: outcome) }
                clock.sleep(milliseconds: 10)
            }
        }
    }

    /// A deploy under way: started, waiting to become healthy.
    struct InFlight {
        let step: PlannedStep
        let release: OID
        let driver: any PlatformDriver
        /// Nil while a background start still runs (`applying`).
        var instance: Instance?
        var applying: PendingStart?
        let deployment: Deployment
        let current: Instance?
        let overlap: Bool
        let logStart: Int
        let startedAt: Int64
        var deadline: Int64
        var nextProbe: Int64
    }

    enum Begun {
        case waiting(InFlight)
        /// Done already: failed (or nothing was started).
        case finished(Failure?)
    }

    /// Everything up to the start of the new instance; the wait is `check`'s.
    /// With `background`, an exec apply is started without waiting for it.
    func begin(_ step: PlannedStep, tip: OID, background: Bool) -> Begun {
        let name = step.ref.name
        let release = releaseCommit(step.ref, tree: step.tree, tip: tip)
        let started = clock.monotonicMilliseconds()
        logger.info("applying \(name) \(step.spec.version) from \(release.short)")
        guard let driver = drivers[step.spec.platform] else { return .finished(fail(name, release: release, tree: step.tree, reason: "no driver for platform \(step.spec.platform)")) }
        let deployment: Deployment
        do {
            deployment = try makeDeployment(step, commit: release)
        } catch {
            return .finished(fail(name, release: release, tree: step.tree, reason: "\(error)"))
        }
        let previous = state.apps[name] ?? AppState()
        let current = previous.instance
        let overlap = current.map { driver.canOverlap(deployment, with: $0) } ?? true
        let lastGood = current.flatMap { current in
            previous.health == .healthy && current.tree != step.tree.hex
                ? KnownGood(commit: previous.release ?? current.commit, tree: current.tree, version: current.version) : nil
        }
        record(.deploying(app: name, lastGood: lastGood))
        if let current, !overlap {
            logger.info("stopping \(name) \(current.version) first: both versions need port \(current.port.map(String.init) ?? "?")")
            stop(current, of: name)
        }
        let logStart = FileIO.size(deployment.logFile) ?? 0
        let timeout = Self.healthTimeout(deployment)
        if background {
            do {
                let applying = try driver.startInBackground(deployment) { pending in try journal(name, pending) }
                return .waiting(InFlight(step: step, release: release, driver: driver, instance: nil, applying: applying, deployment: deployment, current: current,
                                         overlap: overlap, logStart: logStart, startedAt: started, deadline: clock.monotonicMilliseconds() + timeout, nextProbe: 0))
            } catch is StateError {
                return .finished(nil)
            } catch {
                return .finished(fail(name, release: release, tree: step.tree, reason: "\(error)"))
            }
        }
        let instance: Instance
        do {
            instance = try driver.start(deployment) { pending in try journal(name, pending) }
        } catch is StateError {
            // Nothing was started (or it was stopped again): the loop stops and says why.
            return .finished(nil)
        } catch {
            return .finished(fail(name, release: release, tree: step.tree, reason: "\(error)"))
        }
        record(.pending(app: name, instance))
        return .waiting(InFlight(step: step, release: release, driver: driver, instance: instance, applying: nil, deployment: deployment, current: current,
                                 overlap: overlap, logStart: logStart, startedAt: started, deadline: clock.monotonicMilliseconds() + timeout, nextProbe: 0))
    }

    /// One look at a deploy under way: nil while it is still starting, else
    /// its outcome (nil inside: healthy; else the problem).
    func check(_ deploy: inout InFlight) -> String?? {
        let now = clock.monotonicMilliseconds()
        if options.stop.requested { return .some("the reconciler was stopped while waiting for health") }
        if let applying = deploy.applying {
            do {
                guard let instance = try deploy.driver.poll(applying) else { return nil }
                deploy.instance = instance
                deploy.applying = nil
                deploy.deadline = now + Self.healthTimeout(deploy.deployment)
                record(.pending(app: deploy.step.ref.name, instance))
            } catch {
                return .some("\(error)")
            }
        }
        guard let instance = deploy.instance, now >= deploy.nextProbe else { return nil }
        // Quick probes in the first second (a refused connection costs nothing), then every interval, at most 100 ms apart.
        let steady = min(deploy.deployment.spec.health?.interval.milliseconds ?? 1_000, 100)
        deploy.nextProbe = now + (now - deploy.startedAt < 1_000 ? min(steady, 10) : steady)
        return probe(deploy.driver, instance, deploy.deployment, deadline: deploy.deadline, logStart: deploy.logStart)
    }

    /// How long a new instance has to become healthy.
    static func healthTimeout(_ deployment: Deployment) -> Int64 { deployment.spec.health?.timeout.milliseconds ?? 60_000 }

    /// One health probe of an instance that is to become healthy by
    /// `deadline`: nil while it may still, else its outcome (nil inside:
    /// healthy; else the problem).
    private func probe(_ driver: any PlatformDriver, _ instance: Instance, _ deployment: Deployment, deadline: Int64, logStart: Int?) -> String?? {
        guard let problem = driver.healthProblem(instance, deployment) else { return .some(nil) }
        if case .exited(let why) = driver.observe(instance, deployment, thorough: false) {
            return .some("\(why) before becoming healthy" + logTail(deployment, from: logStart))
        }
        if clock.monotonicMilliseconds() >= deadline {
            return .some("not healthy within \(Duration(milliseconds: Self.healthTimeout(deployment))): \(problem)" + logTail(deployment, from: logStart))
        }
        return nil
    }

    /// Confirms a healthy deploy and retires the old instance, or stops the new one.
    func finish(_ deploy: InFlight, problem: String?) -> Failure? {
        let name = deploy.step.ref.name
        if let problem {
            if let instance = deploy.instance { deploy.driver.stop(instance) }
            record(.pending(app: name, nil))
            // Stopping the reconciler is not a failure of the release: the next start applies it again.
            if options.stop.requested { return nil }
            return fail(name, release: deploy.release, tree: deploy.step.tree, reason: problem)
        }
        guard let instance = deploy.instance else { return nil }
        if let current = deploy.current, deploy.overlap { stop(current, of: name) }
        record(.healthy(deploy.step, instance, deploy.deployment, release: deploy.release, tookMilliseconds: clock.monotonicMilliseconds() - deploy.startedAt))
        verification(name, release: deploy.release)
        return nil
    }

    /// A deploy the new tip no longer wants: stopped, not failed.
    func abandon(_ deploy: InFlight) {
        if let instance = deploy.instance { deploy.driver.stop(instance) }
        if let applying = deploy.applying { deploy.driver.cancel(applying) }
        record(.abandoned(app: deploy.step.ref.name, version: deploy.step.spec.version))
    }

    /// Records `verified` when `release` is a rollback commit: recovery after a rollback.
    /// When Prometheus triggers apply, the queries must be back under their
    /// thresholds too: `analyse()` records `verified` once they are.
    func verification(_ name: String, release: OID) {
        guard let commit = try? repo.git.commit(release), RollbackHistory.isRollback(commit), !alreadyVerified(name, release) else { return }
        if options.prometheus != nil, desired?.config.policy.triggers.isEmpty == false {
            record(.awaitingTriggers(app: name, rollback: release))
        } else {
            record(.verified(app: name, commit, what: "healthy"))
        }
    }

    /// True when `verified` was recorded for this app on this commit before
    /// (a restart applying the rollback again): its timing, metrics and
    /// notification stay those of the first time.
    private func alreadyVerified(_ name: String, _ release: OID) -> Bool {
        let key = ReleaseNote.key(.verified, app: name)
        if state.pendingNotes.contains(where: { $0.commit == release.hex && $0.key == key }) { return true }
        let note = (try? repo.git.note(on: release, notesRef: ReleaseNote.notesRef)) ?? nil
        return note?.split(separator: "\n").contains { $0.hasPrefix(key) } ?? false
    }

    /// A rollback commit that sets an app to the tree already running: check
    /// that it is healthy, and record `verified` (or escalate).
    private func verify(_ step: PlannedStep, tip: OID) -> Failure? {
        let name = step.ref.name
        guard let instance = state.apps[name]?.instance, let driver = drivers[step.spec.platform] else { return deploy(step, tip: tip) }
        let deployment: Deployment
        do { deployment = try makeDeployment(step, commit: tip) } catch { return fail(name, release: tip, tree: step.tree, reason: "\(error)") }
        if let problem = waitHealthy(driver, instance, deployment) {
            return fail(name, release: tip, tree: step.tree, reason: "still unhealthy after the rollback: \(problem)")
        }
        record(.running(app: name, release: tip))
        verification(name, release: tip)
        return nil
    }

    /// Full passes ask exec apps' observe command whether what runs is what was applied.
    private func correctDrift(_ step: PlannedStep, tip: OID) -> Failure? {
        let name = step.ref.name
        guard let instance = state.apps[name]?.instance, let driver = drivers[step.spec.platform],
              let deployment = try? makeDeployment(step, commit: OID(hex: instance.commit) ?? tip) else { return nil }
        guard case .drifted(let why) = driver.observe(instance, deployment, thorough: true) else { return nil }
        logger.warning("drift in \(name): \(why); applying \(step.spec.version) again")
        return deploy(step, tip: tip)
    }

    /// Polls health until healthy, the process ends, or the timeout passes.
    func waitHealthy(_ driver: any PlatformDriver, _ instance: Instance, _ deployment: Deployment, logStart: Int? = nil) -> String? {
        let deadline = clock.monotonicMilliseconds() + Self.healthTimeout(deployment)
        let pause = min(deployment.spec.health?.interval.milliseconds ?? 1_000, 100)
        while true {
            if let outcome = probe(driver, instance, deployment, deadline: deadline, logStart: logStart) { return outcome }
            if options.stop.requested { return "the reconciler was stopped while waiting for health" }
            clock.sleep(milliseconds: pause)
        }
    }

    /// The last lines the process wrote since `start` (a byte offset in its log).
    private func logTail(_ deployment: Deployment, from start: Int?) -> String {
        guard deployment.spec.platform == .process, let start, let size = FileIO.size(deployment.logFile), size > start else { return "" }
        let from = max(start, size - 2_048)
        let text = FileIO.read(deployment.logFile, offset: from, count: size - from).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let lines = text.split(separator: "\n").suffix(3)
        return lines.isEmpty ? "" : "; last output: " + lines.joined(separator: " | ")
    }

    /// A release failed: recorded, and returned for the policy.
    func fail(_ name: String, release: OID, tree: OID, reason: String) -> Failure {
        let failure = Failure(app: name, release: release, reason: reason)
        record(.failed(failure, tree: tree))
        return failure
    }

    func stop(_ instance: Instance, of name: String) {
        guard let driver = drivers[instance.runsOn] else { return }
        logger.info("stopping \(name) \(instance.version)")
        driver.stop(instance)
        record(.stopped(app: name, instance))
    }

    /// The files, artifact and log place of a step's tree. A missing artifact
    /// fails here, before anything is stopped.
    func makeDeployment(_ step: PlannedStep, commit: OID) throws -> Deployment {
        let name = step.ref.name
        let root = options.artifactRoot ?? desired?.config.artifactRoot
        let (artifactPath, problem) = Artifacts.problem(step.spec.artifact, app: name, version: step.spec.version, root: root)
        if let problem { throw PlatformError("\(problem); nothing was stopped, the running version stays") }
        let files = try AppFiles.materialise(repo.git, tree: step.tree, root: "\(store.filesDirectory)/\(name)")
        return Deployment(app: name, spec: step.spec, commit: commit, tree: step.tree, files: files, artifactPath: artifactPath, logDirectory: store.logDirectory)
    }

    func releaseCommit(_ ref: AppRef, tree: OID, tip: OID) -> OID {
        RollbackHistory.releaseCommit(repo, ref, tree: tree, tip: tip)
    }
}
