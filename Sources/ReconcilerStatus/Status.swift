import DeployModel
import GitKit
import Remote
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
    /// The container's id (container platform).
    public var container: String?
    /// The container's image, `REGISTRY/REPOSITORY[:TAG]@DIGEST` (container platform).
    public var image: String?
    public var port: Int?
    public var lastRollback: RollbackTimeline?
    /// When the running instance became healthy (wall-clock ms).
    public var healthySince: Int64?
    /// Why a human must act (an escalation), when one must.
    public var needsHuman: String?
    /// When the health was last observed (wall-clock ms); with no reconciler
    /// running it is not current.
    public var healthObservedAt: Int64?
    public var healthIsLive = false
    /// The desired release failed on the platform (set while the desired tree is the failed one).
    public var failed: String?
    /// When the running instance was started (wall-clock ms).
    public var startedAt: Int64?
    /// Consecutive restarts of a crashing process.
    public var restarts = 0
    /// Where the app's output is captured (`rewind logs APP`).
    public var logFile: String?
    /// Behind a proxy: where clients connect, and the rollout under way.
    public var traffic: TrafficStatus?
    /// The last check of the app's `updates:` (serve), while it has them.
    public var updates: UpdateCheck?
    /// Why its new release waits for other hosts (a staged rollout across hosts).
    public var stage: StageHold?
    /// Why its new release waits for a change window.
    public var freeze: String?
}

/// An app behind Rewind's proxy: its listen port, and its rollout's step and weights.
public struct TrafficStatus: Sendable {
    public var listenPort: Int
    public var strategy: String
    /// The rollout under way, if one is.
    public var rolloutVersion: String?
    public var stableVersion: String?
    /// The new version's share, percent (100 without a rollout).
    public var weight: Int
    /// 1-based canary step, and how many there are.
    public var step: Int?
    public var steps: Int?
    public var paused = false
    /// Why the proxy sends the app nothing, when it does.
    public var held: String?
    public var error: String?

    /// `step app=api weight=25 version=1.6.0`, as the notes write it.
    public func line(app: String) -> String {
        guard let version = rolloutVersion else { return "traffic app=\(app) weight=\(held == nil ? 100 : 0) listen=127.0.0.1:\(listenPort)" }
        return "step app=\(app) weight=\(weight) version=\(version)" + (step.map { " step=\($0)/\(steps ?? 0)" } ?? "") + (paused ? " paused" : "")
    }
}

/// What `rewind status` shows: the branch, the reconciler, and every app.
public struct StatusReport: Sendable {
    public var branch: String
    public var tip: String?
    public var lastApplied: String?
    /// The pid of the running reconciler, if one runs.
    public var reconcilerPid: Int32?
    /// The host this state directory's reconciler runs as (`--host`), if any.
    public var host: String?
    public var halted: String?
    public var invalid: RefusedCommit?
    public var lastError: String?
    public var apps: [AppStatus]
    /// For a mirror of a remote repository: the last sync and what is unpushed.
    public var remote: RemoteSyncStatus?
    /// Rollback commits the remote has not accepted yet (host down, or rejected).
    public var unpushed: [Outbox.Entry] = []

    /// What needs a human: a halt, a refused tip, or an escalated app.
    public var needsHuman: [String] {
        var found: [String] = []
        if let halted { found.append(halted) }
        if let invalid { found.append("tip \(invalid.commit.short) is refused: \(invalid.message)") }
        for app in apps { if let why = app.needsHuman { found.append("\(app.name): \(why)") } }
        return found
    }

    /// Reads the state directory and the tip's desired state (from
    /// `cache` when it holds the tip's: parsing 1,000 app.yaml files is
    /// most of the cost of a status).
    public static func build(repo: DeployRepository, stateDirectory: String?, cache: StatusCache? = nil) throws -> StatusReport {
        let store = StateStore(repo, directory: stateDirectory)
        let state = try store.load(cache: cache?.appStates)
        let tip = try? repo.tip()
        var desired: DesiredState?
        var refused = state.invalid
        if let tip {
            do {
                desired = try cache?.desired(repo, tip) ?? DesiredState.load(repo, commit: tip)
                if refused?.commit != tip { refused = nil }
            } catch let error as RewindError where error.code == .invalidState {
                // Refused whether or not a reconciler has seen it yet.
                if refused?.commit != tip { refused = RefusedCommit(commit: tip, message: error.message, details: error.diagnostics.map { "\($0)" }) }
            } catch {}
        }
        var report = StatusReport(branch: repo.branchName, tip: tip?.hex, lastApplied: state.lastApplied?.hex, reconcilerPid: store.runningPid(),
                                  halted: state.halted, invalid: refused, lastError: state.lastError, apps: [])
        if repo.isMirror {
            report.remote = RemoteSyncStatus.read(gitDirectory: repo.git.gitDirectory)
            report.unpushed = Outbox(gitDirectory: repo.git.gitDirectory).entries()
        }
        report.host = FileIO.readText(store.hostFile)?.trimmingCharacters()
        let names = desired?.config.apps(on: report.host).map(\.name)
            ?? (state.apps.isEmpty ? tip.flatMap { repo.newestValidConfig(from: $0) }?.config.apps(on: report.host).map(\.name) : nil)
            ?? state.apps.keys.sorted()
        let escalations = store.escalations()
        let updates = store.updateChecks()
        for name in names {
            let app = state.apps[name] ?? AppState()
            var status = appStatus(name, app, desired: desired, repo: repo, report: report)
            if let escalation = escalations[name], escalation.holds(desiredTree: status.desiredTree, appliedRelease: (app.release ?? app.instance?.commit)?.hex) {
                status.needsHuman = escalation.reason
                status.waitingFor = "a human: \(escalation.reason)"
            }
            status.healthObservedAt = state.lastPassAt
            status.logFile = store.logFile(name)
            status.healthIsLive = report.reconcilerPid != nil
            if desired?.app(name)?.spec.updates != nil { status.updates = updates[name] }
            report.apps.append(status)
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
                               appliedCommit: (app.release ?? app.instance?.commit)?.hex, appliedTree: app.instance?.tree.hex, health: app.health,
                               pin: pinVersion, lastError: app.lastError, waitingFor: "", pid: app.instance?.pid,
                               port: app.instance?.port, lastRollback: app.lastRollback, healthySince: app.healthySince, needsHuman: nil)
        status.waitingFor = waitingFor(app, desiredTree: tree?.hex, report: report)
        status.stage = app.stageHold
        status.freeze = app.freeze
        if let failedTree = app.failedTree, failedTree == tree { status.failed = app.lastError ?? "failed" }
        status.startedAt = app.instance?.startedAt
        status.container = app.instance?.container
        if let instance = app.instance, instance.runsOn == .container, let ref = loaded?.ref {
            status.image = repo.appSpec(appTree: instance.tree, app: ref)?.container.map { "\($0.image)" }
        }
        status.restarts = app.restarts
        if let traffic = app.traffic {
            var t = TrafficStatus(listenPort: traffic.listenPort, strategy: traffic.strategy.rawValue, weight: 100)
            if let rollout = app.rollout {
                t.rolloutVersion = app.instance?.version
                t.stableVersion = rollout.stable.version
                t.weight = rollout.weight
                if rollout.strategy == .canary {
                    t.step = rollout.step + 1
                    t.steps = traffic.steps.count
                }
                t.paused = rollout.paused
            }
            t.held = app.trafficHeld
            t.error = app.trafficError
            status.traffic = t
            if let problem = app.trafficError {
                status.waitingFor = "the proxy: \(problem)" + (app.rollout == nil ? "" : "; the rollout is held until it routes again")
            } else if let held = app.trafficHeld {
                status.waitingFor = "the coordinated rollback to finish (traffic drained: \(held))"
            } else if let rollout = app.rollout, status.waitingFor == "nothing" {
                status.waitingFor = rollout.paused ? "an operator: the rollout is paused (rewind resume \(name))"
                    : rollout.strategy == .canary ? "the canary's next step (\(t.line(app: name)))" : "the blue-green scaleDownDelay to end"
            }
        }
        return status
    }

    /// What has to happen next for the app to be where the branch says.
    static func waitingFor(_ app: AppState, desiredTree: String?, report: StatusReport) -> String {
        if report.halted != nil { return "an operator: history was rewritten (rewind reconcile --accept-rewrite REV)" }
        if report.invalid != nil { return "a valid commit: the tip is refused" }
        if let failed = app.failedTree, failed.hex == desiredTree { return "a new commit: this release failed (fix forward or roll back)" }
        switch app.health {
        case .starting: return "health checks to pass"
        case .restarting: return "a restart (backoff)"
        case .unhealthy: return "health checks to pass again"
        default: break
        }
        if let freeze = app.freeze, desiredTree != nil && app.instance?.tree.hex != desiredTree { return "the change window: \(freeze)" }
        if let hold = app.stageHold, desiredTree != nil && app.instance?.tree.hex != desiredTree {
            return hold.halted ? "an operator: \(hold.reason)" : "the earlier stages of the rollout across hosts: \(hold.reason)"
        }
        if desiredTree != nil && app.instance?.tree.hex != desiredTree {
            return report.reconcilerPid == nil ? "a reconciler (run `rewind reconcile`)" : "the reconciler to apply it"
        }
        return "nothing"
    }
}

/// For a process that builds many status reports (`rewind serve`): the
/// desired state of the last tip asked for (or why it was refused), and
/// the decoded app state files. One thread at a time (the desk's, the
/// event watcher's: one each).
public final class StatusCache: @unchecked Sendable {
    let appStates = AppStateCache()
    private var last: (tip: OID, result: Result<DesiredState, RewindError>)?

    public init() {}

    func desired(_ repo: DeployRepository, _ commit: OID) throws -> DesiredState {
        if let last, last.tip == commit { return try last.result.get() }
        let result: Result<DesiredState, RewindError>
        do {
            result = .success(try DesiredState.load(repo, commit: commit))
        } catch let error as RewindError where error.code == .invalidState {
            result = .failure(error)
        }
        last = (commit, result)
        return try result.get()
    }
}

extension StatusReport {
    /// The same report with only `apps`.
    public init(copying report: StatusReport, apps: [AppStatus]) {
        self = report
        self.apps = apps
    }
}
