import DeployModel
import GitKit
import SystemSupport

/// Turns a rollback request into the one commit it should write, against the
/// current tip. Pure with respect to refs: it writes objects (trees, blobs)
/// but never moves a reference.
struct Planner {
    let repo: DeployRepository
    let request: RollbackRequest
    let tip: OID
    let tipTree: OID
    let config: RepoConfig
    let pins: PinSet
    /// What the new state's app directories must stay within.
    let limits: AppLimits
    /// Attach each changed app's unified diff to the plan.
    let diffs: Bool

    init(repo: DeployRepository, request: RollbackRequest, tip: OID, limits: AppLimits, diffs: Bool = false) throws {
        self.repo = repo
        self.diffs = diffs
        self.request = request
        self.limits = limits
        self.tip = tip
        tipTree = try gitStep("reading the tip") { try repo.git.commit(tip).tree }
        do {
            config = try repo.config(tree: tipTree)
        } catch let error as RewindError where error.code == .invalidState {
            // A broken tip must not stop the rollback that repairs it: plan
            // with the newest valid rewind.yaml (for a revert of the commit
            // that broke it, its parent's). `finish` checks the state the
            // commit would write as a whole, so nothing invalid is written.
            guard let fallback = repo.newestValidConfig(from: tip) else { throw error }
            config = fallback.config
        }
        do {
            pins = try repo.pins(tree: tipTree)
            pinsProblem = nil
        } catch let error as RewindError where error.code == .invalidState {
            // Holds that cannot be read cannot be carried into a new commit.
            pins = PinSet()
            pinsProblem = error
        }
    }

    /// Why the tip's pins file could not be read; nil when it could.
    let pinsProblem: RewindError?

    /// Refuses every write but a revert on a tip whose pins file does not
    /// parse: writing the file anew would drop the holds it records. A
    /// revert may restore a valid file (`finish` checks the whole new state).
    private func refuseUnreadablePins() throws {
        guard let problem = pinsProblem else { return }
        if case .revert = request.operation { return }
        throw RewindError(.invalidState, "\(PinSet.fileName) at the tip (\(tip.short)) does not parse, so Rewind cannot tell which apps are held; nothing was written",
                          hint: "fix \(PinSet.fileName) in a new commit (at the line named above), or, if the tip's commit broke it, undo that commit with `rewind revert HEAD`",
                          diagnostics: problem.diagnostics)
    }

    func plan() throws -> PlanOutcome {
        try refuseUnreadablePins()
        switch request.operation {
        case .revert(let revision): return try planRevert(revision)
        case let .rollback(apps, all, target): return try planRollback(apps: all ? config.apps.map(\.name) : apps, to: target)
        case let .pin(app, target): return try planPin(app, to: target)
        case .unpin(let app): return try planUnpin(app)
        case let .update(app, to): return try planUpdate(app, to: to)
        case let .allow(app, version): return try planAllow(app, version: version)
        }
    }

    // MARK: revert

    private func planRevert(_ revision: String) throws -> PlanOutcome {
        let target = try repo.resolve(revision)
        let commit = try gitStep("reading \(revision)") { try repo.git.commit(target) }
        // Like `git revert`, the commit need not be on the branch: its
        // inverse is merged onto the tip either way.
        guard !commit.parents.isEmpty else {
            throw RewindError(.refused, "commit \(target.short) is the first commit and cannot be reverted", hint: "roll an app back to a later commit instead")
        }
        let outcome = try gitStep("reverting \(target.short)") { try repo.git.revert(target, onto: tip) }
        guard case .tree(let newTree) = outcome else {
            if case .conflicts(let paths) = outcome {
                throw RewindError(.conflict, "reverting \(target.short) conflicts with later commits in: \(paths.joined(separator: ", "))",
                                  hint: "later commits changed the same lines; use `rewind rollback APP --to \(target.short)~1` to restore the app's whole state instead")
            }
            throw RewindError(.internalFailure, "revert produced no tree")
        }
        if newTree == tipTree {
            return .alreadyDone("commit \(target.short) is already rolled back: reverting it changes nothing")
        }
        var message = "Revert \"\(commit.summary)\"\n\nThis reverts commit \(target.hex)"
        message += commit.parents.count > 1 ? ", reversing\nchanges made to \(commit.parents[0].hex).\n" : ".\n"
        return try finish(newTree: newTree, action: .revert, targets: [target], message: message)
    }

    // MARK: rollback

    private func planRollback(apps names: [String], to spec: TargetSpec?) throws -> PlanOutcome {
        guard !names.isEmpty else { throw RewindError(.usage, "name at least one app, or pass --all") }
        var tree = tipTree
        var targets: [OID] = []
        var moved: [String] = []
        var skipped: [String] = []
        var undoing: [String: OID] = [:]
        let needsHistory: Bool
        switch spec {
        case nil, .release: needsHistory = true
        case .revision, .perApp: needsHistory = request.undoing != nil
        }
        let history = needsHistory ? try ReleaseHistory.load(repo, config: config, tip: tip, details: false) : nil
        for name in names {
            let app = try appRef(name)
            if pins.pins[name] != nil {
                throw RewindError(.refused, "app \(name) is held by a pin", hint: "move the hold with `rewind pin \(name) --to REV`, or release it with `rewind unpin \(name)`")
            }
            let releases = history?.of(name) ?? []
            let current = Self.currentRelease(releases)
            if let why = try alreadyRolledBack(app, current: current, releases: releases, spec: spec) {
                skipped.append(why)
                continue
            }
            let (target, targetTree) = try resolveTarget(app, spec, history: history, defaultIsCurrent: false)
            let currentTree = try repo.appTree(app, in: tipTree)
            if currentTree == targetTree { continue }
            tree = try replaceApp(app, in: tree, with: targetTree, from: target)
            targets.append(target)
            moved.append(name)
            if let current { undoing[name] = current.commit }
        }
        if moved.isEmpty {
            if !skipped.isEmpty { return .alreadyDone(skipped.joined(separator: "; ")) }
            return .alreadyDone("already rolled back: \(names.joined(separator: ", ")) \(names.count == 1 ? "is" : "are") already at the target state")
        }
        if Set(targets).count == 1 { targets = [targets[0]] }
        guard case .commit(var planned) = try finish(newTree: tree, action: .rollback, targets: targets, message: nil) else {
            return .alreadyDone("nothing to change")
        }
        planned.undoing = undoing
        planned.skipped = skipped
        return .commit(planned)
    }

    /// The app's newest release that changed its tree (pin and unpin
    /// commits that only move the hold do not count).
    static func currentRelease(_ releases: [Release]) -> Release? {
        releases.last { $0.tree != $0.previousTree }
    }

    /// Why an app needs no rollback by this request, or nil when it does:
    /// with the default target, its current release is already a rollback
    /// (rolling back is idempotent: running it again must not go one release
    /// further back); when planning again, someone else rolled back the
    /// release this request set out to undo.
    private func alreadyRolledBack(_ app: AppRef, current: Release?, releases: [Release], spec: TargetSpec?) throws -> String? {
        guard let current, current.kind == .rollback || current.kind == .pin else { return nil }
        switch spec {
        case nil: break
        case .revision, .release, .perApp:
            guard let undoing = request.undoing?[app.name], undoing != current.commit.hex else { return nil }
        }
        let summary = (try? repo.git.commit(current.commit).summary) ?? ""
        let version = repo.appSpec(appTree: current.tree, app: app)?.version ?? current.tree?.short ?? "nothing"
        let restored = current.target.flatMap { target in releases.last { $0.commit == target && $0.tree == current.tree } }
        let position = restored.map { " (release #\($0.number))" } ?? ""
        var why = "\(app.name) is already rolled back: \(current.commit.short) \"\(RollbackTrailers.oneLine(summary))\" (release #\(current.number)) set it to \(version)\(position)"
        if let further = LastGoodRelease.find(releases, git: repo.git) {
            why += "; to go further back, run `rewind rollback \(app.name) --to #\(further.number)`"
        } else {
            why += "; there is no earlier release to go back to"
        }
        return why
    }

    // MARK: pin / unpin

    private func planPin(_ name: String, to spec: TargetSpec?) throws -> PlanOutcome {
        let app = try appRef(name)
        var history: ReleaseHistory?
        if case .release = spec { history = try ReleaseHistory.load(repo, config: config, tip: tip, details: false) }
        let (target, targetTree) = try resolveTarget(app, spec, history: history, defaultIsCurrent: true)
        guard let targetTree else {
            throw RewindError(.refused, "app \(name) does not exist at \(target.short)", hint: "pin to a commit where \(app.path) exists")
        }
        if pins.pins[name]?.tree == targetTree.hex, try repo.appTree(app, in: tipTree) == targetTree {
            return .alreadyDone("app \(name) is already pinned at this state")
        }
        var newPins = pins
        newPins.pins[name] = Pin(tree: targetTree.hex, target: target.hex, reason: request.reason.map { RollbackTrailers.oneLine($0, limit: Bounded.maxReasonLength) })
        var tree = try replaceApp(app, in: tipTree, with: targetTree, from: target)
        tree = try writePins(newPins, into: tree)
        return try finish(newTree: tree, action: .pin, targets: [target], message: nil, namedApps: [name])
    }

    private func planUnpin(_ name: String) throws -> PlanOutcome {
        _ = try appRef(name)
        guard pins.pins[name] != nil else { return .alreadyDone("app \(name) is not pinned") }
        var newPins = pins
        newPins.pins[name] = nil
        let tree = try writePins(newPins, into: tipTree)
        return try finish(newTree: tree, action: .unpin, targets: [], message: nil, namedApps: [name])
    }

    // MARK: shared steps

    func appRef(_ name: String) throws -> AppRef {
        guard let app = config.app(named: name) else {
            throw RewindError(.notFound, "unknown app '\(Bounded.text(name))'", hint: "apps in rewind.yaml: \(config.apps.map(\.name).joined(separator: ", "))")
        }
        return app
    }

    /// The commit and app tree a target names. Without a target: the current
    /// state (pins) or the last good release before the current one (rollback).
    private func resolveTarget(_ app: AppRef, _ spec: TargetSpec?, history: ReleaseHistory?, defaultIsCurrent: Bool) throws -> (OID, OID?) {
        switch spec {
        case .perApp(let revisions):
            guard let revision = revisions[app.name] else {
                throw RewindError(.usage, "no target given for app \(app.name)", hint: "name a revision for every app")
            }
            return try resolveTarget(app, .revision(revision), history: history, defaultIsCurrent: defaultIsCurrent)
        case .revision(let revision):
            let commit: OID
            do {
                commit = try repo.resolve(revision)
            } catch let error as RewindError where error.code == .notFound {
                // Not a revision: a version label, the app's newest release with it.
                let releases = try ReleaseHistory.load(repo, config: config, tip: tip).of(app.name)
                guard let release = releases.last(where: { $0.version == revision && $0.tree != nil }) else {
                    let versions = Array(Set(releases.compactMap(\.version))).sorted()
                    throw RewindError(.notFound, "'\(Bounded.text(revision, limit: 64))' is neither a revision nor a version of \(app.name)",
                                      hint: "give a commit, #N (see `rewind releases \(app.name)`), or one of its versions: \(versions.suffix(10).joined(separator: ", "))")
                }
                return (release.commit, release.tree)
            }
            let tree = try gitStep("reading \(revision)") { try repo.git.commit(commit).tree }
            return (commit, try repo.appTree(app, in: tree))
        case .release(let number):
            let releases = history?.of(app.name) ?? []
            guard number >= 1, number <= releases.count else {
                throw RewindError(.notFound, "app \(app.name) has no release #\(number)", hint: "it has releases #1 to #\(releases.count); see `rewind releases \(app.name)`")
            }
            return (releases[number - 1].commit, releases[number - 1].tree)
        case nil:
            if defaultIsCurrent { return (tip, try repo.appTree(app, in: tipTree)) }
            let releases = history?.of(app.name) ?? []
            guard let good = LastGoodRelease.find(releases, git: repo.git) else {
                throw RewindError(.refused, "app \(app.name) has no earlier release to roll back to", hint: "name a target with --to REV or --to #N")
            }
            return (good.commit, good.tree)
        }
    }

    private func replaceApp(_ app: AppRef, in tree: OID, with appTree: OID?, from commit: OID) throws -> OID {
        guard let appTree else {
            throw RewindError(.refused, "app \(app.name) does not exist at \(commit.short)", hint: "choose a target where \(app.path) exists")
        }
        return try gitStep("building the new tree") {
            try repo.git.replacingEntry(in: tree, path: app.path, with: TreeEntry(name: app.path, id: appTree, kind: .tree, mode: 0o040000))
        }
    }

    private func writePins(_ pins: PinSet, into tree: OID) throws -> OID {
        try gitStep("writing \(PinSet.fileName)") {
            let blob = try repo.git.writeBlob(Array(pins.serialised().utf8))
            return try repo.git.replacingEntry(in: tree, path: PinSet.fileName, with: TreeEntry(name: PinSet.fileName, id: blob, kind: .blob, mode: 0o100644))
        }
    }

    /// Runs the guards on the new state and composes the message.
    /// `decorate` adds what only this action's trailers carry.
    func finish(newTree: OID, action: RollbackTrailers.Action, targets: [OID], message: String?, namedApps: [String] = [],
                decorate: (inout RollbackTrailers) -> Void = { _ in }) throws -> PlanOutcome {
        let changes = try appChanges(to: newTree)
        if action == .revert, let held = changes.first(where: { pins.pins[$0.app] != nil }) {
            throw RewindError(.refused, "reverting this commit would change app \(held.app), which is held by a pin", hint: "unpin it first with `rewind unpin \(held.app)`")
        }
        // Never write an invalid desired state; a rollback that repairs a
        // broken app is fine, one that leaves another app broken is not.
        try DesiredState.check(repo, tree: newTree, commit: tip, what: "the state this \(action.rawValue) would write", limits: limits)
        var checked = ["the whole new state is valid (rewind.yaml, every app.yaml, the pins)"]
        var guards = Guards(repo: repo, config: config, artifactRoot: request.artifactRoot)
        guards.artifacts = request.artifacts
        var forcedArtifacts: [String] = []
        checked += try guards.checkArtifacts(changes: changes, force: request.force, forced: &forcedArtifacts)
        // Migrations are crossed going back; an update goes forward.
        let crossed = action == .update ? [] : try guards.checkMigrations(changes: changes, force: request.force)
        if action != .update {
            checked.append(crossed.isEmpty ? "no irreversible migration is crossed" : "irreversible migrations crossed with --force: \(crossed.joined(separator: "; "))")
        }
        let forced = crossed + forcedArtifacts
        if action == .revert { checked.append("no app held by a pin changes") }
        let apps = changes.map(\.app).isEmpty ? namedApps : changes.map(\.app)
        var trailers = RollbackTrailers(action: action, targets: targets, apps: apps, reason: request.reason, trigger: request.trigger,
                                        alert: request.alert, fingerprint: request.fingerprint, forced: forced)
        if action == .unpin { trailers.apps = namedApps }
        trailers.actor = request.actor
        trailers.breakGlass = request.breakGlass
        decorate(&trailers)
        let body = message ?? defaultMessage(action: action, changes: changes, apps: apps, targets: targets)
        let full = body + "\n" + trailers.rendered + "\n"
        var planned = PlannedCommit(parent: tip, parentTree: tipTree, tree: newTree, message: full, changes: changes, forced: forced)
        planned.guardsChecked = checked
        if diffs {
            var paths = changes.compactMap { change in config.app(named: change.app).map { (change.app, $0.path) } }
            if try repo.git.entry(in: tipTree, path: PinSet.fileName)?.id != repo.git.entry(in: newTree, path: PinSet.fileName)?.id {
                paths.append((PinSet.fileName, PinSet.fileName))
            }
            planned.diffs = try paths.map { app, path in
                (app, try gitStep("comparing \(path)") { try repo.git.unifiedDiff(from: tipTree, to: newTree, paths: [path]) })
            }
        }
        return .commit(planned)
    }

    private func appChanges(to newTree: OID) throws -> [AppChange] {
        try config.apps.compactMap { app in
            let before = try repo.appTree(app, in: tipTree)
            let after = try repo.appTree(app, in: newTree)
            guard before != after else { return nil }
            // Parsed once here; the guards and the message use these.
            return AppChange(app: app.name, fromTree: before, toTree: after,
                             fromSpec: repo.appSpec(appTree: before, app: app), toSpec: repo.appSpec(appTree: after, app: app))
        }
    }

    private func defaultMessage(action: RollbackTrailers.Action, changes: [AppChange], apps: [String], targets: [OID]) -> String {
        let described = changes.map { "\($0.app) to \($0.toVersion ?? $0.toTree?.short ?? "nothing")" }.joined(separator: ", ")
        switch action {
        case .pin where changes.isEmpty:
            return "Pin \(apps.joined(separator: ", ")) at its current state\n"
        case .pin:
            return "Pin \(described)\n\nRestores the state at \(targets.first?.hex ?? "?") and holds it.\n"
        case .unpin:
            return "Unpin \(apps.joined(separator: ", "))\n"
        default:
            let from = targets.count == 1 ? "\nRestores the state at \(targets[0].hex).\n" : ""
            return "Roll back \(described)\n\(from)"
        }
    }
}
