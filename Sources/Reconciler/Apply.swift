import DeployModel
import GitKit
import Platforms
import ReconcilerStatus
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
        /// The old instance stays until the new one is routed (an app behind a proxy).
        var keepsCurrent = false
        /// The canary or blue-green rollout that begins when the new instance is healthy.
        var rollout: Rollout?
        /// A coordinated rollback drained traffic (and ran down commands) first.
        var sequence = false
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
        if let rollout = state.apps[name]?.rollout {
            // The stable version still runs: traffic goes back to it, nothing starts.
            if rollout.stable.tree == step.tree { return .finished(switchBack(step, release: release)) }
            cancelRollout(name, because: "a newer release (\(step.spec.version)) replaces it")
        }
        let deployment: Deployment
        do {
            deployment = try makeDeployment(step, commit: release)
        } catch {
            return .finished(fail(name, release: release, tree: step.tree, reason: "\(error)"))
        }
        let previous = state.apps[name] ?? AppState()
        var current = previous.instance
        let overlap = current.map { driver.canOverlap(deployment, with: $0) } ?? true
        let lastGood = current.flatMap { current in
            previous.health == .healthy && current.tree != step.tree
                ? KnownGood(commit: previous.release ?? current.commit, tree: current.tree, version: current.version) : nil
        }
        record(.release(.deploying(app: name, lastGood: lastGood)))
        if let failure = routeFirst(step, previous: previous, release: release) { return .finished(failure) }
        var sequence = false
        if step.isRollback, let running = current {
            let (ran, failure) = rollbackSequence(step, deployment, current: running, release: release)
            if let failure { return .finished(failure) }
            sequence = ran
            if ran && step.spec.traffic == nil { current = nil }  // stopped: the drain of an app without a proxy
        }
        var rollout: Rollout?
        if let traffic = step.spec.traffic, let current, previous.health == .healthy, !step.isRollback, !sequence, current.tree != step.tree {
            rollout = Rollout(strategy: traffic.strategy, stable: current, stableRelease: previous.release?.hex, step: 0,
                              weight: traffic.strategy == .canary ? traffic.steps.first ?? 100 : 100, stepStartedAt: 0)
        }
        if let current, !overlap {
            logger.info("stopping \(name) \(current.version) first: both versions need port \(current.port.map(String.init) ?? "?")")
            stop(current, of: name)
        }
        var deploy = InFlight(step: step, release: release, driver: driver, instance: nil, applying: nil, deployment: deployment, current: current,
                              overlap: overlap, logStart: FileIO.size(deployment.logFile) ?? 0, startedAt: started, deadline: 0, nextProbe: 0)
        deploy.keepsCurrent = step.spec.traffic != nil
        deploy.rollout = rollout
        deploy.sequence = sequence
        return launch(deploy, background: background)
    }

    /// An app behind a proxy: the proxy first, so that a missing haproxy or
    /// a listen port in use fails here, before anything starts. The failure, if it does.
    private func routeFirst(_ step: PlannedStep, previous: AppState, release: OID) -> Failure? {
        guard let traffic = step.spec.traffic else { return nil }
        let name = step.ref.name
        record(.traffic(.settings(app: name, traffic)))
        guard let problem = routeTraffic(name, force: true) else { return nil }
        // The running version keeps the proxy (or the lack of one) it had.
        record(.traffic(.settings(app: name, previous.traffic)))
        record(.traffic(.problem(app: name, nil)))
        return fail(name, release: release, tree: step.tree, reason: "\(problem); nothing was started, and traffic is unchanged")
    }

    /// Starts the new instance (an exec apply in the background, with
    /// `background`); its health timeout runs from then.
    private func launch(_ deploy: InFlight, background: Bool) -> Begun {
        var deploy = deploy
        let name = deploy.step.ref.name
        do {
            if background {
                deploy.applying = try deploy.driver.startInBackground(deploy.deployment) { pending in try journal(name, pending) }
            } else {
                let instance = try deploy.driver.start(deploy.deployment) { pending in try journal(name, pending) }
                deploy.instance = instance
                record(.release(.pending(app: name, instance)))
            }
        } catch is StateError {
            // Nothing was started (or it was stopped again): the loop stops and says why.
            return .finished(nil)
        } catch let unavailable as PlatformUnavailable {
            // Not the release's fault: the running version stays, and a pass soon tries again.
            record(.release(.deferred(app: name, why: unavailable.description)))
            return .finished(nil)
        } catch {
            return .finished(fail(name, release: deploy.release, tree: deploy.step.tree, reason: "\(error)"))
        }
        deploy.deadline = clock.monotonicMilliseconds() + Self.healthTimeout(deploy.deployment)
        return .waiting(deploy)
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
                record(.release(.pending(app: deploy.step.ref.name, instance)))
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
            // Started, or started in the background and not yet polled (a stop requested right after the start).
            if let instance = deploy.instance { deploy.driver.stop(instance) }
            if let applying = deploy.applying { deploy.driver.cancel(applying) }
            record(.release(.pending(app: name, nil)))
            // Stopping the reconciler is not a failure of the release: the next start applies it again.
            if options.stop.requested { return nil }
            return fail(name, release: deploy.release, tree: deploy.step.tree, reason: problem)
        }
        guard let instance = deploy.instance else { return nil }
        let hadProxy = state.apps[name]?.traffic != nil
        // A process is stopped before the new one is recorded (after a kill between the two, nothing would find it);
        // a container after: it is already replaced, and one a kill leaves behind is swept (`sweepUnrecorded`).
        let retireAfter = deploy.driver is any Sweeping
        let retiring = deploy.overlap && !deploy.keepsCurrent ? deploy.current : nil
        if let retiring, !retireAfter { stop(retiring, of: name) }
        var rollout = deploy.rollout
        rollout?.stepStartedAt = clock.wallMilliseconds()
        // Behind a proxy, this routes the new instance (its first step, or everything) before the old one stops.
        record(.release(.healthy(deploy.step, instance, deploy.deployment, release: deploy.release, tookMilliseconds: clock.monotonicMilliseconds() - deploy.startedAt,
                        rollout: rollout)))
        if let retiring, retireAfter { stop(retiring, of: name) }
        if let rollout {
            logger.notice("\(name): \(rollout.strategy.rawValue) rollout of \(instance.version): \(rollout.weight)% of traffic, \(rollout.stable.version) keeps the rest")
        } else if let current = deploy.current, deploy.keepsCurrent {
            retire(current, of: name)
            record(.release(.stopped(app: name, current)))
        }
        if hadProxy && deploy.step.spec.traffic == nil {
            router.stop(name)
            routed[name] = nil
        }
        if deploy.sequence { finishRollbackSequence(deploy.step, deploy.deployment, release: deploy.release) }
        verification(name, release: deploy.release)
        return nil
    }

    /// A deploy the new tip no longer wants: stopped, not failed.
    func abandon(_ deploy: InFlight) {
        if let instance = deploy.instance { deploy.driver.stop(instance) }
        if let applying = deploy.applying { deploy.driver.cancel(applying) }
        record(.release(.abandoned(app: deploy.step.ref.name, version: deploy.step.spec.version)))
    }

    /// Records `verified` when `release` is a rollback commit: recovery after a rollback.
    /// When Prometheus triggers apply, the queries must be back under their
    /// thresholds too: `analyse()` records `verified` once they are.
    func verification(_ name: String, release: OID) {
        guard let commit = try? repo.git.commit(release), CommitKind(commit).returnsToEarlier, !alreadyVerified(name, release) else { return }
        if metrics != nil, desired?.config.policy.triggers.isEmpty == false {
            record(.rollback(.awaitingTriggers(app: name, rollback: release)))
        } else {
            record(.rollback(.verified(app: name, commit, what: "healthy")))
        }
    }

    /// True when this host recorded `verified` for this app on this commit
    /// before (a restart applying the rollback again): its timing, metrics
    /// and notification stay those of the first time.
    private func alreadyVerified(_ name: String, _ release: OID) -> Bool {
        let key = ReleaseNote.key(.verified, app: name)
        if state.pendingNotes.contains(where: { $0.commit == release.hex && $0.key == key }) { return true }
        let note = (try? repo.git.note(on: release, notesRef: ReleaseNote.notesRef)) ?? nil
        return note?.split(separator: "\n").contains { $0.hasPrefix(key) && $0.hasSuffix(" host=\(notes.host)") } ?? false
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
        record(.release(.running(app: name, release: tip)))
        verification(name, release: tip)
        return nil
    }

    /// Full passes ask exec apps' observe command whether what runs is what was applied.
    private func correctDrift(_ step: PlannedStep, tip: OID) -> Failure? {
        let name = step.ref.name
        guard let instance = state.apps[name]?.instance, let driver = drivers[step.spec.platform],
              let deployment = try? makeDeployment(step, commit: instance.commit) else { return nil }
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
        let version = desired?.config.app(named: name).flatMap { desired?.spec($0, tree: tree) }?.version
        record(.release(.failed(failure, tree: tree, version: version)))
        return failure
    }

    func stop(_ instance: Instance, of name: String) {
        guard let driver = drivers[instance.runsOn] else { return }
        logger.info("stopping \(name) \(instance.version)")
        driver.stop(instance)
        record(.release(.stopped(app: name, instance)))
    }

    func releaseCommit(_ ref: AppRef, tree: OID, tip: OID) -> OID {
        RollbackHistory.releaseCommit(repo, ref, tree: tree, tip: tip)
    }
}
