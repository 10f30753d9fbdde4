// Progressive delivery
// ====================
//
// An app with `traffic:` in its app.yaml is reached through an HAProxy on
// its fixed `traffic.listen` port; its versions are dynamic servers behind
// it (runtime API, no reloads). A new release starts beside the running
// one on a port of its own and becomes healthy with no traffic. Then:
//
// - blueGreen: 100% switches to it at once; the old version drains and
//   stays warm for `scaleDownDelay`, then stops;
// - canary: it gets `steps[0]` percent, then each next step after
//   `interval`; at 100 it is promoted and the old version stops.
//
// While a rollout runs (`AppState.rollout`), the new version's health and
// the analysis queries (`traffic.analysis` plus `policy.triggers`, with
// `$app`, `$version` and `$stable` substituted) are checked every tick. A
// failure aborts it: the old version gets 100% at once (before anything is
// written), the new one stops, and then the rollback commit is written
// through the automatic rollback policy. The next pass finds the rollback's
// tree already running and verifies it.
//
// The proxy follows the state: whenever an app's state changes (`record`),
// the servers it should have are computed from the state alone
// (`wantedServers`) and synced when they differ from the last sync. So a
// restarted reconciler, or a restarted proxy, routes what the state says.

import DeployModel
import FoundationEssentials
import GitKit
import Platforms
import ReconcilerStatus
import Rollback
import SystemSupport
import Traffic

/// The proxies of the apps with `traffic:`: one HAProxy per app that Rewind
/// starts (in `<state>/traffic/<app>/`), or an existing one it attaches to.
final class TrafficRouter {
    let directory: String
    let haproxy: String
    private var managed: [String: HAProxySupervisor] = [:]

    init(directory: String, haproxy: String) {
        self.directory = directory
        self.haproxy = haproxy
    }

    /// Makes `app`'s backend route to exactly `servers`; returns the commands sent.
    @discardableResult
    func route(_ app: String, _ traffic: TrafficSettings, _ servers: [String: TrafficState.Server]) throws(TrafficError) -> SyncResult {
        if let socket = traffic.proxySocket, let backend = traffic.proxyBackend {
            return try HAProxyRuntime(socket: socket).sync(backend: backend, to: servers)
        }
        var state = TrafficState()
        state.backends[app] = servers
        return try supervisor(app, traffic).ensure(state)
    }

    /// True when `app`'s proxy is up (an attached proxy answers its socket;
    /// a managed one runs).
    func isUp(_ app: String, _ traffic: TrafficSettings) -> Bool {
        if let socket = traffic.proxySocket { return (try? HAProxyRuntime(socket: socket).command("show info")) != nil }
        return supervisor(app, traffic).isRunning
    }

    /// Stops the proxy Rewind started for `app` (an attached one is left alone).
    func stop(_ app: String) {
        let supervisor = managed[app] ?? HAProxySupervisor(config: HAProxyConfig(directory: "\(directory)/\(app)", frontends: []), haproxy: haproxy)
        supervisor.stop()
        managed[app] = nil
    }

    func stopAll() {
        for app in managed.keys.sorted() { stop(app) }
    }

    private func supervisor(_ app: String, _ traffic: TrafficSettings) -> HAProxySupervisor {
        let config = HAProxyConfig(directory: "\(directory)/\(app)", frontends: [.init(app: app, listenPort: traffic.listenPort)])
        if let known = managed[app] {
            known.reconfigure(config)
            return known
        }
        let supervisor = HAProxySupervisor(config: config, haproxy: haproxy)
        managed[app] = supervisor
        return supervisor
    }
}

extension Reconciler {
    /// The proxy's name for an instance: its tree and port (a restart on another port is another server).
    static func serverName(_ instance: Instance) -> String {
        "v\(instance.tree.prefix(12))-\(instance.port ?? 0)"
    }

    /// What `app`'s backend should route, from its state alone.
    static func wantedServers(_ app: AppState) -> [String: TrafficState.Server] {
        var servers: [String: TrafficState.Server] = [:]
        let held = app.trafficHeld != nil
        func add(_ instance: Instance?, _ weight: Int, draining: Bool = false) {
            guard let instance, let port = instance.port else { return }
            servers[serverName(instance)] = TrafficState.Server(address: "127.0.0.1", port: port, weight: held ? 0 : weight, draining: draining)
        }
        if let rollout = app.rollout {
            switch rollout.strategy {
            case .canary:
                add(rollout.stable, 100 - rollout.weight)
                add(app.instance, rollout.weight)
            case .blueGreen:
                add(rollout.stable, 0, draining: true)
                add(app.instance, 100)
            }
        } else if held || (app.health != .failed && app.health != .stopped) {
            add(app.instance, 100)
        }
        return servers
    }

    /// Syncs `app`'s proxy with its state when what it should route changed
    /// (or `force`), and records the outcome: nil when the proxy routes
    /// it, else the problem. For the steps; `record` itself uses `syncProxy`.
    @discardableResult
    func routeTraffic(_ name: String, force: Bool = false) -> String? {
        guard let outcome = syncProxy(name, force: force) else { return nil }
        if state.apps[name]?.trafficError != outcome.problem { record(.trafficProblem(app: name, outcome.problem)) }
        return outcome.problem
    }

    /// What a proxy sync came to: `problem` nil when the proxy routes the app.
    struct ProxySync: Equatable {
        let problem: String?
    }

    /// Tells `app`'s proxy what its state says it should route, when that
    /// changed (or `force`); nil when there was nothing to do. It records
    /// nothing: its caller does (`routeTraffic`, or `update` inside `record`).
    func syncProxy(_ name: String, force: Bool = false) -> ProxySync? {
        guard let app = state.apps[name], let traffic = app.traffic else { return nil }
        let wanted = Self.wantedServers(app)
        guard force || routed[name] != wanted else { return nil }
        do {
            let synced = try router.route(name, traffic, wanted)
            // A server with requests in flight leaves on a later sync (every tick until it has).
            routed[name] = synced.leaving.isEmpty ? wanted : nil
            if synced.changes > 0 { logger.debug("\(name): proxy routes \(wanted.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.weight)" }.joined(separator: " "))") }
            writeTargets()
            return ProxySync(problem: nil)
        } catch {
            routed[name] = nil
            let problem = "proxy: \(error)"
            if app.trafficError != problem { logger.error("\(name): \(problem)") }
            return ProxySync(problem: problem)
        }
    }

    /// Prometheus file_sd targets for every version behind a proxy, with
    /// `app`, `version` and `role` (stable or canary) labels.
    func writeTargets() {
        var groups: [JSON] = []
        for (name, app) in state.apps.sorted(by: { $0.key < $1.key }) where app.traffic != nil {
            var members: [(Instance, String)] = []
            if let instance = app.instance { members.append((instance, app.rollout == nil ? "stable" : "canary")) }
            if let stable = app.rollout?.stable { members.append((stable, "stable")) }
            for (instance, role) in members {
                guard let port = instance.port else { continue }
                groups.append(.object([("targets", .array([.string("127.0.0.1:\(port)")])),
                                       ("labels", .object([("app", .string(name)), ("version", .string(instance.version)), ("role", .string(role))]))]))
            }
        }
        let text = JSON.array(groups).pretty + "\n"
        if FileIO.readText(store.targetsFile) != text {
            FileIO.makeDirectory(store.trafficDirectory)
            _ = FileIO.writeAtomically(store.targetsFile, text: text)
        }
    }

    /// Every tick: each app's proxy is up (restarted with the last known
    /// weights when it died), operators' requests are answered, and each
    /// rollout is checked and moved on.
    func superviseTraffic() {
        let mono = clock.monotonicMilliseconds()
        if mono >= nextProxyLook {
            // A proxy that cannot be brought up is tried again once a second.
            nextProxyLook = mono + (state.apps.values.contains { $0.trafficError != nil } ? 1_000 : 100)
            for (name, app) in state.apps.sorted(by: { $0.key < $1.key }) {
                guard let traffic = app.traffic else { continue }
                let up = router.isUp(name, traffic)
                if !up && traffic.proxySocket == nil && routed[name] != nil { logger.warning("\(name): the proxy is not running; starting it again with the last known weights") }
                // Unforced, this gives an adopted proxy (after a restart) the state's weights.
                routeTraffic(name, force: !up || app.trafficError != nil)
            }
        }
        answerRequests()
        for name in state.apps.keys.sorted() where state.apps[name]?.rollout != nil {
            checkRollout(name)
        }
    }

    /// Canary and blue-green: health and analysis of the new version, then
    /// the next step when its time has come.
    private func checkRollout(_ name: String) {
        guard let desired, let app = state.apps[name], let rollout = app.rollout, let instance = app.instance,
              let ref = desired.config.app(named: name), let driver = drivers[instance.runsOn],
              let canaryDeployment = deployment(of: instance, ref), let traffic = app.traffic else { return }
        if app.trafficError != nil { return }  // held until the proxy routes again (superviseTraffic says why)
        let now = clock.wallMilliseconds()
        let stage = Self.describe(rollout, traffic)
        if case .exited(let why) = driver.observe(instance, canaryDeployment, thorough: false) {
            abortRollout(name, reason: "\(instance.version) \(stage): \(why)", detectedAt: now, by: nil)
            return
        }
        if !driver.isRunning(rollout.stable), let stableDeployment = deployment(of: rollout.stable, ref) {
            // At most once a second: the version to return to must run, but not in a tight loop.
            let mono = clock.monotonicMilliseconds()
            guard mono >= nextStableRestart[name] ?? 0 else { return }
            nextStableRestart[name] = mono + 1_000
            logger.warning("\(name): the stable version \(rollout.stable.version) is not running; starting it again")
            do {
                let restarted = try driver.start(stableDeployment) { pending in try journal(name, pending) }
                var moved = rollout
                moved.stable = restarted
                record(.rollout(app: name, moved, note: nil, on: nil))
                record(.pending(app: name, nil))
            } catch {
                logger.error("\(name): cannot start the stable version \(rollout.stable.version) again: \(error)")
            }
            return
        }
        let mono = clock.monotonicMilliseconds()
        if mono >= nextProbe[name] ?? 0 {
            nextProbe[name] = mono + min(canaryDeployment.spec.health?.interval.milliseconds ?? 1_000, 250)
            if let problem = driver.healthProblem(instance, canaryDeployment), problem != "starting" {
                let failures = (rolloutProbeFailures[name] ?? 0) + 1
                rolloutProbeFailures[name] = failures
                if failures >= traffic.failureLimit {
                    rolloutProbeFailures[name] = nil
                    let count = failures == 1 ? "" : " (\(failures) probes in a row)"
                    abortRollout(name, reason: "\(instance.version) \(stage): unhealthy\(count): \(problem)", detectedAt: now, by: nil)
                    return
                }
                logger.warning("\(name): \(instance.version) failed a health probe (\(failures) of \(traffic.failureLimit) in a row abort): \(problem)")
            } else {
                rolloutProbeFailures[name] = nil
            }
        }
        if let breach = rolloutAnalysis(name, app, rollout, traffic, desired.config.policy) {
            abortRollout(name, reason: "\(instance.version) \(stage): \(breach)", detectedAt: now, by: nil)
            return
        }
        guard !rollout.paused, let release = app.release.flatMap(OID.init(hex:)) else { return }
        switch rollout.strategy {
        case .blueGreen:
            if now - rollout.stepStartedAt >= traffic.scaleDownDelay.milliseconds { promote(name, by: nil) }
        case .canary:
            guard now - rollout.stepStartedAt >= traffic.interval.milliseconds else { return }
            let next = rollout.step + 1
            guard next < traffic.steps.count, traffic.steps[next] < 100 else {
                promote(name, by: nil)
                return
            }
            var moved = rollout
            moved.step = next
            moved.weight = traffic.steps[next]
            moved.stepStartedAt = now
            logger.notice("\(name): canary \(instance.version) at step \(next + 1) of \(traffic.steps.count): \(moved.weight)%")
            record(.rollout(app: name, moved, note: Self.stepEntry(name, moved, instance.version), on: release))
        }
    }

    /// `step app=api weight=25 version=1.6.0 step=2/4`.
    static func stepEntry(_ name: String, _ rollout: Rollout, _ version: String) -> NoteRecorder.Entry {
        NoteRecorder.Entry(outcome: .step, app: name, fields: [("weight", String(rollout.weight)), ("version", version), ("strategy", rollout.strategy.rawValue)],
                           distinctFields: 1)
    }

    /// "at step 2 of 4 (25%)", or "within its scaleDownDelay (blue-green)".
    static func describe(_ rollout: Rollout, _ traffic: TrafficSettings) -> String {
        switch rollout.strategy {
        case .canary: return "at canary step \(rollout.step + 1) of \(traffic.steps.count) (weight \(rollout.weight)%)"
        case .blueGreen: return "within its blue-green scaleDownDelay of \(traffic.scaleDownDelay)"
        }
    }

    /// The step's queries (`traffic.analysis`, then `policy.triggers` with
    /// action rollback), at most once a second: the breach that aborts, or nil.
    private func rolloutAnalysis(_ name: String, _ app: AppState, _ rollout: Rollout, _ traffic: TrafficSettings, _ policy: RollbackPolicy) -> String? {
        let triggers = traffic.analysis + policy.triggers.filter { $0.action == .rollback }
        guard !triggers.isEmpty, let endpoint = options.prometheus, let instance = app.instance else { return nil }
        let mono = clock.monotonicMilliseconds()
        guard mono >= nextRolloutAnalysis[name] ?? 0 else { return nil }
        nextRolloutAnalysis[name] = mono + min(options.analysisInterval, 1_000)
        let client = PrometheusClient(endpoint: endpoint, caFile: options.caFile)
        let now = clock.wallMilliseconds()
        for trigger in triggers {
            let query = trigger.query.replacing("$version", with: instance.version).replacing("$stable", with: rollout.stable.version).replacing("$app", with: name)
            guard case .lasting(let value, _) = read(trigger, query: query, app: name, client: client, now: now, breaches: &rolloutBreaches) else { continue }
            rolloutBreaches[name] = nil
            return "query \(trigger.name) (\(query)) = \(value) \(trigger.comparison) \(trigger.threshold)"
        }
        return nil
    }

    /// Takes the new version out of traffic at once (the stable version gets
    /// everything), stops it, records the abort, then writes the rollback
    /// commit: through the automatic policy (`by` nil), or as the
    /// operator's (`rewind abort`). Returns the commit.
    @discardableResult
    func abortRollout(_ name: String, reason: String, detectedAt: Int64, by asked: RolloutRequest?) -> OID? {
        guard let app = state.apps[name], let rollout = app.rollout, let canary = app.instance,
              let release = app.release.flatMap(OID.init(hex:)), let tree = OID(hex: canary.tree) else { return nil }
        // The proxy follows the state at once: the stable version gets everything.
        record(.aborted(app: name, stable: rollout.stable, stableRelease: rollout.stableRelease))
        let zeroAt = clock.wallMilliseconds()
        if let problem = state.apps[name]?.trafficError { logger.critical("\(name): the abort could not reach the proxy: \(problem)") }
        logger.notice("\(name): \(canary.version) taken out of traffic \(zeroAt - detectedAt) ms after the breach; \(rollout.stable.version) serves everything")
        retire(canary, of: name)
        let who = asked.map { "aborted by \($0.actor)" + ($0.reason.map { ": \($0)" } ?? "") } ?? reason
        record(.noted([NoteRecorder.Entry(outcome: .aborted, app: name, fields: [("weight", String(rollout.weight)), ("version", canary.version),
                                                                                ("reason", who), ("tookMs", String(zeroAt - detectedAt))])], on: release))
        let failure = fail(name, release: release, tree: tree, reason: asked == nil ? reason : who)
        guard let asked else {
            return automaticRollback(failure) ? state.apps[name]?.lastRollback?.rollbackCommit.flatMap(OID.init(hex:)) : nil
        }
        record(.decided(failure))
        return writeOperatorRollback(name, to: rollout.stableRelease, undoing: release, request: asked)
    }

    /// The rollback commit of `rewind abort`: trigger manual, the operator as actor.
    private func writeOperatorRollback(_ name: String, to target: String?, undoing: OID, request: RolloutRequest) -> OID? {
        var rollback = RollbackRequest(.rollback(apps: [name], all: false, to: target.map { .revision($0) }),
                                       reason: "abort of the \(name) rollout" + (request.reason.map { ": \($0)" } ?? ""))
        rollback.actor = request.actor
        rollback.undoing = [name: undoing.hex]
        rollback.artifactRoot = options.artifactRoot
        do {
            flushNotes()
            var writer = CommitWriter(repo: try DeployRepository(path: options.repoPath, branch: repo.branchRef))
            writer.limits = options.limits
            guard case .written(let commit?, _, _) = try writer.run(rollback) else { return nil }
            options.onWrite()
            logger.notice("\(name): rollback commit \(commit.short) written for the abort")
            return commit
        } catch {
            escalate(Failure(app: name, release: undoing, reason: "aborted"), "the abort's rollback commit could not be written: \(error)")
            return nil
        }
    }

    /// The new version takes all traffic; the old one stops.
    func promote(_ name: String, by asked: RolloutRequest?) {
        guard let app = state.apps[name], let rollout = app.rollout, let instance = app.instance, let release = app.release.flatMap(OID.init(hex:)) else { return }
        var fields = [("version", instance.version), ("from", rollout.strategy == .canary ? "\(rollout.weight)%" : "blue-green")]
        if let asked { fields.append(("by", asked.actor)) }
        if let reason = asked?.reason { fields.append(("reason", reason)) }
        record(.rollout(app: name, nil, note: NoteRecorder.Entry(outcome: .promoted, app: name, fields: fields), on: release))
        logger.notice("\(name): \(instance.version) promoted; stopping \(rollout.stable.version)")
        retire(rollout.stable, of: name)
    }

    /// Stops an instance the proxy no longer routes to, once the proxy has
    /// let go of it (its requests in flight answered; at most 5 s).
    func retire(_ instance: Instance, of name: String) {
        let deadline = clock.monotonicMilliseconds() + 5_000
        while routed[name] == nil, state.apps[name]?.traffic != nil, state.apps[name]?.trafficError == nil, clock.monotonicMilliseconds() < deadline {
            clock.sleep(milliseconds: 5)
            routeTraffic(name)
        }
        drivers[instance.runsOn]?.stop(instance)
    }

    /// A deploy of the tree the rollout's stable version runs (a rollback
    /// commit, written by Rewind or by hand): traffic goes back to it at
    /// once, without starting anything.
    func switchBack(_ step: PlannedStep, release: OID) -> Failure? {
        let name = step.ref.name
        guard let app = state.apps[name], let rollout = app.rollout, let canary = app.instance else { return nil }
        logger.notice("\(name): the tip returns to \(rollout.stable.version), which still runs; switching traffic back to it")
        record(.aborted(app: name, stable: rollout.stable, stableRelease: release.hex))
        retire(canary, of: name)
        if let canaryRelease = app.release.flatMap(OID.init(hex:)) {
            record(.noted([NoteRecorder.Entry(outcome: .aborted, app: name, fields: [("weight", String(rollout.weight)), ("version", canary.version),
                                                                                    ("reason", "the branch returned to \(rollout.stable.version)")])], on: canaryRelease))
        }
        record(.running(app: name, release: release))
        verification(name, release: release)
        return nil
    }

    /// A newer release replaces the one being rolled out: the stable version
    /// takes all traffic back first, and the new deploy starts from it.
    func cancelRollout(_ name: String, because why: String) {
        guard let app = state.apps[name], let rollout = app.rollout, let canary = app.instance else { return }
        logger.notice("\(name): \(why); the rollout of \(canary.version) ends and \(rollout.stable.version) takes all traffic back")
        record(.aborted(app: name, stable: rollout.stable, stableRelease: rollout.stableRelease))
        retire(canary, of: name)
    }

    /// Answers the operators' requests left in the state directory.
    private func answerRequests() {
        let mono = clock.monotonicMilliseconds()
        guard mono >= nextRequestLook else { return }
        nextRequestLook = mono + 100
        for file in FileIO.list(store.requestsDirectory) where file.hasSuffix(".json") && !file.hasSuffix(".answer.json") {
            let app = String(file.dropLast(5))
            let path = "\(store.requestsDirectory)/\(file)"
            guard let bytes = FileIO.read(path) else { continue }
            FileIO.removeTree(path)
            guard let request = try? JSONDecoder().decode(RolloutRequest.self, from: Data(bytes)) else {
                logger.warning("ignoring \(path): not a rollout request")
                continue
            }
            let answer = handle(request, app: app)
            // The notes it left are in git before the operator hears back.
            flushNotes()
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            if let data = try? encoder.encode(answer) { _ = FileIO.writeAtomically(store.answerFile(app), Array(data)) }
        }
    }

    private func handle(_ request: RolloutRequest, app name: String) -> RolloutAnswer {
        func answer(_ ok: Bool, _ message: String, commit: OID? = nil) -> RolloutAnswer { RolloutAnswer(id: request.id, ok: ok, message: message, commit: commit?.hex) }
        guard let app = state.apps[name], desired?.contains(name) == true else { return answer(false, "\(name) is not an app the reconciler runs") }
        guard let rollout = app.rollout, let instance = app.instance, let release = app.release.flatMap(OID.init(hex:)) else {
            return answer(false, "\(name) has no rollout in progress" + (app.traffic == nil ? " (its app.yaml has no traffic:)" : ""))
        }
        let now = clock.wallMilliseconds()
        var fields = [("version", instance.version), ("weight", String(rollout.weight)), ("by", request.actor)]
        if let reason = request.reason { fields.append(("reason", reason)) }
        logger.notice("\(name): \(request.action.rawValue) by \(request.actor)")
        switch request.action {
        case .promote:
            promote(name, by: request)
            return answer(true, "\(name) \(instance.version) promoted: it takes all traffic, and \(rollout.stable.version) was stopped")
        case .abort:
            let commit = abortRollout(name, reason: "aborted by \(request.actor)", detectedAt: now, by: request)
            return answer(commit != nil, commit.map { "\(name) \(instance.version) aborted: \(rollout.stable.version) serves all traffic; rollback commit \($0.short)" }
                ?? "\(name) \(instance.version) was taken out of traffic, but the rollback commit could not be written (see the reconciler's log)", commit: commit)
        case .pause:
            guard !rollout.paused else { return answer(false, "\(name)'s rollout is paused already") }
            var moved = rollout
            moved.pausedAt = now
            record(.rollout(app: name, moved, note: NoteRecorder.Entry(outcome: .paused, app: name, fields: fields), on: release))
            return answer(true, "\(name)'s rollout is paused at \(rollout.weight)% for \(instance.version); analysis goes on")
        case .resume:
            guard let pausedAt = rollout.pausedAt else { return answer(false, "\(name)'s rollout is not paused") }
            var moved = rollout
            moved.pausedAt = nil
            moved.stepStartedAt += now - pausedAt
            record(.rollout(app: name, moved, note: NoteRecorder.Entry(outcome: .resumed, app: name, fields: fields), on: release))
            return answer(true, "\(name)'s rollout resumes at \(rollout.weight)% for \(instance.version)")
        }
    }
}
