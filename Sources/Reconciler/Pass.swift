import DeployModel
import GitKit
import Platforms
import Remote
import ReconcilerStatus
import Rollback
import SystemSupport

/// What a pass decided for one app.
struct PlannedStep {
    enum Action: Equatable {
        /// Run this tree on the platform.
        case deploy
        /// Already running: check health and record `verified` (a rollback commit).
        case verify
        /// Already running: look for drift (exec observe, full passes).
        case observe
        case none
    }

    let ref: AppRef
    let spec: AppSpec
    let tree: OID
    let action: Action
    /// The tip is a rollback commit that changes this app.
    var isRollback = false
}

/// A release that failed on the platform.
struct Failure {
    let app: String
    let release: OID
    let reason: String
}

/// What a pass plans: the steps for the apps with something to do, and
/// what it found out while planning (pins, forgotten failures).
struct Plan {
    var steps: [PlannedStep] = []
    var outcomes: [Outcome] = []
}

extension Reconciler {
    /// One pass over the tip (the steps in the overview at the top of
    /// Reconciler.swift): gates, each returning a result; a pure plan; the
    /// waves; then the failures to the policy. `carryOut` and `summarise`
    /// write down what each returned. True when it wrote a rollback commit,
    /// so that the loop passes again at once.
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
        return failures.isEmpty ? false : carryOut([.rollBack(failures)]) != nil
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

    /// Gate 2: the tip must descend from the last commit acted on.
    func ancestryGate(_ tip: OID) -> GateResult {
        guard var anchor = state.lastApplied, anchor != tip else { return .proceed }
        // A rollback commit a mirror replaced (the remote had moved; it was
        // planned again on the remote's tip) is not part of the history: its
        // successor descends from its parent.
        let replaced = ReplacedCommits(gitDirectory: repo.git.gitDirectory).all()
        while replaced.contains(anchor.hex), let parent = try? repo.git.commit(anchor).parents.first { anchor = parent }
        if (try? repo.git.isDescendant(tip, of: anchor)) ?? false { return .proceed }
        return .halted("history rewritten: the tip \(tip.short) of \(repo.branchName) does not descend from \(anchor.short), the last commit applied; "
            + "reconciliation is halted. Check the new history, then run `rewind reconcile --accept-rewrite \(tip.short)`")
    }

    /// Gate 3b: the signature policy (`--verify`, raised by rewind.yaml's
    /// `policy.verify`): the tip, or every new commit, must be signed by an
    /// allowed signer. A tip that fails is refused like an invalid one.
    func signatureGate(_ tip: OID) -> GateResult {
        guard let desired else { return .proceed }
        let level = max(options.verify, SignaturePolicy(rawValue: desired.config.policy.verify) ?? .none)
        guard level != .none, verifiedTip != tip else { return .proceed }
        var commits = [tip]
        if level == .all, let anchor = state.lastApplied, anchor != tip, let range = try? repo.git.commits(inRange: "\(anchor)..\(tip.hex)") {
            commits = range
        }
        let verifier = SignatureVerifier(allowedSigners: options.allowedSigners)
        for commit in commits {
            guard let problem = verifier.problem(with: commit, in: repo.git) else { continue }
            return .refused(RefusedCommit(commit: tip, message: "signature policy '\(level.rawValue)': \(problem)", details: []))
        }
        verifiedTip = tip
        return .proceed
    }

    /// Gate 3: the tip's desired state, valid as a whole (kept in `desired`),
    /// or refused. A tip this state directory already validated and applied
    /// is not parsed again.
    func validationGate(_ tip: OID) -> GateResult {
        if let desired, desired.commit == tip { return .proceed }
        if state.tip == tip, state.lastApplied == tip, state.invalid == nil, let view = try? DesiredView(trusted: tip, repo: repo, host: options.host) {
            desired = view
            return .proceed
        }
        do {
            let loaded = try DesiredState.load(repo, commit: tip, limits: options.limits)
            desired = DesiredView(validated: loaded, repo: repo, host: options.host)
            if let why = loaded.config.unknownHost(options.host) { logger.warning("\(why); add it to hosts: and place apps on it") }
            return .proceed
        } catch let error as RewindError {
            return .refused(RefusedCommit(commit: tip, message: error.message, details: error.diagnostics.map { "\($0)" }))
        } catch {
            return .retry("\(error)")
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

    /// Step 4: what to do for each app (apps with nothing to do are left
    /// out), from the desired state and the recorded state alone: nothing
    /// is changed here; what planning found out comes back as outcomes.
    static func plan(_ desired: DesiredView, state: ReconcilerState, tip: OID, tipChanged: Bool, rollbackApps: Set<String>, full: Bool,
                     fleet: FleetSnapshot? = nil, windows: ChangeCalendar? = nil, overridden: Bool = false) -> Plan {
        var plan = Plan()
        for ref in desired.config.apps {
            let app = state.apps[ref.name] ?? AppState()
            var hold: StageHold?
            var freeze: String?
            var skipped: [String] = []
            if let step = step(ref, desired, app: app, tip: tip, tipChanged: tipChanged, rollbackApps: rollbackApps, full: full, into: &plan) {
                let returning = step.isRollback || desired.pins.pins[ref.name] != nil
                // A change window holds a new release (a rollback or pin only when it says rollbacks: deny).
                if step.action == .deploy, let windows { freeze = windows.hold(app: ref.name, rollback: returning, overridden: overridden) }
                // A new release waits for the stages before this host's; a rollback commit or a pin does not.
                if freeze == nil, step.action == .deploy, !returning, let fleet {
                    hold = fleet.hold(ref, tree: step.tree, waitingSince: app.stageHold?.since, skipped: &skipped)
                }
                if hold == nil && freeze == nil { plan.steps.append(step) }
            }
            if hold != app.stageHold || !skipped.isEmpty { plan.outcomes.append(.release(.staged(app: ref.name, hold, skipped: skipped))) }
            if freeze != app.freeze { plan.outcomes.append(.release(.frozen(app: ref.name, freeze))) }
        }
        return plan
    }

    /// What to do for one app, or nil: nothing.
    private static func step(_ ref: AppRef, _ desired: DesiredView, app: AppState, tip: OID, tipChanged: Bool, rollbackApps: Set<String>, full: Bool,
                             into plan: inout Plan) -> PlannedStep? {
        let name = ref.name
        guard let tree = effectiveTree(ref, desired, app: app, tip: tip, tipChanged: tipChanged, into: &plan) else { return nil }
        if let failed = app.failedTree {
            if failed == tree { return nil }
            // The desired state moved on: forget the failure.
            plan.outcomes.append(.release(.failureForgotten(app: name)))
        }
        let action: PlannedStep.Action
        if app.instance?.tree == tree && app.health != .failed && app.health != .stopped {
            if rollbackApps.contains(name) {
                action = .verify
            } else if full && app.observes {
                action = .observe
            } else {
                return nil
            }
        } else {
            action = .deploy
        }
        guard let spec = desired.spec(ref, tree: tree) else { return nil }
        return PlannedStep(ref: ref, spec: spec, tree: tree, action: action, isRollback: rollbackApps.contains(name))
    }

    /// The tree an app should run: its tree at the tip, or its pin's.
    private static func effectiveTree(_ ref: AppRef, _ desired: DesiredView, app: AppState, tip: OID, tipChanged: Bool, into plan: inout Plan) -> OID? {
        let name = ref.name
        guard let tipTree = desired.trees[name] else { return nil }
        guard let pin = desired.pins.pins[name] else {
            if app.heldByPin != nil { plan.outcomes.append(.pin(.set(app: name, tree: nil))) }
            return tipTree
        }
        if app.heldByPin?.hex != pin.tree { plan.outcomes.append(.pin(.set(app: name, tree: OID(hex: pin.tree)))) }
        guard let pinTree = OID(hex: pin.tree), pinTree != tipTree else { return tipTree }
        guard let spec = desired.spec(ref, tree: pinTree) else {
            plan.outcomes.append(.pin(.invalid(app: name, "the pin holds \(name) at tree \(pinTree.short), which has no valid app.yaml; fix or remove the pin")))
            return nil
        }
        if tipChanged { plan.outcomes.append(.pin(.held(app: name, pinTree: pinTree, version: spec.version, tip: tip))) }
        return pinTree
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
