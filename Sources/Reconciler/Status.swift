import DeployModel
import GitKit
import Rollback
import SystemSupport

/// One app in `rewind status`.
public struct AppStatus: Sendable {
    public var name: String
    public var desiredVersion: String?
    public var desiredTree: String?
    public var appliedVersion: String?
    public var appliedCommit: String?
    public var appliedTree: String?
    public var health: Health
    /// The pinned version, when a pin holds the app.
    public var pin: String?
    public var lastError: String?
    public var waitingFor: String
    public var pid: Int32?
    public var port: Int?
    public var lastRollback: RollbackTimeline?
    /// When the running instance became healthy (wall-clock ms).
    public var healthySince: Int64?
}

/// What `rewind status` shows: the branch, the reconciler, and every app.
public struct StatusReport: Sendable {
    public var branch: String
    public var tip: String?
    public var lastApplied: String?
    /// The pid of the running reconciler, if one runs.
    public var reconcilerPid: Int32?
    public var halted: String?
    public var invalid: RefusedCommit?
    public var lastError: String?
    public var apps: [AppStatus]
    /// For a mirror of a remote repository: the last sync and what is unpushed.
    public var remote: RemoteSyncStatus?
    /// Rollback commits the remote has not accepted yet (host down, or rejected).
    public var unpushed: [Outbox.Entry] = []

    /// Reads the state directory and the tip's desired state.
    public static func build(repo: DeployRepository, stateDirectory: String?) throws -> StatusReport {
        let store = StateStore(directory: stateDirectory ?? Reconciler.defaultStateDirectory(repo))
        let state = try store.load()
        let tip = try? repo.tip()
        let desired = tip.flatMap { try? DesiredState.load(repo, commit: $0) }
        var report = StatusReport(branch: repo.branchName, tip: tip?.hex, lastApplied: state.lastApplied, reconcilerPid: store.runningPid(),
                                  halted: state.halted, invalid: desired == nil || state.invalid?.commit == tip?.hex ? state.invalid : nil,
                                  lastError: state.lastError, apps: [])
        if repo.isMirror {
            report.remote = RemoteSyncStatus.read(gitDirectory: repo.git.gitDirectory)
            report.unpushed = Outbox(gitDirectory: repo.git.gitDirectory).entries()
        }
        let names = desired?.config.apps.map(\.name) ?? state.apps.keys.sorted()
        for name in names {
            report.apps.append(appStatus(name, state.apps[name] ?? AppState(), desired: desired, repo: repo, report: report))
        }
        return report
    }

    private static func appStatus(_ name: String, _ app: AppState, desired: DesiredState?, repo: DeployRepository, report: StatusReport) -> AppStatus {
        let loaded = desired?.app(name)
        var tree = loaded?.treeID
        var version = loaded?.spec.version
        var pinVersion: String?
        if let pin = desired?.pins.pins[name], let pinTree = OID(hex: pin.tree), let ref = loaded?.ref {
            let spec = repo.appSpec(appTree: pinTree, app: ref)
            pinVersion = spec?.version ?? pinTree.short
            tree = pinTree
            version = spec?.version ?? version
        }
        var status = AppStatus(name: name, desiredVersion: version, desiredTree: tree?.hex, appliedVersion: app.instance?.version,
                               appliedCommit: app.release ?? app.instance?.commit, appliedTree: app.instance?.tree, health: app.health,
                               pin: pinVersion, lastError: app.lastError, waitingFor: "", pid: app.instance?.pid,
                               port: app.instance?.port, lastRollback: app.lastRollback, healthySince: app.healthySince)
        status.waitingFor = waitingFor(app, desiredTree: tree?.hex, report: report)
        return status
    }

    /// What has to happen next for the app to be where the branch says.
    static func waitingFor(_ app: AppState, desiredTree: String?, report: StatusReport) -> String {
        if report.halted != nil { return "an operator: history was rewritten (rewind reconcile --accept-rewrite REV)" }
        if report.invalid != nil { return "a valid commit: the tip is refused" }
        if let human = app.needsHuman { return "a human: \(human)" }
        if let failed = app.failedTree, failed == desiredTree { return "a new commit: this release failed (fix forward or roll back)" }
        switch app.health {
        case .starting: return "health checks to pass"
        case .restarting: return "a restart (backoff)"
        case .unhealthy: return "health checks to pass again"
        default: break
        }
        if desiredTree != nil && app.instance?.tree != desiredTree {
            return report.reconcilerPid == nil ? "a reconciler (run `rewind reconcile`)" : "the reconciler to apply it"
        }
        return "nothing"
    }
}
