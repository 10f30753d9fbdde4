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
        var (machine, progress) = beginDeploy(step, tip: tip, background: false)
        while true {
            switch progress {
            case .done(let failure):
                return failure
            case .concluded:
                progress = drive(&machine, .proceed)
            case .waiting:
                progress = drive(&machine, .look(stopRequested: options.stop.requested))
                if case .waiting = progress { clock.sleep(milliseconds: 10) }
            }
        }
    }

    /// How a deploy stands after `drive`.
    enum DeployProgress {
        /// Started: look at it again later (`.look`).
        case waiting
        /// Healthy or not: confirm it (`.proceed`).
        case concluded(healthy: Bool)
        case done(Failure?)
    }

    /// A deploy's machine, driven up to the start of the new instance.
    /// With `background`, an exec apply is started without waiting for it.
    func beginDeploy(_ step: PlannedStep, tip: OID, background: Bool) -> (DeployMachine, DeployProgress) {
        let name = step.ref.name
        let release = releaseCommit(step.ref, tree: step.tree, tip: tip)
        logger.info("applying \(name) \(step.spec.version) from \(release.short)")
        let driver = drivers[step.spec.platform]
        var machine = DeployMachine(step: step, release: release, failedVersion: desired?.version(of: name, tree: step.tree), background: background, hasDriver: driver != nil,
                                    retiresAfterRecording: driver is any Sweeping, startedAt: clock.monotonicMilliseconds())
        let progress = drive(&machine, .begin)
        return (machine, progress)
    }

    /// A deploy's loop: what the machine says is recorded (`carryOut`),
    /// then its action is performed and what that came to is fed back,
    /// until the machine pauses or is done.
    func drive(_ machine: inout DeployMachine, _ event: DeployEvent) -> DeployProgress {
        var event = event
        while true {
            let now = DeployMachine.Moment(monotonic: clock.monotonicMilliseconds(), wall: clock.wallMilliseconds())
            let transition = machine.advance(event, app: state.apps[machine.name], at: now)
            carryOut(transition.outcomes.map(Step.record))
            switch transition.action {
            case .pause:
                if case .concluded(let problem) = machine.phase { return .concluded(healthy: problem == nil) }
                return .waiting
            case .done(let failure):
                return .done(failure)
            case .unexpected(let what):
                logger.error("\(what)")
                return .done(nil)
            default:
                event = perform(transition.action, machine)
            }
        }
    }

    /// Does what a deploy asked; returns what it came to.
    private func perform(_ action: DeployAction, _ machine: DeployMachine) -> DeployEvent {
        let name = machine.name
        let driver = drivers[machine.step.spec.platform]
        switch action {
        case .switchBack:
            guard let app = state.apps[name], let rollout = app.rollout else { return .acted(nil) }
            logger.notice("\(name): the tip returns to \(rollout.stable.version), which still runs; switching traffic back to it")
            carryOut(RolloutController.switchBack(name, app, to: machine.release))
            return .acted(nil)
        case .cancelRollout(let why):
            guard let app = state.apps[name], let rollout = app.rollout, let canary = app.instance else { return .acted(nil) }
            logger.notice("\(name): \(why); the rollout of \(canary.version) ends and \(rollout.stable.version) takes all traffic back")
            carryOut(RolloutController.cancel(name, app))
            return .acted(nil)
        case .prepare:
            return prepare(machine, driver)
        case .route:
            return .routed(problem: syncProxy(name, force: true)?.problem)
        case .planSequence(let current):
            return .sequencePlanned(sequencePlan(machine.step, current: current))
        case let .runHook(command, what):
            guard let deployment = machine.deployment else { return .ran(problem: "no files for \(what)") }
            let problem = runStageCommand(command, deployment, what: what)
            if let problem { logger.warning("\(name): hooks.\(what) failed: \(problem)\(what == "postRollback" ? " (the rollback itself is done)" : "")") }
            return .ran(problem: problem)
        case .runDown(let command):
            guard let deployment = machine.deployment else { return .ran(problem: "no files for the down command") }
            return .ran(problem: runDown(command, deployment))
        case .checkDrain:
            return .acted(nil)
        case let .stop(old, why):
            guard let oldDriver = drivers[old.runsOn] else { return .stopped(nil) }
            logger.info("stopping \(name) \(old.version)\(why.map { " first: \($0)" } ?? "")")
            oldDriver.stop(old)
            return .stopped(old)
        case .start:
            return start(machine, driver)
        case .poll(let pending):
            do { return .polled(try driver?.poll(pending)) } catch { return .failed("\(error)") }
        case .probe(let instance):
            guard let driver, let deployment = machine.deployment else { return .probed(.some("no driver for platform \(machine.step.spec.platform)")) }
            return .probed(probe(driver, instance, deployment, deadline: machine.deadline, logStart: machine.logStart))
        case .stopNew:
            if let instance = machine.instance { driver?.stop(instance) }
            if let applying = machine.applying { driver?.cancel(applying) }
            return .newStopped(stopRequested: options.stop.requested)
        case .retire(let old):
            retire(old, of: name)
            return .stopped(old)
        case .leaveProxy:
            router.stop(name)
            routed[name] = nil
            return .acted(nil)
        case .verify:
            return .verification(verificationOutcome(name, release: machine.release))
        case .pause, .done, .unexpected:
            return .acted(nil)
        }
    }

    /// The artifact fetched and the files unpacked; whether the new instance can run beside the one recorded.
    private func prepare(_ machine: DeployMachine, _ driver: (any PlatformDriver)?) -> DeployEvent {
        do {
            let deployment = try makeDeployment(machine.step, commit: machine.release)
            let overlap = state.apps[machine.name]?.instance.map { driver?.canOverlap(deployment, with: $0) ?? true } ?? true
            return .prepared(deployment, overlap: overlap)
        } catch {
            return .failed("\(error)")
        }
    }

    /// Starts the new instance (in the background, for an exec apply in a wave), journaled first.
    private func start(_ machine: DeployMachine, _ driver: (any PlatformDriver)?) -> DeployEvent {
        guard let driver, let deployment = machine.deployment else { return .failed("no driver for platform \(machine.step.spec.platform)") }
        let name = machine.name
        let logStart = FileIO.size(deployment.logFile) ?? 0
        do {
            if machine.background {
                return .startedInBackground(try driver.startInBackground(deployment) { pending in try journal(name, pending) }, logStart: logStart)
            }
            return .started(try driver.start(deployment) { pending in try journal(name, pending) }, logStart: logStart)
        } catch is StateError {
            return .notStarted
        } catch let unavailable as PlatformUnavailable {
            return .unavailable(unavailable.description)
        } catch {
            return .failed("\(error)")
        }
    }

    /// How long a new instance has to become healthy.
    static func healthTimeout(_ spec: AppSpec) -> Int64 { spec.health?.timeout.milliseconds ?? 60_000 }

    /// How often a new instance is probed until healthy: its health interval, at most 100 ms apart.
    static func probePause(_ spec: AppSpec) -> Int64 { min(spec.health?.interval.milliseconds ?? 1_000, 100) }

    /// One health probe of an instance that is to become healthy by
    /// `deadline`: nil while it may still, else its outcome (nil inside:
    /// healthy; else the problem).
    private func probe(_ driver: any PlatformDriver, _ instance: Instance, _ deployment: Deployment, deadline: Int64, logStart: Int?) -> String?? {
        guard let problem = driver.healthProblem(instance, deployment) else { return .some(nil) }
        if case .exited(let why) = driver.observe(instance, deployment, thorough: false) {
            return .some("\(why) before becoming healthy" + logTail(deployment, from: logStart))
        }
        if clock.monotonicMilliseconds() >= deadline {
            return .some("not healthy within \(Duration(milliseconds: Self.healthTimeout(deployment.spec))): \(problem)" + logTail(deployment, from: logStart))
        }
        return nil
    }

    /// `verified` when `release` is a rollback commit not verified here
    /// before. When Prometheus triggers apply, the queries must be back under
    /// their thresholds too: `awaitingTriggers`, and `analyse()` records
    /// `verified` once they are.
    func verificationOutcome(_ name: String, release: OID) -> Outcome? {
        guard let commit = try? repo.git.commit(release), CommitKind(commit).returnsToEarlier, !alreadyVerified(name, release) else { return nil }
        if metrics != nil, desired?.config.policy.triggers.isEmpty == false { return .rollback(.awaitingTriggers(app: name, rollback: release)) }
        return .rollback(.verified(app: name, commit, what: "healthy"))
    }

    /// True when this host recorded `verified` for this app on this commit
    /// before (a restart applying the rollback again): its timing, metrics
    /// and notification stay those of the first time.
    private func alreadyVerified(_ name: String, _ release: OID) -> Bool {
        let key = ReleaseNote.key(.verified, app: name)
        if state.pendingNotes.contains(where: { $0.commit == release.hex && $0.key == key }) { return true }
        let note = (try? repo.git.note(on: release, notesRef: ReleaseNote.notesRef)) ?? nil
        return note?.split(separator: "\n").contains { ReleaseNote.isLine($0, key: key, host: notes.host) } ?? false
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
        carryOut([.record(.release(.running(app: name, release: tip))), .verify(app: name, tip)])
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
        let deadline = clock.monotonicMilliseconds() + Self.healthTimeout(deployment.spec)
        let pause = Self.probePause(deployment.spec)
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
        let (failure, outcome) = failed(name, release: release, tree: tree, reason: reason)
        carryOut([.record(outcome)])
        return failure
    }

    /// A release failed, then goes to the policy.
    func failing(_ name: String, release: OID, tree: OID, reason: String) -> [Step] {
        let (failure, outcome) = failed(name, release: release, tree: tree, reason: reason)
        return [.record(outcome), .rollBack([failure])]
    }

    /// The failure, and its outcome (`version`: the app.yaml's of the tree, when the desired state has one).
    private func failed(_ name: String, release: OID, tree: OID, reason: String) -> (Failure, Outcome) {
        let failure = Failure(app: name, release: release, reason: reason)
        return (failure, .release(.failed(failure, tree: tree, version: desired?.version(of: name, tree: tree))))
    }

    func releaseCommit(_ ref: AppRef, tree: OID, tip: OID) -> OID {
        RollbackHistory.releaseCommit(repo, ref, tree: tree, tip: tip)
    }
}
