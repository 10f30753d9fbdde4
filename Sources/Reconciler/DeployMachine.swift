import DeployModel
import GitKit
import Platforms
import ReconcilerStatus
import Rollback

/// One deploy of one app as a state machine: the new instance is prepared,
/// routed, started and waited for; then it is confirmed and the old one
/// retired, or it is stopped and the release fails.
///
/// `advance` is pure. Given what the last action came to, the app's state
/// as recorded and the time, it returns the outcomes to record and the next
/// action. The reconciler's `drive` (Pass.swift) records them, then acts,
/// then feeds back what the action came to. So each write a deploy makes
/// comes before the side effect that depends on it: the new instance is
/// recorded healthy (and so routed) before the old one behind a proxy
/// stops, and an old process is recorded stopped before the next one starts.
struct DeployMachine {
    let step: PlannedStep
    /// The commit that made the step's tree the app's release.
    let release: OID
    /// The version a failure names (the desired state's app.yaml for the tree).
    let failedVersion: String?
    /// An exec apply is started without waiting for it (`poll`).
    let background: Bool
    let hasDriver: Bool
    /// The platform sweeps what a kill leaves behind (containers): the old
    /// instance stops after the new one is recorded, not before.
    let retiresAfterRecording: Bool
    /// When (monotonic ms) the deploy began: its duration runs from here.
    let startedAt: Int64
    private(set) var phase = Phase.begun
    private(set) var deployment: Deployment?
    /// What ran before (nil once a coordinated rollback's drain stopped it).
    var current: Instance?
    private(set) var overlap = true
    /// The app's state when the deploy began.
    private var previous = AppState()
    /// A coordinated rollback drained traffic (and ran down commands) first: its commands.
    var sequence: SequencePlan?
    /// The canary or blue-green rollout that begins when the new instance is healthy.
    private var rollout: Rollout?
    private(set) var instance: Instance?
    /// A background start still under way.
    private(set) var applying: PendingStart?
    /// Where the app's log ended before the start (its tail explains a failure).
    private(set) var logStart = 0
    /// When (monotonic ms) the new instance must be healthy by.
    private(set) var deadline: Int64 = 0
    private var nextProbe: Int64 = 0
    /// Whether the app had a proxy when the new instance became healthy.
    private var hadProxy = false

    init(step: PlannedStep, release: OID, failedVersion: String?, background: Bool, hasDriver: Bool, retiresAfterRecording: Bool, startedAt: Int64) {
        self.step = step
        self.release = release
        self.failedVersion = failedVersion
        self.background = background
        self.hasDriver = hasDriver
        self.retiresAfterRecording = retiresAfterRecording
        self.startedAt = startedAt
    }

    var name: String { step.ref.name }
    /// Behind a proxy the old instance stays until the new one is routed.
    var keepsCurrent: Bool { step.spec.traffic != nil }
    /// A stage of the coordinated rollback, noted on the rollback commit.
    func stage(_ fields: [(String, String)]) -> Outcome {
        .rollback(.sequence(app: name, NoteRecorder.Entry(outcome: .sequence, app: name, fields: fields, distinctFields: 2), on: release))
    }

    /// The old instance a healthy deploy stops outright (no proxy to let go of it first).
    var retiring: Instance? { overlap && !keepsCurrent ? current : nil }

    /// Where a deploy is: each phase waits for what one action came to.
    enum Phase: Equatable {
        case begun, switchingBack, cancellingRollout, preparing, routing, makingRoom, starting
        /// A coordinated rollback (RollbackSequence.swift).
        case sequencing, sequenceHook, draining, drainingByStop, undoing(Int)
        /// Started: waiting to look at it again (`look`).
        case waiting, polling, probing
        /// Healthy (nil) or not: waiting for `proceed`, so that a wave
        /// confirms the deploys that ended together.
        case concluded(problem: String?)
        case stoppingNew(problem: String), abandoning
        case retiringFirst, retiringAfter, retiringBehindProxy, leavingProxy, finishingSequence, verifying
        case done
    }

    /// The name of an enum case without its values (which may hold a
    /// deployment's settings): what a log line of a defect may show.
    static func kind(of value: Any) -> String { String("\(value)".prefix { $0 != "(" }) }

    /// The times `advance` needs: its own clocks would make it impure.
    struct Moment {
        let monotonic: Int64
        let wall: Int64
    }

    /// What is recorded, then what is done.
    struct Transition {
        var outcomes: [Outcome] = []
        var action: DeployAction
    }
}

extension DeployMachine {
    /// The next step after `event`, given the app's recorded state.
    mutating func advance(_ event: DeployEvent, app: AppState?, at now: Moment) -> Transition {
        switch (phase, event) {
        case (.begun, .begin): return begin(app)
        case (.switchingBack, .acted(let failure)): return finished(failure)
        case (.cancellingRollout, .acted): return next(.preparing, .prepare)
        case (.preparing, .prepared(let deployment, let overlap)): return prepared(deployment, overlap: overlap, app: app)
        case (.preparing, .failed(let reason)), (.starting, .failed(let reason)): return failed(reason)
        case (.routing, .routed(let problem)): return routed(problem, app: app)
        case (.sequencing, .sequencePlanned(let plan)): return sequencePlanned(plan)
        case (.sequenceHook, .ran(let problem)): return preRollbackRan(problem)
        case (.draining, .acted): return drained(app)
        case (.drainingByStop, .stopped(let old)): return drainedByStop(old)
        case (.undoing(let index), .ran(let problem)): return undone(index, problem)
        case (.makingRoom, .stopped(let old)): return next(.starting, .start, stopped(old))
        case (.starting, _): return started(event, at: now)
        case (.waiting, .look(let stopRequested)): return look(stopRequested: stopRequested, at: now)
        case (.polling, _), (.probing, _): return looked(event, at: now)
        case (.waiting, .abandon), (.concluded, .abandon): return next(.abandoning, .stopNew)
        case (.concluded(let problem), .proceed): return problem.map { next(.stoppingNew(problem: $0), .stopNew) } ?? confirm(app, at: now)
        case (.stoppingNew(let problem), .newStopped(let stopRequested)):
            // Stopping the reconciler is not a failure of the release: the next start applies it again.
            let cleared = [Outcome.release(.pending(app: name, nil))]
            return stopRequested ? finished(nil, cleared) : failed(problem, cleared)
        case (.abandoning, .newStopped):
            return finished(nil, [.release(.abandoned(app: name, version: step.spec.version))])
        case (.retiringFirst, .stopped(let old)): return recordHealthy(stopped(old), at: now)
        case (.retiringAfter, .stopped(let old)): return afterRetiring(stopped(old))
        case (.retiringBehindProxy, .stopped(let old)): return leaveProxy(stopped(old))
        case (.leavingProxy, .acted): return finishSequence([])
        case (.finishingSequence, .ran(let problem)): return postRollbackRan(problem)
        case (.verifying, .verification(let outcome)): return finished(nil, outcome.map { [$0] } ?? [])
        default:
            return Transition(action: .unexpected("\(name): a deploy in phase \(Self.kind(of: phase)) got \(Self.kind(of: event))"))
        }
    }

    mutating func next(_ phase: Phase, _ action: DeployAction, _ outcomes: [Outcome] = []) -> Transition {
        self.phase = phase
        return Transition(outcomes: outcomes, action: action)
    }

    mutating func finished(_ failure: Failure?, _ outcomes: [Outcome] = []) -> Transition {
        next(.done, .done(failure), outcomes)
    }

    /// The release failed: recorded, and returned for the policy.
    mutating func failed(_ reason: String, _ outcomes: [Outcome] = []) -> Transition {
        let failure = Failure(app: name, release: release, reason: reason)
        return finished(failure, outcomes + [.release(.failed(failure, tree: step.tree, version: failedVersion))])
    }

    func stopped(_ old: Instance?) -> [Outcome] { old.map { [.release(.stopped(app: name, $0))] } ?? [] }

    /// A rollout under way ends first: switched back to, when the step runs its stable version.
    private mutating func begin(_ app: AppState?) -> Transition {
        guard hasDriver else { return failed("no driver for platform \(step.spec.platform)") }
        if let rollout = app?.rollout {
            if rollout.stable.tree == step.tree { return next(.switchingBack, .switchBack) }
            return next(.cancellingRollout, .cancelRollout("a newer release (\(step.spec.version)) replaces it"))
        }
        return next(.preparing, .prepare)
    }

    /// The files are ready: the deploy begins (the release running healthy
    /// until now is the one to return to). Behind a proxy, the proxy comes
    /// first, so that a missing haproxy or a listen port in use fails here,
    /// before anything starts.
    private mutating func prepared(_ deployment: Deployment, overlap: Bool, app: AppState?) -> Transition {
        self.deployment = deployment
        self.overlap = overlap
        previous = app ?? AppState()
        current = previous.instance
        let lastGood = current.flatMap { current in
            previous.health == .healthy && current.tree != step.tree
                ? KnownGood(commit: previous.release ?? current.commit, tree: current.tree, version: current.version) : nil
        }
        let deploying = Outcome.release(.deploying(app: name, lastGood: lastGood))
        guard let traffic = step.spec.traffic else { return afterRouting([deploying]) }
        return next(.routing, .route, [deploying, .traffic(.settings(app: name, traffic))])
    }

    /// The running version keeps the proxy (or the lack of one) it had when the new one cannot be routed.
    private mutating func routed(_ problem: String?, app: AppState?) -> Transition {
        let changed: [Outcome] = app?.trafficError != problem ? [.traffic(.problem(app: name, problem))] : []
        guard let problem else { return afterRouting(changed) }
        return failed("\(problem); nothing was started, and traffic is unchanged",
                      changed + [.traffic(.settings(app: name, previous.traffic)), .traffic(.problem(app: name, nil))])
    }

    private mutating func afterRouting(_ outcomes: [Outcome]) -> Transition {
        if step.isRollback, let current { return next(.sequencing, .planSequence(current), outcomes) }
        return beforeStart(outcomes)
    }

    /// A rollout begins when a healthy version behind a proxy is replaced;
    /// versions that cannot run side by side stop the old one first.
    mutating func beforeStart(_ outcomes: [Outcome]) -> Transition {
        if let traffic = step.spec.traffic, let current, previous.health == .healthy, !step.isRollback, sequence == nil, current.tree != step.tree {
            rollout = Rollout(strategy: traffic.strategy, stable: current, stableRelease: previous.release, step: 0,
                              weight: traffic.strategy == .canary ? traffic.steps.first ?? 100 : 100, stepStartedAt: 0)
        }
        if let current, !overlap {
            return next(.makingRoom, .stop(current, because: "both versions need port \(current.port.map(String.init) ?? "?")"), outcomes)
        }
        return next(.starting, .start, outcomes)
    }

    /// The health timeout runs from the start (from the end of a background one).
    private mutating func started(_ event: DeployEvent, at now: Moment) -> Transition {
        let timeout = Reconciler.healthTimeout(step.spec)
        switch event {
        case let .started(instance, logStart):
            self.instance = instance
            self.logStart = logStart
            deadline = now.monotonic + timeout
            return next(.waiting, .pause, [.release(.pending(app: name, instance))])
        case let .startedInBackground(pending, logStart):
            applying = pending
            self.logStart = logStart
            deadline = now.monotonic + timeout
            return next(.waiting, .pause)
        case .notStarted:
            // Nothing was started (or it was stopped again): the loop stops and says why.
            return finished(nil)
        case .unavailable(let why):
            // Not the release's fault: the running version stays, and a pass soon tries again.
            return finished(nil, [.release(.deferred(app: name, why: why))])
        default:
            return Transition(action: .unexpected("\(name): a start came to \(Self.kind(of: event))"))
        }
    }

    /// One look at a started deploy: a background start is polled; the
    /// instance is probed quickly in its first second (a refused connection
    /// costs nothing), then every interval, at most 100 ms apart.
    private mutating func look(stopRequested: Bool, at now: Moment) -> Transition {
        if stopRequested { return next(.concluded(problem: "the reconciler was stopped while waiting for health"), .pause) }
        if let applying { return next(.polling, .poll(applying)) }
        return probeIfDue([], at: now)
    }

    private mutating func probeIfDue(_ outcomes: [Outcome], at now: Moment) -> Transition {
        guard let instance, now.monotonic >= nextProbe else { return next(.waiting, .pause, outcomes) }
        let steady = Reconciler.probePause(step.spec)
        nextProbe = now.monotonic + (now.monotonic - startedAt < 1_000 ? min(steady, 10) : steady)
        return next(.probing, .probe(instance), outcomes)
    }

    private mutating func looked(_ event: DeployEvent, at now: Moment) -> Transition {
        switch event {
        case .polled(nil), .probed(nil):
            return next(.waiting, .pause)
        case .polled(let instance?):
            self.instance = instance
            applying = nil
            deadline = now.monotonic + Reconciler.healthTimeout(step.spec)
            return probeIfDue([.release(.pending(app: name, instance))], at: now)
        case .probed(let problem?):
            return next(.concluded(problem: problem), .pause)
        case .failed(let reason):
            return next(.concluded(problem: reason), .pause)
        default:
            return Transition(action: .unexpected("\(name): a look came to \(Self.kind(of: event))"))
        }
    }

    /// Healthy: an old process stops before the new one is recorded (after a
    /// kill between the two, nothing would find it); a container after it,
    /// as it is already replaced and one a kill leaves behind is swept.
    private mutating func confirm(_ app: AppState?, at now: Moment) -> Transition {
        hadProxy = app?.traffic != nil
        if let retiring, !retiresAfterRecording { return next(.retiringFirst, .stop(retiring, because: nil)) }
        return recordHealthy([], at: now)
    }

    /// Behind a proxy, recording it healthy routes the new instance (its
    /// first step, or everything) before the old one stops.
    private mutating func recordHealthy(_ outcomes: [Outcome], at now: Moment) -> Transition {
        guard let instance, let deployment else { return finished(nil, outcomes) }
        var rollout = self.rollout
        rollout?.stepStartedAt = now.wall
        let healthy = Outcome.release(.healthy(step, instance, deployment, release: release, tookMilliseconds: now.monotonic - startedAt, rollout: rollout))
        if let retiring, retiresAfterRecording { return next(.retiringAfter, .stop(retiring, because: nil), outcomes + [healthy]) }
        return afterRetiring(outcomes + [healthy])
    }

    /// Without a rollout, the old version behind the proxy stops once the proxy let go of it.
    private mutating func afterRetiring(_ outcomes: [Outcome]) -> Transition {
        if rollout == nil, let current, keepsCurrent { return next(.retiringBehindProxy, .retire(current), outcomes) }
        return leaveProxy(outcomes)
    }

    private mutating func leaveProxy(_ outcomes: [Outcome]) -> Transition {
        if hadProxy && step.spec.traffic == nil { return next(.leavingProxy, .leaveProxy, outcomes) }
        return finishSequence(outcomes)
    }

    /// A coordinated rollback ends: the old version is healthy and serves
    /// again (traffic restored when it became healthy), then `hooks.postRollback`.
    private mutating func finishSequence(_ outcomes: [Outcome]) -> Transition {
        guard let sequence else { return next(.verifying, .verify, outcomes) }
        let ended = outcomes + [stage([("stage", "start"), ("version", step.spec.version), ("result", "healthy")]),
                                stage([("stage", "restore"), ("version", step.spec.version)])]
        guard let post = sequence.postRollback else { return next(.verifying, .verify, ended) }
        return next(.finishingSequence, .runHook(post, what: "postRollback"), ended)
    }
}
