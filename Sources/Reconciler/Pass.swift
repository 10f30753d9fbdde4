import DeployModel
import GitKit
import Platforms
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
}

/// A release that failed on the platform.
struct Failure {
    let app: String
    let release: OID
    let reason: String
}

extension Reconciler {
    /// One pass over the tip (the steps in the overview at the top of
    /// Reconciler.swift). True when it wrote a rollback commit, so that the
    /// loop passes again at once.
    func pass(full: Bool) -> Bool {
        let started = clock.monotonicMilliseconds()
        defer { options.observer.passFinished(milliseconds: clock.monotonicMilliseconds() - started) }
        state.lastPassAt = clock.wallMilliseconds()
        let tip: OID
        do {
            tip = try repo.tip()
        } catch {
            reportRepositoryError(error)
            return false
        }
        state.lastError = nil
        guard ancestryHolds(tip), let desired = validDesiredState(tip), signaturesHold(tip, desired) else { return false }
        let tipChanged = state.tip != tip.hex
        let rollbackTip = tipChanged ? rollbackApps(tip, desired) : []
        let steps = plan(desired, tip: tip, tipChanged: tipChanged, rollbackApps: rollbackTip, full: full)
        var failures = runWaves(steps, desired, reverse: !rollbackTip.isEmpty, tip: tip)
        if fatal != nil { return false }
        removeAppsNoLongerDesired(desired)
        state.tip = tip.hex
        state.lastApplied = tip.hex
        save()
        // A failure recorded by a reconciler killed before it decided on a
        // rollback is decided now.
        for (name, app) in state.apps.sorted(by: { $0.key < $1.key }) where !failures.contains(where: { $0.app == name }) {
            guard let undecided = app.undecidedFailure, let release = OID(hex: undecided), app.failedRelease == undecided else { continue }
            logger.notice("\(name) release \(release.short) failed before a restart; deciding on its rollback now")
            failures.append(Failure(app: name, release: release, reason: app.lastError ?? "failed"))
        }
        // Every failure of the pass at once: one commit for the apps the
        // policy rolls back, an escalation for each of the others.
        return failures.isEmpty ? false : automaticRollback(failures)
    }

    private func reportRepositoryError(_ error: any Error) {
        let text = "\(error)"
        if state.lastError != text { logger.error("cannot read the branch: \(text); retrying on the next pass") }
        state.lastError = text
        save()
    }

    /// Step 2: the tip must descend from the last commit acted on.
    func ancestryHolds(_ tip: OID) -> Bool {
        guard let anchorHex = state.lastApplied, var anchor = OID(hex: anchorHex), anchor != tip else {
            state.halted = nil
            return true
        }
        // A rollback commit a mirror replaced (the remote had moved; it was
        // planned again on the remote's tip) is not part of the history: its
        // successor descends from its parent.
        let replaced = ReplacedCommits(gitDirectory: repo.git.gitDirectory).all()
        while replaced.contains(anchor.hex), let parent = try? repo.git.commit(anchor).parents.first { anchor = parent }
        let descends = (try? repo.git.isDescendant(tip, of: anchor)) ?? false
        if descends {
            state.halted = nil
            return true
        }
        let why = "history rewritten: the tip \(tip.short) of \(repo.branchName) does not descend from \(anchor.short), the last commit applied; "
            + "reconciliation is halted. Check the new history, then run `rewind reconcile --accept-rewrite \(tip.short)`"
        if state.halted != why { logger.critical("\(why)") }
        state.halted = why
        save()
        return false
    }

    /// Step 3b: the signature policy (`--verify`, raised by rewind.yaml's
    /// `policy.verify`): the tip, or every new commit, must be signed by an
    /// allowed signer. A tip that fails is refused like an invalid one.
    func signaturesHold(_ tip: OID, _ desired: DesiredView) -> Bool {
        let level = max(options.verify, SignaturePolicy(rawValue: desired.config.policy.verify) ?? .none)
        guard level != .none, verifiedTip != tip else { return true }
        var commits = [tip]
        if level == .all, let anchor = state.lastApplied, anchor != tip.hex, let range = try? repo.git.commits(inRange: "\(anchor)..\(tip.hex)") {
            commits = range
        }
        let verifier = SignatureVerifier(allowedSigners: options.allowedSigners)
        for commit in commits {
            guard let problem = verifier.problem(with: commit, in: repo.git) else { continue }
            let refused = RefusedCommit(commit: tip.hex, message: "signature policy '\(level.rawValue)': \(problem)", details: [])
            if state.invalid != refused {
                logger.error("refusing \(tip.short): \(refused.message); the last applied state stays")
                let apps = desired.config.apps.map(\.name).joined(separator: ",")
                options.notifier?.send(RollbackEvent(.refused, app: apps, trigger: "signature", commit: tip.hex, reason: refused.message))
            }
            state.invalid = refused
            state.tip = tip.hex
            save()
            return false
        }
        verifiedTip = tip
        return true
    }

    /// Step 3: the tip's desired state, valid as a whole, or nil (refused).
    /// A tip this state directory already validated and applied is not
    /// parsed again.
    func validDesiredState(_ tip: OID) -> DesiredView? {
        if let desired, desired.commit == tip { return desired }
        if state.tip == tip.hex, state.lastApplied == tip.hex, state.invalid == nil, let view = try? DesiredView(trusted: tip, repo: repo) {
            desired = view
            return view
        }
        do {
            let loaded = try DesiredState.load(repo, commit: tip, limits: options.limits)
            let view = DesiredView(validated: loaded, repo: repo)
            desired = view
            state.invalid = nil
            return view
        } catch let error as RewindError {
            let refused = RefusedCommit(commit: tip.hex, message: error.message, details: error.diagnostics.map { "\($0)" })
            if state.invalid != refused {
                logger.error("refusing \(tip.short): \(error.message); the last valid state stays applied\n\(refused.details.joined(separator: "\n"))")
            }
            state.invalid = refused
            state.tip = tip.hex
            save()
            return nil
        } catch {
            reportRepositoryError(error)
            return nil
        }
    }

    /// The apps a rollback commit at the tip changes; empty when the tip is
    /// not a rollback (Rewind's trailers, or git's own revert message).
    func rollbackApps(_ tip: OID, _ desired: DesiredView) -> Set<String> {
        guard let commit = try? repo.git.commit(tip), isRollback(commit) else { return [] }
        let parentTree = commit.parents.first.flatMap { try? repo.git.commit($0).tree }
        var changed: Set<String> = []
        for app in desired.config.apps {
            let now = try? repo.appTree(app, in: commit.tree)
            let before = parentTree.flatMap { try? repo.appTree(app, in: $0) }
            if now != before { changed.insert(app.name) }
        }
        return changed
    }

    func isRollback(_ commit: Commit) -> Bool { RollbackHistory.isRollback(commit) }

    /// Step 4: what to do for each app; apps with nothing to do are left out.
    func plan(_ desired: DesiredView, tip: OID, tipChanged: Bool, rollbackApps: Set<String>, full: Bool) -> [PlannedStep] {
        var steps: [PlannedStep] = []
        for ref in desired.config.apps {
            let name = ref.name
            guard let tree = effectiveTree(ref, desired, tip: tip, tipChanged: tipChanged) else { continue }
            let app = state.apps[name] ?? AppState()
            if let failed = app.failedTree {
                if failed == tree.hex { continue }
                // The desired state moved on: forget the failure.
                update(name) { app in
                    app.failedTree = nil
                    app.failedRelease = nil
                    app.needsHuman = nil
                    app.lastError = nil
                }
            }
            let action: PlannedStep.Action
            if app.instance?.tree == tree.hex && app.health != .failed && app.health != .stopped {
                if rollbackApps.contains(name) {
                    action = .verify
                } else if full && app.observes {
                    action = .observe
                } else {
                    continue
                }
            } else {
                action = .deploy
            }
            let spec = tree == desired.trees[name] ? desired.spec(ref) : repo.appSpec(appTree: tree, app: ref)
            guard let spec else { continue }
            steps.append(PlannedStep(ref: ref, spec: spec, tree: tree, action: action))
        }
        return steps
    }

    /// The tree an app should run: its tree at the tip, or its pin's.
    private func effectiveTree(_ ref: AppRef, _ desired: DesiredView, tip: OID, tipChanged: Bool) -> OID? {
        let name = ref.name
        guard let tipTree = desired.trees[name] else { return nil }
        guard let pin = desired.pins.pins[name] else {
            if state.apps[name]?.heldByPin != nil { update(name) { $0.heldByPin = nil } }
            return tipTree
        }
        if state.apps[name]?.heldByPin != pin.tree { update(name) { $0.heldByPin = pin.tree } }
        guard let pinTree = OID(hex: pin.tree), pinTree != tipTree else { return tipTree }
        guard let spec = repo.appSpec(appTree: pinTree, app: ref) else {
            update(name) { $0.lastError = "the pin holds \(name) at tree \(pinTree.short), which has no valid app.yaml; fix or remove the pin" }
            return nil
        }
        if tipChanged {
            note([NoteRecorder.Entry(outcome: .held, app: name, fields: [("pin", pinTree.short), ("version", spec.version)])], on: tip)
            logger.notice("\(name) is held by a pin at \(spec.version); the tip's change to it is not applied")
        }
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
        for (name, app) in state.apps where !desired.contains(name) {
            if let instance = app.instance, let driver = drivers[instance.runsOn] {
                logger.notice("stopping \(name): it is no longer in \(RepoConfig.fileName)")
                driver.stop(instance)
            }
            state.apps[name] = nil
        }
    }
}
