@testable import DeployModel
import GitKit
import Platforms
@testable import Reconciler
import ReconcilerStatus
import Testing

/// A deploy's machine is pure: events in, outcomes to record and the next
/// action out, with no reconciler, platform or clock. These tests read the
/// order of records and actions that kill -9 safety and the proxy rely on.
@Suite struct DeployMachineTests {
    static func oid(_ c: Character) -> OID { OID(hex: String(repeating: c, count: 40))! }
    let newTree = oid("1")
    let release = oid("3")
    let old = Instance(tree: oid("2"), commit: oid("4"), version: "1.0.0", pid: 41, port: 8080, startedAt: 0)
    let new = Instance(tree: oid("1"), commit: oid("3"), version: "2.0.0", pid: 42, port: 8081, startedAt: 5)

    func step(traffic: TrafficSettings? = nil, rollback: Bool = false) -> PlannedStep {
        var spec = AppSpec(platform: .process, version: "2.0.0", migrations: [])
        spec.traffic = traffic
        var step = PlannedStep(ref: AppRef(name: "api", path: "api", dependsOn: []), spec: spec, tree: newTree, action: .deploy)
        step.isRollback = rollback
        return step
    }

    func machine(_ step: PlannedStep, hasDriver: Bool = true, background: Bool = false, sweeps: Bool = false) -> DeployMachine {
        DeployMachine(step: step, release: release, failedVersion: "2.0.0", background: background, hasDriver: hasDriver, retiresAfterRecording: sweeps, startedAt: 0)
    }

    func deployment(_ step: PlannedStep) -> Deployment {
        Deployment(app: "api", spec: step.spec, commit: release, tree: newTree, files: "/nonexistent", artifactPath: nil, logDirectory: "/nonexistent")
    }

    /// The app running `old`, healthy.
    func running(traffic: TrafficSettings? = nil) -> AppState {
        var app = AppState()
        app.instance = old
        app.health = .healthy
        app.release = Self.oid("4")
        app.traffic = traffic
        return app
    }

    /// Feeds `events` in turn (with the app's state and the monotonic
    /// time of each); returns what was recorded and done, in order.
    func trace(_ machine: inout DeployMachine, _ events: [(DeployEvent, AppState?, Int64)]) -> [String] {
        var lines: [String] = []
        for (event, app, time) in events {
            let transition = machine.advance(event, app: app, at: DeployMachine.Moment(monotonic: time, wall: 1_000_000 + time))
            lines += transition.outcomes.map { "record " + Self.label($0) }
            lines.append(Self.label(transition.action))
        }
        return lines
    }

    static func label(_ outcome: Outcome) -> String {
        switch outcome {
        case .release(.deploying(_, let lastGood)): return "deploying (last good \(lastGood?.version ?? "none"))"
        case .release(.pending(_, let instance)): return "pending \(instance?.version ?? "none")"
        case .release(.healthy(_, let instance, _, _, let took, let rollout)):
            return "healthy \(instance.version) in \(took) ms" + (rollout.map { " with a \($0.weight)% rollout from \($0.stepStartedAt)" } ?? "")
        case .release(.failed(let failure, _, let version)): return "failed \(version ?? "?"): \(failure.reason)"
        case .release(.stopped(_, let instance)): return "stopped \(instance.version)"
        case .release(.abandoned(_, let version)): return "abandoned \(version)"
        case .release(.deferred(_, let why)): return "deferred: \(why)"
        case .traffic(.settings(_, let settings)): return "traffic settings \(settings.map { "on \($0.listenPort)" } ?? "none")"
        case .traffic(.problem(_, let problem)): return "proxy problem \(problem ?? "none")"
        case .rollback(.awaitingTriggers): return "awaiting triggers"
        case .rollback(.sequence(_, let entry, _)): return "stage \(entry.summary)"
        case .traffic(.held(_, let why)): return "held: \(why ?? "no")"
        default: return "\(outcome)"
        }
    }

    static func label(_ action: DeployAction) -> String {
        switch action {
        case let .stop(instance, why): return "stop \(instance.version)" + (why.map { " first: \($0)" } ?? "")
        case .retire(let instance): return "retire \(instance.version)"
        case .probe(let instance): return "probe \(instance.version)"
        case .poll: return "poll"
        case .planSequence(let instance): return "plan a sequence from \(instance.version)"
        case .runHook(_, let what): return "hook \(what)"
        case .runDown(let command): return "down: \(command.joined(separator: " "))"
        case .cancelRollout(let why): return "cancel rollout: \(why)"
        case .done(let failure): return failure.map { "done, failed: \($0.reason)" } ?? "done"
        case .unexpected(let what): return "unexpected: \(what)"
        default: return "\(action)"
        }
    }

    @Test func anOldProcessIsRecordedStoppedBeforeTheNewOneIsRecordedHealthy() {
        let step = step()
        var m = machine(step)
        let app = running()
        let lines = trace(&m, [(.begin, app, 0), (.prepared(deployment(step), overlap: true), app, 1), (.started(new, logStart: 0), app, 2),
                               (.look(stopRequested: false), app, 3), (.probed(.some(nil)), app, 4), (.proceed, app, 5),
                               (.stopped(old), app, 6), (.verification(nil), app, 7)])
        #expect(lines == ["prepare", "record deploying (last good 1.0.0)", "start", "record pending 2.0.0", "pause", "probe 2.0.0", "pause",
                          "stop 1.0.0", "record stopped 1.0.0", "record healthy 2.0.0 in 6 ms", "verify", "done"])
        #expect(m.phase == .done)
    }

    @Test func anOldContainerStopsAfterTheNewOneIsRecordedHealthy() {
        let step = step()
        var m = machine(step, sweeps: true)
        let app = running()
        let lines = trace(&m, [(.begin, app, 0), (.prepared(deployment(step), overlap: true), app, 0), (.started(new, logStart: 0), app, 0),
                               (.look(stopRequested: false), app, 0), (.probed(.some(nil)), app, 0), (.proceed, app, 9), (.stopped(old), app, 9)])
        #expect(Array(lines.suffix(4)) == ["record healthy 2.0.0 in 9 ms", "stop 1.0.0", "record stopped 1.0.0", "verify"])
    }

    @Test func versionsThatCannotRunSideBySideStopTheOldOneFirstAndRecordItBeforeTheStart() {
        let step = step()
        var m = machine(step)
        let app = running()
        let lines = trace(&m, [(.begin, app, 0), (.prepared(deployment(step), overlap: false), app, 0), (.stopped(old), app, 0)])
        #expect(lines == ["prepare", "record deploying (last good 1.0.0)", "stop 1.0.0 first: both versions need port 8080", "record stopped 1.0.0", "start"])
    }

    @Test func aProxyThatCannotRouteFailsTheReleaseBeforeAnythingStartsAndKeepsTheOldSettings() {
        let step = step(traffic: TrafficSettings(listenPort: 9000, strategy: .blueGreen))
        var m = machine(step)
        let app = running()
        let lines = trace(&m, [(.begin, app, 0), (.prepared(deployment(step), overlap: true), app, 0), (.routed(problem: "proxy: port 9000 in use"), app, 0)])
        #expect(lines == ["prepare", "record deploying (last good 1.0.0)", "record traffic settings on 9000", "route",
                          "record proxy problem proxy: port 9000 in use", "record traffic settings none", "record proxy problem none",
                          "record failed 2.0.0: proxy: port 9000 in use; nothing was started, and traffic is unchanged",
                          "done, failed: proxy: port 9000 in use; nothing was started, and traffic is unchanged"])
    }

    @Test func aHealthyVersionBehindAProxyBeginsARolloutAndKeepsRunning() {
        var traffic = TrafficSettings(listenPort: 9000, strategy: .canary)
        traffic.steps = [25, 50, 100]
        let step = step(traffic: traffic)
        var m = machine(step)
        let app = running(traffic: traffic)
        let lines = trace(&m, [(.begin, app, 0), (.prepared(deployment(step), overlap: true), app, 0), (.routed(problem: nil), app, 0),
                               (.started(new, logStart: 0), app, 0), (.look(stopRequested: false), app, 0), (.probed(.some(nil)), app, 0), (.proceed, app, 7)])
        #expect(Array(lines.suffix(2)) == ["record healthy 2.0.0 in 7 ms with a 25% rollout from 1000007", "verify"], "the old version is neither stopped nor retired")
        #expect(m.retiring == nil)
    }

    @Test func withoutAHealthyVersionBehindTheProxyTheNewOneTakesEverythingAndTheOldIsRetired() {
        let traffic = TrafficSettings(listenPort: 9000, strategy: .blueGreen)
        let step = step(traffic: traffic)
        var m = machine(step)
        var app = running(traffic: traffic)
        app.health = .unhealthy
        let lines = trace(&m, [(.begin, app, 0), (.prepared(deployment(step), overlap: true), app, 0), (.routed(problem: nil), app, 0),
                               (.started(new, logStart: 0), app, 0), (.look(stopRequested: false), app, 0), (.probed(.some(nil)), app, 0),
                               (.proceed, app, 3), (.stopped(old), app, 4)])
        #expect(Array(lines.suffix(4)) == ["record healthy 2.0.0 in 3 ms", "retire 1.0.0", "record stopped 1.0.0", "verify"])
    }

    @Test func aNewInstanceThatIsNotHealthyIsStoppedThenItsReleaseFails() {
        let step = step()
        var m = machine(step)
        let lines = trace(&m, [(.begin, nil, 0), (.prepared(deployment(step), overlap: true), nil, 0), (.started(new, logStart: 0), nil, 0),
                               (.look(stopRequested: false), nil, 0), (.probed(.some("exited with status 1")), nil, 0), (.proceed, nil, 0),
                               (.newStopped(stopRequested: false), nil, 0)])
        #expect(Array(lines.suffix(4)) == ["stopNew", "record pending none", "record failed 2.0.0: exited with status 1", "done, failed: exited with status 1"])
    }

    @Test func aStopOfTheReconcilerWhileWaitingStopsTheNewInstanceWithoutFailingTheRelease() {
        let step = step()
        var m = machine(step)
        let lines = trace(&m, [(.begin, nil, 0), (.prepared(deployment(step), overlap: true), nil, 0), (.started(new, logStart: 0), nil, 0),
                               (.look(stopRequested: true), nil, 0), (.proceed, nil, 0), (.newStopped(stopRequested: true), nil, 0)])
        #expect(Array(lines.suffix(4)) == ["pause", "stopNew", "record pending none", "done"])
    }

    @Test func aDeployTheTipNoLongerWantsIsAbandonedNotFailed() {
        let step = step()
        var m = machine(step)
        let lines = trace(&m, [(.begin, nil, 0), (.prepared(deployment(step), overlap: true), nil, 0), (.started(new, logStart: 0), nil, 0),
                               (.abandon, nil, 0), (.newStopped(stopRequested: false), nil, 0)])
        #expect(Array(lines.suffix(3)) == ["stopNew", "record abandoned 2.0.0", "done"])
    }

    @Test func aPlatformThatCannotBeReachedDefersTheReleaseAndAStartTheStateCouldNotJournalRecordsNothing() {
        let step = step()
        var deferred = machine(step)
        #expect(Array(trace(&deferred, [(.begin, nil, 0), (.prepared(deployment(step), overlap: true), nil, 0), (.unavailable("engine down"), nil, 0)]).suffix(2))
                == ["record deferred: engine down", "done"])
        var unjournaled = machine(step)
        #expect(Array(trace(&unjournaled, [(.begin, nil, 0), (.prepared(deployment(step), overlap: true), nil, 0), (.notStarted, nil, 0)]).suffix(1)) == ["done"])
    }

    @Test func aBackgroundStartIsPolledThenProbedAndItsTimeoutRunsFromItsEnd() {
        let step = step()
        var m = machine(step, background: true)
        let pending = PendingStart(started: new, deployment: deployment(step))
        let lines = trace(&m, [(.begin, nil, 0), (.prepared(deployment(step), overlap: true), nil, 0), (.startedInBackground(pending, logStart: 7), nil, 0),
                               (.look(stopRequested: false), nil, 10), (.polled(nil), nil, 10), (.look(stopRequested: false), nil, 20), (.polled(new), nil, 500)])
        #expect(Array(lines.suffix(6)) == ["pause", "poll", "pause", "poll", "record pending 2.0.0", "probe 2.0.0"])
        #expect(m.deadline == 500 + 60_000 && m.logStart == 7 && m.applying == nil)
    }

    @Test func aRolloutUnderWayIsSwitchedBackToOrCancelledFirst() {
        var app = running(traffic: TrafficSettings(listenPort: 9000, strategy: .canary))
        app.rollout = Rollout(strategy: .canary, stable: old, stableRelease: nil, step: 0, weight: 25, stepStartedAt: 0)
        var replaced = machine(step())
        #expect(trace(&replaced, [(.begin, app, 0), (.acted(nil), app, 0)]) == ["cancel rollout: a newer release (2.0.0) replaces it", "prepare"])
        app.rollout?.stable = new
        var back = machine(step())
        #expect(trace(&back, [(.begin, app, 0), (.acted(nil), app, 0)]) == ["switchBack", "done"])
    }

    let plan = SequencePlan(preRollback: ["pre"], postRollback: ["post"], downs: [(id: "002", command: ["down", "2"]), (id: "001", command: ["down", "1"])])

    @Test func aRollbackBehindAProxyRunsItsHookThenDrainsThenUndoesMigrationsNewestFirstAndStopsAtTheFirstFailure() {
        let traffic = TrafficSettings(listenPort: 9000, strategy: .blueGreen)
        let step = step(traffic: traffic, rollback: true)
        var m = machine(step)
        let app = running(traffic: traffic)
        let lines = trace(&m, [(.begin, app, 0), (.prepared(deployment(step), overlap: true), app, 0), (.routed(problem: nil), app, 0),
                               (.sequencePlanned(plan), app, 0), (.ran(problem: nil), app, 0), (.acted(nil), app, 0),
                               (.ran(problem: nil), app, 0), (.ran(problem: "down command exited with status 1"), app, 0)])
        #expect(Array(lines.dropFirst(4)) == [
            "plan a sequence from 1.0.0", "hook preRollback",
            "record stage stage=hook name=preRollback result=ok", "record held: coordinated rollback 1.0.0 → 2.0.0", "checkDrain",
            "record stage stage=drain version=1.0.0", "down: down 2",
            "record stage stage=down id=002 result=ok", "down: down 1",
            "record stage stage=down id=001 result=failed reason=down command exited with status 1",
            "record failed 2.0.0: the down command of migration 001 failed: down command exited with status 1; traffic stays drained, a human must finish the rollback",
            "done, failed: the down command of migration 001 failed: down command exited with status 1; traffic stays drained, a human must finish the rollback"])
    }

    @Test func aDrainTheProxyCouldNotMakeFailsTheRollbackBeforeAnyDownCommand() {
        let traffic = TrafficSettings(listenPort: 9000, strategy: .blueGreen)
        let step = step(traffic: traffic, rollback: true)
        var m = machine(step)
        var app = running(traffic: traffic)
        var noHook = plan
        noHook.preRollback = nil
        _ = trace(&m, [(.begin, app, 0), (.prepared(deployment(step), overlap: true), app, 0), (.routed(problem: nil), app, 0), (.sequencePlanned(noHook), app, 0)])
        app.trafficError = "proxy: connection refused"
        #expect(trace(&m, [(.acted(nil), app, 0)]) == ["record failed 2.0.0: cannot drain traffic: proxy: connection refused",
                                                       "done, failed: cannot drain traffic: proxy: connection refused"])
    }

    @Test func aRollbackWithoutAProxyDrainsByStoppingTheOldVersionAndEndsWithItsPostHook() {
        let step = step(rollback: true)
        var m = machine(step)
        let app = running()
        var plan = plan
        plan.preRollback = nil
        plan.downs = []
        let lines = trace(&m, [(.begin, app, 0), (.prepared(deployment(step), overlap: true), app, 0), (.sequencePlanned(plan), app, 0),
                               (.stopped(old), app, 0), (.started(new, logStart: 0), app, 0), (.look(stopRequested: false), app, 0),
                               (.probed(.some(nil)), app, 0), (.proceed, app, 4), (.ran(problem: "post command exited with status 3"), app, 5)])
        #expect(Array(lines.dropFirst(2)) == [
            "plan a sequence from 1.0.0", "stop 1.0.0", "record stopped 1.0.0", "record stage stage=drain version=1.0.0", "start",
            "record pending 2.0.0", "pause", "probe 2.0.0", "pause",
            "record healthy 2.0.0 in 4 ms", "record stage stage=start version=2.0.0 result=healthy", "record stage stage=restore version=2.0.0", "hook postRollback",
            "record stage stage=hook name=postRollback result=failed reason=post command exited with status 3", "verify"])
        #expect(m.retiring == nil, "the drain stopped it")
    }

    @Test func aRollbackWithNothingToRunIsAPlainDeploy() {
        let step = step(rollback: true)
        var m = machine(step)
        let app = running()
        #expect(Array(trace(&m, [(.begin, app, 0), (.prepared(deployment(step), overlap: true), app, 0), (.sequencePlanned(nil), app, 0)]).suffix(1)) == ["start"])
        #expect(m.retiring == old)
    }

    @Test func noDriverFailsTheReleaseAndAnEventOutOfPlaceIsADefectNotACrash() {
        var none = machine(step(), hasDriver: false)
        #expect(trace(&none, [(.begin, nil, 0)]) == ["record failed 2.0.0: no driver for platform process", "done, failed: no driver for platform process"])
        var early = machine(step())
        #expect(trace(&early, [(.proceed, nil, 0)]) == ["unexpected: api: a deploy in phase begun got proceed"])
        #expect(early.phase == .begun)
        // The log line names the event, not its values (a deployment's settings).
        #expect(trace(&early, [(.prepared(deployment(step()), overlap: true), nil, 0)]) == ["unexpected: api: a deploy in phase begun got prepared"])
    }
}
