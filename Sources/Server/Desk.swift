import Audit
import DeployModel
import GitKit
import Logging
import Reconciler
import ReconcilerStatus
import Remote
import Rollback
import SystemSupport

/// Where alert-driven and API rollbacks are decided and written: one actor,
/// one repository handle, one decision at a time. Concurrent copies of an
/// alert therefore see each other: the first writes the commit, the others
/// are duplicates. Alerts go through `AutomaticRollback`, the reconciler's
/// own automatic rollback; commits through the same `CommitWriter` as the CLI.
///
/// The actor runs on a thread of its own (`GitThread`), not on Swift's
/// cooperative pool: its libgit2 calls, lock waits and retry sleeps block,
/// and its handles stay on one thread.
actor RollbackDesk {
    private let thread: GitThread
    nonisolated var unownedExecutor: UnownedSerialExecutor { thread.asUnownedSerialExecutor() }

    let repo: DeployRepository
    let store: StateStore
    let options: ServeOptions
    let metrics: Metrics
    let logger: Logger
    let notifier: Notifier?
    var seen: SeenAlerts
    /// The tip's parsed desired state and the decoded app state files, for
    /// the status of every page and request.
    let statusCache = StatusCache()

    init(options: ServeOptions, metrics: Metrics, logger: Logger, notifier: Notifier? = nil) throws {
        guard let thread = GitThread() else { throw RequestError(500, "cannot start the alert desk's thread: the system has no thread to give") }
        self.thread = thread
        let repo = try DeployRepository(path: options.repoPath, branch: options.branch)
        let store = StateStore(repo, directory: options.stateDirectory)
        self.repo = repo
        self.store = store
        seen = SeenAlerts(file: store.directory + "/alerts-seen.json")
        self.options = options
        self.metrics = metrics
        self.logger = logger
        self.notifier = notifier
        if let damaged = seen.damaged { logger.warning("\(damaged)") }
    }

    /// One write of the API (`POST /api/v1/apps/{app}/rollback`, `/pin`,
    /// `/unpin`) or the web UI through the CLI's `CommitWriter`, with the
    /// actor's trigger (`api`, `ui`) and name as `Rewind-Actor`. With
    /// `dryRun`, the plan (message, diffs, guards) and nothing written.
    func write(_ action: DeskAction, reason: String?, dryRun: Bool, force: Bool = false, as actor: Actor) throws(RequestError) -> DeskWrite {
        var request = RollbackRequest(action.operation, reason: reason,
                                      by: RequestAuthor(trigger: actor.trigger, actor: actor.name, artifactRoot: options.artifactRoot, artifacts: options.artifacts))
        request.force = force
        request.breakGlass = actor.identity.breakGlass
        do {
            var writer = CommitWriter(repo: repo)
            writer.diffs = dryRun
            switch try writer.run(request, dryRun: dryRun) {
            case let .written(commit, plan, _):
                if dryRun { return DeskWrite(action: action, outcome: .planned, plan: plan) }
                if case .rollback = action { metrics.count("rewind_rollbacks_total", [("trigger", actor.trigger.rawValue), ("outcome", "committed")]) }
                options.syncLoop?.trigger()
                return DeskWrite(action: action, outcome: .written(commit), plan: plan)
            case .alreadyDone(let why):
                return DeskWrite(action: action, outcome: .alreadyDone(why), plan: nil)
            }
        } catch let error as RewindError {
            throw RequestError(error)
        } catch {
            logger.error("\(error)"); throw RequestError(500, RequestError.publicText(error))
        }
    }

    /// `GET /api/v1/apps/{app}`: one app of `rewind status --format json`.
    func app(_ name: String) throws(RequestError) -> JSON { try appStatus(name).json }

    /// One app of the status; 404 for an app the repository does not have.
    func appStatus(_ name: String) throws(RequestError) -> AppStatus {
        guard let found = try status().apps.first(where: { $0.name == name }) else { throw RequestError(404, "unknown app '\(Bounded.text(name))'") }
        return found
    }

    /// `GET /api/v1/status` and `/api/v1/apps`.
    func status() throws(RequestError) -> StatusReport {
        do { return try StatusReport.build(repo: repo, stateDirectory: options.stateDirectory, cache: statusCache) } catch { logger.error("\(error)"); throw RequestError(500, RequestError.publicText(error)) }
    }

    /// Each host of the fleet with what it last published (`rewind status --fleet`).
    func fleet() -> FleetReport { FleetReport.build(repo: repo, now: Clock.wallMilliseconds()) }
}


/// Who writes through the desk: the API token's holder or a signed-in
/// person of the web UI, with their role.
struct Actor: Sendable, Equatable {
    let identity: Identity
    let trigger: RollbackTrailers.TriggerKind
    var name: String { identity.name }

    init(_ identity: Identity, trigger: RollbackTrailers.TriggerKind) {
        self.identity = identity
        self.trigger = trigger
    }

    /// Refuses (403, naming the role needed and the caller's) what the role does not allow.
    func require(_ role: Role, to what: String? = nil) throws(RequestError) {
        guard identity.role < role else { return }
        let doing = what.map { " to \($0)" } ?? ""
        throw RequestError(403, "this needs the \(role.name) role\(doing); \(identity.name) is \(identity.role == .viewer ? "a" : "an") \(identity.role.name)")
    }
}

/// What the API and the web UI ask the desk to write.
enum DeskAction: Sendable {
    case rollback(app: String, to: String?)
    case pin(app: String, to: String?)
    case unpin(app: String)
    case allow(app: String, version: String)

    var operation: Operation {
        switch self {
        case let .rollback(app, to): .rollback(apps: [app], all: false, to: to.map(TargetSpec.init(parsing:)))
        case let .pin(app, to): .pin(app, to: to.map(TargetSpec.init(parsing:)))
        case let .unpin(app): .unpin(app)
        case let .allow(app, version): .allow(app, version: version)
        }
    }

    /// The past tense the API answers with.
    var done: String {
        switch self {
        case .rollback: "rolled-back"
        case .pin: "pinned"
        case .unpin: "unpinned"
        case .allow: "allowed"
        }
    }
}

/// A write's result: planned (a dry run), written, or nothing to do.
struct DeskWrite: Sendable {
    enum Outcome: Sendable {
        case planned
        case written(OID?)
        case alreadyDone(String)
    }
    let action: DeskAction
    let outcome: Outcome
    let plan: PlannedCommit?

    var json: JSON {
        let apps = JSON.array((plan?.changes ?? []).map { .object([("app", .string($0.app)), ("from", .optional($0.fromVersion)), ("to", .optional($0.toVersion))]) })
        switch outcome {
        case .planned:
            guard let plan else { return .object([("outcome", .string("planned")), ("dryRun", .bool(true))]) }
            return .object([("outcome", .string("planned")), ("dryRun", .bool(true)), ("parent", .string(plan.parent.hex)), ("message", .string(plan.message)), ("apps", apps),
                            ("diffs", .array(plan.diffs.map { .object([("app", .string($0.app)), ("diff", .string($0.diff))]) })),
                            ("guardsChecked", .array(plan.guardsChecked.map { .string($0) }))])
        case .written(let commit):
            return .object([("outcome", .string(action.done)), ("commit", .optional(commit?.hex)), ("message", .string(plan?.message ?? "")), ("apps", apps)])
        case .alreadyDone(let why):
            return .object([("outcome", .string("already-\(action.done)")), ("reason", .string(why))])
        }
    }
}

