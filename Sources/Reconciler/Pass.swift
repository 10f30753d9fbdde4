import DeployModel
import GitKit
import Platforms
import Remote
import ReconcilerStatus
import Rollback
import SystemSupport

extension Reconciler {
    /// One pass over the tip (the steps in the overview at the top of
    /// Reconciler.swift): gates, each returning a result (Gates.swift); a
    /// pure plan (Plan.swift); the waves, which start the releases on the
    /// platform (`runWaves`, below); then the failures to the policy
    /// (`rollBack`, Supervision.swift). After a rollback commit, this is
    /// where the release it returns to runs again. `carryOut` and
    /// `summarise` write down what each step returned. True when it wrote a
    /// rollback commit, so that the loop passes again at once.
    package func pass(full: Bool) -> Bool {
        let started = clock.monotonicMilliseconds()
        defer { options.observer.passFinished(milliseconds: clock.monotonicMilliseconds() - started) }
        state.lastPassAt = clock.wallMilliseconds()
        // A pass that defers no release ends the run of deferrals.
        deferral.at = nil
        defer { if deferral.at == nil { deferral.passes = 0 } }
        let tip: OID
        do {
            tip = try repo.tip()
        } catch {
            return summarise(.retry("\(error)"), of: .observe, tip: nil)
        }
        _ = summarise(.proceed, of: .observe, tip: tip)
        let gates: [(Gate, (OID) -> GateResult)] = [(.ancestry, ancestryGate), (.validation, validationGate), (.signature, signatureGate)]
        for (gate, check) in gates {
            guard summarise(check(tip), of: gate, tip: tip) else { return false }
        }
        guard let desired else { return false }
        let tipChanged = state.tip != tip
        let rollbackTip = tipChanged ? rollbackApps(tip, desired) : []
        let windows = desired.config.windows.isEmpty ? nil : ChangeCalendar(desired.config.windows, at: clock.wallMilliseconds())
        let overridden = windows != nil && ((try? repo.git.commit(tip)).map { RollbackTrailers.overridesFreeze($0.message) } ?? false)
        let plan = Self.plan(desired, state: state, tip: tip, tipChanged: tipChanged, rollbackApps: rollbackTip, full: full, fleet: fleetSnapshot(desired),
                             windows: windows, overridden: overridden)
        carryOut(plan.outcomes.map(Step.record))
        stageRecheckAt = state.apps.values.contains { $0.stageHold != nil } ? clock.monotonicMilliseconds() + Self.stageRecheck : nil
        var failures = runWaves(plan.steps, desired, reverse: !rollbackTip.isEmpty, tip: tip)
        if fatal != nil { return false }
        removeAppsNoLongerDesired(desired)
        if full { sweepUnrecorded() }
        state.tip = tip
        state.lastApplied = tip
        save()
        // A failure recorded by a reconciler killed before it decided on a
        // rollback is decided now.
        for (name, app) in state.apps.sorted(by: { $0.key < $1.key }) where !failures.contains(where: { $0.app == name }) {
            guard let release = app.undecidedFailure, app.failedRelease == release else { continue }
            logger.notice("\(name) release \(release.short) failed before a restart; deciding on its rollback now")
            failures.append(Failure(app: name, release: release, reason: app.lastError ?? "failed"))
        }
        // Every failure of the pass at once: one commit for the apps the
        // policy rolls back, an escalation for each of the others.
        return rollBack(failures) != nil
    }

    /// Steps 6 and 7 for a whole pass, in dependency waves: the apps whose
    /// dependencies are satisfied start together (at most
    /// `options.concurrency` applies running at once: exec apply commands;
    /// a process starts at once) and are waited for together;
    /// the next wave starts when this one is done. Everything stays on the
    /// reconciler's one thread: starting a process is quick, and waiting is
    /// polling each one's health in turn, so libgit2 handles never cross
    /// threads. A new tip noticed during a wait stops the waits it makes
    /// moot (their apps change again) and ends the pass after the wave, so
    /// that the next pass plans against the new tip. Returns the failures.
    func runWaves(_ steps: [PlannedStep], _ desired: DesiredView, reverse: Bool, tip: OID) -> [Failure] {
        var failures: [Failure] = []
        var flushed = clock.monotonicMilliseconds()
        var tipMoved = false
        for wave in waves(steps, desired, reverse: reverse) {
            var queue = wave[...]
            var inFlight: [DeployMachine] = []
            var nextTipCheck: Int64 = 0
            while !queue.isEmpty || !inFlight.isEmpty {
                // --concurrency 1: one app at a time, started and waited for, as before waves.
                func busy() -> Int { options.concurrency <= 1 ? inFlight.count : inFlight.filter { $0.applying != nil }.count }
                while busy() < max(1, options.concurrency), let step = queue.popFirst() {
                    if step.action == .deploy {
                        let (machine, progress) = beginDeploy(step, tip: tip, background: options.concurrency > 1)
                        if case .done(let failure) = progress { failures += failure.map { [$0] } ?? [] } else { inFlight.append(machine) }
                    } else if let failure = apply(step, tip: tip) {
                        failures.append(failure)
                    }
                    if fatal != nil { return failures }
                }
                inFlight = look(at: inFlight, failures: &failures)
                let now = clock.monotonicMilliseconds()
                if !inFlight.isEmpty && now >= nextTipCheck {
                    nextTipCheck = now + 50
                    if let newTip = try? repo.tip(), newTip != tip {
                        tipMoved = true
                        var wanted: [DeployMachine] = []
                        for var deploy in inFlight {
                            if wantedAgain(deploy.step, at: newTip) { wanted.append(deploy) } else { _ = drive(&deploy, .abandon) }
                        }
                        inFlight = wanted
                        queue = queue.filter { wantedAgain($0, at: newTip) }[...]
                    }
                }
                // In a long pass, write notes about once a second rather than at the end only.
                if now - flushed >= 1_000 {
                    flushNotes()
                    flushed = now
                }
                if !inFlight.isEmpty { clock.sleep(milliseconds: 5) }
            }
            if tipMoved { break }
        }
        return failures
    }

    /// One look at each deploy under way; those that ended are confirmed
    /// (or stopped) together. Returns the deploys still under way.
    private func look(at inFlight: [DeployMachine], failures: inout [Failure]) -> [DeployMachine] {
        var waiting: [DeployMachine] = []
        var done: [(DeployMachine, healthy: Bool)] = []
        for var deploy in inFlight {
            switch drive(&deploy, .look(stopRequested: options.stop.requested)) {
            case .waiting: waiting.append(deploy)
            case .concluded(let healthy): done.append((deploy, healthy))
            case .done(let failure): failures += failure.map { [$0] } ?? []
            }
        }
        // The old versions of the apps that became healthy together are
        // told to stop together; each is then reaped as it is retired.
        for (deploy, healthy) in done where healthy {
            if let retiring = deploy.retiring { drivers[retiring.runsOn]?.requestStop(retiring) }
        }
        for (deploy, _) in done {
            var deploy = deploy
            if case .done(let failure?) = drive(&deploy, .proceed) { failures.append(failure) }
        }
        return waiting
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

    /// One health probe of an instance that is to become healthy by
    /// `deadline`: nil while it may still, else its outcome (nil inside:
    /// healthy; else the problem).
    func probe(_ driver: any PlatformDriver, _ instance: Instance, _ deployment: Deployment, deadline: Int64, logStart: Int?) -> String?? {
        guard let problem = driver.healthProblem(instance, deployment) else { return .some(nil) }
        if case .exited(let why) = driver.observe(instance, deployment, thorough: false) {
            return .some("\(why) before becoming healthy" + logTail(deployment, from: logStart))
        }
        if clock.monotonicMilliseconds() >= deadline {
            return .some("not healthy within \(Duration(milliseconds: Self.healthTimeout(deployment.spec))): \(problem)" + logTail(deployment, from: logStart))
        }
        return nil
    }

    /// The last lines the process wrote since `start` (a byte offset in its log).
    private func logTail(_ deployment: Deployment, from start: Int?) -> String {
        guard deployment.spec.platform == .process, let start, let size = FileIO.size(deployment.logFile), size > start else { return "" }
        let from = max(start, size - 2_048)
        let text = FileIO.read(deployment.logFile, offset: from, count: size - from).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let lines = text.split(separator: "\n").suffix(3)
        return lines.isEmpty ? "" : "; last output: " + lines.joined(separator: " | ")
    }

    /// The steps in waves: each app after the apps of the same pass it
    /// depends on (apps already running count as satisfied); a rollback
    /// commit's waves run in reverse.
    func waves(_ steps: [PlannedStep], _ desired: DesiredView, reverse: Bool) -> [[PlannedStep]] {
        let ordered = order(steps, desired, reverse: false)
        let names = Set(ordered.map(\.ref.name))
        var level: [String: Int] = [:]
        for step in ordered {
            let deps = step.ref.dependsOn.filter(names.contains)
            level[step.ref.name] = (deps.compactMap { level[$0] }.max() ?? -1) + 1
        }
        var waves: [[PlannedStep]] = Array(repeating: [], count: (level.values.max() ?? -1) + 1)
        for step in ordered { waves[level[step.ref.name] ?? 0].append(step) }
        return reverse ? waves.reversed() : waves
    }

    /// True when the app still wants the step's tree at `newTip` (its tree
    /// there, or its pin's): a wait for it is not moot.
    private func wantedAgain(_ step: PlannedStep, at newTip: OID) -> Bool {
        guard let tree = try? repo.git.commit(newTip).tree else { return true }
        if let pins = try? repo.pins(tree: tree), let pin = pins.pins[step.ref.name] { return pin.tree == step.tree.hex }
        return (try? repo.appTree(step.ref, in: tree)) == step.tree
    }

    /// Removes the instances a platform runs for this reconciler that the
    /// state does not name: the containers a lost state left running, or one
    /// an engine failure left between create and record.
    func sweepUnrecorded() {
        let keep = state.apps.values.flatMap { [$0.instance, $0.pending, $0.rollout?.stable].compactMap { $0 } }
        for case let sweeping as any Sweeping in drivers.values {
            for removed in sweeping.sweep(keeping: keep) {
                logger.notice("removed \(removed): this reconciler started it, and its state no longer names it")
            }
        }
    }

    /// The apps a rollback commit at the tip changes; empty when the tip is
    /// not a rollback (Rewind's trailers, or git's own revert message).
    func rollbackApps(_ tip: OID, _ desired: DesiredView) -> Set<String> {
        guard let commit = try? repo.git.commit(tip), CommitKind(commit).returnsToEarlier else { return [] }
        let parentTree = commit.parents.first.flatMap { try? repo.git.commit($0).tree }
        var changed: Set<String> = []
        for app in desired.config.apps {
            let now = try? repo.appTree(app, in: commit.tree)
            let before = parentTree.flatMap { try? repo.appTree(app, in: $0) }
            if now != before { changed.insert(app.name) }
        }
        return changed
    }

    /// Step 5: dependencies first; the reverse for a rollback commit.
    func order(_ steps: [PlannedStep], _ desired: DesiredView, reverse: Bool) -> [PlannedStep] {
        let names = DependencyGraph(desired.config.apps).deployOrder(steps.map(\.ref.name))
        let byName = Dictionary(steps.map { ($0.ref.name, $0) }, uniquingKeysWith: { a, _ in a })
        let ordered = names.compactMap { byName[$0] }
        return reverse ? ordered.reversed() : ordered
    }

    /// Apps gone from rewind.yaml are stopped and forgotten.
    private func removeAppsNoLongerDesired(_ desired: DesiredView) {
        for (name, app) in state.apps.sorted(by: { $0.key < $1.key }) where !desired.contains(name) {
            if let instance = app.instance, let driver = drivers[instance.runsOn] {
                logger.notice("stopping \(name): it is no longer in \(RepoConfig.fileName)")
                driver.stop(instance)
                if let stable = app.rollout?.stable { driver.stop(stable) }
            }
            if app.traffic != nil {
                router.stop(name)
                routed[name] = nil
            }
            carryOut([.record(.release(.removed(app: name)))])
        }
    }
}
