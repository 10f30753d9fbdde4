import DeployModel
import GitKit
import ReconcilerStatus
import Rollback

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
}
