import GitKit
import Rollback

/// What `rewind wait` concludes from one status report: like `kubectl
/// rollout status` and `argocd app wait`, done when every app runs the
/// tip's desired state and is healthy, and a clear failure otherwise.
public enum WaitVerdict: Equatable, Sendable {
    /// Not there yet: what each app is waiting for.
    case waiting([String: String])
    case done
    /// An app's release failed on the platform, or automation rolled it back.
    case failed(app: String, String)
    /// A human must act: an escalation, a halted reconciler, a refused tip.
    case needsHuman(String)

    /// The exit code of `rewind wait` (README: exit codes).
    public var exitCode: Int32 {
        switch self {
        case .done: return 0
        case .needsHuman: return 7
        case .failed: return 8
        case .waiting: return 9  // still waiting when the timeout passed
        }
    }
}

/// What to wait for.
public struct WaitCondition: Sendable {
    /// The apps (empty: every app).
    public var apps: [String]
    /// Each app runs the tip's desired tree (its pin's, when pinned).
    public var synced = true
    /// Each app is healthy.
    public var healthy = true

    public init(apps: [String], synced: Bool = true, healthy: Bool = true) {
        self.apps = apps
        self.synced = synced
        self.healthy = healthy
    }

    /// Judges one report. `rolledBack` names, by app, an automatic rollback
    /// commit written since the wait began (see `automaticRollbacks`).
    public func judge(_ report: StatusReport, rolledBack: [String: String] = [:]) -> WaitVerdict {
        if let halted = report.halted { return .needsHuman(halted) }
        if let refused = report.invalid { return .needsHuman("the tip \(refused.commit.short) is refused: \(refused.message)") }
        let names = apps.isEmpty ? report.apps.map(\.name) : apps
        var waiting: [String: String] = [:]
        for name in names {
            if let why = rolledBack[name] { return .failed(app: name, why) }
            guard let app = report.apps.first(where: { $0.name == name }) else {
                waiting[name] = "not in rewind.yaml at the tip"
                continue
            }
            if let human = app.needsHuman { return .needsHuman("\(name): \(human)") }
            if let failed = app.failed { return .failed(app: name, "\(name) \(app.desiredVersion ?? "") failed: \(failed)") }
            if synced && (app.appliedTree == nil || app.appliedTree != app.desiredTree) {
                // A freeze or a staged rollout says what it waits for (as status does).
                let held = app.freeze ?? app.stage.map { ($0.halted ? "halted: " : "") + $0.reason }
                waiting[name] = "\(app.desiredVersion ?? "its desired state") to be applied (runs \(app.appliedVersion ?? "nothing"))" + (held.map { "; \($0)" } ?? "")
            } else if healthy && app.health != .healthy {
                waiting[name] = "\(app.appliedVersion ?? "") to be healthy (\(app.health.rawValue)\(app.lastError.map { ": \($0)" } ?? ""))"
            }
        }
        if names.isEmpty { return .waiting(["": "apps in rewind.yaml"]) }
        return waiting.isEmpty ? .done : .waiting(waiting)
    }

    /// Automatic rollbacks (not a human's) of the awaited apps in the
    /// commits after `since` up to `tip`, first parents: app → what happened.
    public func automaticRollbacks(_ repo: DeployRepository, since: OID, tip: OID) -> [String: String] {
        var found: [String: String] = [:]
        for (commit, trailers) in RollbackHistory.automaticRollbacks(repo, from: tip, until: since) {
            for app in trailers.apps where apps.isEmpty || apps.contains(app) {
                found[app] = found[app] ?? "\(app) was rolled back by \(commit.id.short) (\(trailers.trigger.rawValue))" + (trailers.reason.map { ": \($0)" } ?? "")
            }
        }
        return found
    }

}
