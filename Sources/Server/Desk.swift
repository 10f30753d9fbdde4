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

    private let repo: DeployRepository
    private let store: StateStore
    private let options: ServeOptions
    private let metrics: Metrics
    private let logger: Logger
    private let notifier: Notifier?
    private var seen: SeenAlerts
    /// The tip's parsed desired state and the decoded app state files, for
    /// the status of every page and request.
    private let statusCache = StatusCache()

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

    /// Decides every alert of a webhook body.
    func handle(_ payload: AlertmanagerPayload, receivedAt: Int64) -> [AlertDecision] {
        payload.alerts.map { decide($0, groupKey: payload.groupKey, receivedAt: receivedAt) }
    }

    private func decide(_ alert: AlertmanagerPayload.Alert, groupKey: String, receivedAt: Int64) -> AlertDecision {
        // Labels come from outside: bounded before they reach a trailer, a note, a log line or the response.
        let name = Bounded.text(alert.labels["alertname"] ?? "unnamed")
        metrics.count("rewind_alerts_received_total", [("status", ["firing", "resolved"].contains(alert.status) ? alert.status : "other")])
        var decision = AlertDecision(alertname: name, app: alert.labels[options.appLabel].map { Bounded.text($0) },
                                     fingerprint: alert.fingerprint.map { Bounded.text($0) }, outcome: .ignored, reason: "")
        guard alert.status == "firing" else {
            decision.reason = "resolved alerts do nothing"
            return decision
        }
        guard let app = decision.app else {
            decision.reason = "no '\(options.appLabel)' label: Rewind cannot tell which app the alert is about"
            return decision
        }
        if !options.severities.isEmpty, !options.severities.contains(alert.labels["severity"] ?? "") {
            decision.reason = "severity '\(Bounded.text(alert.labels["severity"] ?? ""))' is not one of \(options.severities.sorted().joined(separator: ", "))"
            return decision
        }
        let key = "\(groupKey)|\(alert.fingerprint ?? alert.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))|\(alert.startsAt)"
        guard !seen.contains(key) else {
            metrics.count("rewind_alerts_deduplicated_total")
            decision.outcome = .duplicate
            decision.reason = "already handled (same groupKey, fingerprint and startsAt)"
            return decision
        }
        let decided = rollBack(app, alert: alert, decision: decision, receivedAt: receivedAt)
        // A failure (git, the file system) is not remembered: Alertmanager's next send retries it.
        if decided.outcome != .failed { seen.insert(key, now: receivedAt) }
        return decided
    }

    /// The policy, then the rollback commit: `AutomaticRollback`.
    private func rollBack(_ app: String, alert: AlertmanagerPayload.Alert, decision: AlertDecision, receivedAt: Int64) -> AlertDecision {
        var decision = decision
        let failed: FailedRelease
        let policy: RollbackPolicy
        do {
            let tip = try repo.tip()
            let config = try repo.config(tree: try repo.git.commit(tip).tree)
            guard let ref = config.app(named: app), let tree = try repo.appTree(ref, in: try repo.git.commit(tip).tree) else {
                decision.reason = "unknown app '\(app)'; apps in rewind.yaml: \(config.apps.map(\.name).joined(separator: ", "))"
                return decision
            }
            let release = RollbackHistory.releaseCommit(repo, ref, tree: tree, tip: tip)
            let summary = alert.annotations?["summary"].map { ": \($0)" } ?? ""
            failed = FailedRelease(app: app, release: release, reason: "alert \(decision.alertname) firing", summary: "alert \(decision.alertname) firing on \(app) release \(release.short)\(summary)",
                                   lastGood: store.loadApp(app)?.lastGood.flatMap { $0.tree == tree.hex ? nil : $0 }, failedTree: tree.hex)
            policy = config.policy
        } catch {
            decision.outcome = .failed
            logger.error("alert \(decision.alertname): \(error)")
            decision.reason = RequestError.publicText(error)
            return decision
        }
        var service = AutomaticRollback(repoPath: options.repoPath, branch: repo.branchRef, trigger: .alert)
        service.requireKnownGood = false
        service.alert = decision.alertname
        service.fingerprint = decision.fingerprint
        service.artifactRoot = options.artifactRoot
        let written = DeskNotes(repoPath: options.repoPath, branch: repo.branchRef, logger: logger)
        // The alert is the release's failure: noted with its labels and
        // startsAt (the audit's time to detect, the incident's timeline).
        let labels = alert.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        written.note([NoteRecorder.Entry(outcome: .failed, app: app, fields: [
            ("reason", failed.reason), ("alert", decision.alertname), ("startsAt", Bounded.text(alert.startsAt)), ("labels", Bounded.text(labels, limit: Bounded.maxReasonLength)),
        ])], on: failed.release)
        let report = service.run([failed], policy: policy, history: repo, now: Clock.wallMilliseconds())
        let effects = RollbackEffects(trigger: .alert, observer: metrics, notifier: notifier, logger: logger,
                                      note: { written.note($0, on: $1) }, incident: { written.incident($0) },
                                      commit: { [repo] id in try? repo.git.commit(id) },
                                      escalate: { [store] failure, why in store.recordEscalation(app: failure.app, release: failure.release.hex, reason: why) })
        effects.record(report, detectedAt: { _ in receivedAt }, now: Clock.wallMilliseconds())
        switch report.verdicts.first?.verdict ?? .failed("no decision") {
        case .committed(let commit):
            decision.outcome = .rolledBack
            decision.commit = commit.hex
            decision.reason = "rolled back by commit \(commit.short)"
            options.syncLoop?.trigger()
        case .alreadyDone(let why):
            decision.outcome = .alreadyRolledBack
            decision.reason = why
        case .escalated(let why):
            decision.outcome = .escalated
            decision.reason = why
        case .refused(let why):
            decision.outcome = .refused
            decision.reason = why
        case .failed:
            decision.outcome = .failed
            decision.reason = "internal error"
        }
        return decision
    }

    /// One write of the API (`POST /api/v1/apps/{app}/rollback`, `/pin`,
    /// `/unpin`) or the web UI through the CLI's `CommitWriter`, with the
    /// actor's trigger (`api`, `ui`) and name as `Rewind-Actor`. With
    /// `dryRun`, the plan (message, diffs, guards) and nothing written.
    func write(_ action: DeskAction, reason: String?, dryRun: Bool, force: Bool = false, as actor: Actor) throws(RequestError) -> DeskWrite {
        var request = RollbackRequest(action.operation, reason: reason)
        request.trigger = actor.trigger
        request.artifactRoot = options.artifactRoot
        request.actor = actor.name
        request.force = force
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

    /// `GET /api/v1/apps/{app}/releases`.
    func releases(app: String?, limit: Int) throws(RequestError) -> [UInt8] {
        do {
            let tip = try repo.tip()
            let config = try repo.configForListing(at: tip).config
            if let app, config.app(named: app) == nil { throw RequestError(404, "unknown app '\(Bounded.text(app))'") }
            let history = try ReleaseHistory.load(repo, config: config, tip: tip, limit: limit == 0 ? nil : limit)
            let names = app.map { [$0] } ?? config.apps.map(\.name)
            let notes = NoteCache(repo)
            return ReleaseJSON.render(names.map { ($0, history.of($0), history.totals[$0] ?? 0) }, outcome: { [repo] in ReleaseOutcome.of($0, in: repo, notes: notes) })
        } catch let error as RequestError {
            throw error
        } catch {
            logger.error("\(error)"); throw RequestError(500, RequestError.publicText(error))
        }
    }

    /// `GET /api/v1/audit` (`rewind audit --format json`) and the audit page.
    func audit(apps: [String] = [], since: String?, until: String?, reworkWindow: String? = nil) throws(RequestError) -> AuditReport {
        do {
            // An empty field is not given (a form's empty input, `?since=`).
            func given(_ value: String?) -> String? { value?.isEmpty == false ? value : nil }
            let query = try AuditQuery(apps: apps.filter { !$0.isEmpty }.map { Bounded.text($0, limit: 128) }, since: given(since), until: given(until),
                                       reworkWindow: given(reworkWindow), naming: ("since", "until", "reworkWindow"))
            return try AuditReport.build(try AuditDigest.load(repo), query)
        } catch let error as RewindError where error.code == .usage {
            throw RequestError(error)
        } catch {
            logger.error("\(error)"); throw RequestError(500, RequestError.publicText(error))
        }
    }

    /// `GET /api/v1/incidents/{commit}`: `rewind incident COMMIT --format json`.
    func incident(_ commit: String) throws(RequestError) -> JSON {
        try requireCommitID(commit)
        do {
            return try IncidentReport.build(repo, revision: commit).json
        } catch let error as RewindError where error.code == .notFound {
            throw RequestError(error)
        } catch {
            logger.error("\(error)"); throw RequestError(500, RequestError.publicText(error))
        }
    }

    /// `GET /api/v1/releases/{commit}` and the release page: `rewind show`,
    /// with the commit's message, each changed app's unified diff, its
    /// notes and its incident report (when one was written).
    func release(_ commit: String) throws(RequestError) -> ReleaseView {
        try requireCommitID(commit)
        do {
            guard let id = try? repo.git.resolveCommit(commit) else { throw RequestError(404, "no commit \(commit) in the repository") }
            let details = try CommitDetails.load(repo, commit: id)
            let config = try repo.configForListing(at: try repo.tip()).config
            let parentTree = try details.commit.parents.first.map { try repo.git.commit($0).tree }
            let diffs: [(app: String, diff: String)] = try details.apps.compactMap { change in
                guard let ref = config.app(named: change.app) else { return nil }
                return (change.app, try repo.git.unifiedDiff(from: parentTree, to: details.commit.tree, paths: [ref.path]))
            }
            let notes = ((try? repo.git.note(on: id, notesRef: ReleaseNote.notesRef)) ?? nil) ?? ""
            let incident = (try? repo.git.note(on: id, notesRef: ReleaseNote.incidentNotesRef)) ?? nil
            return ReleaseView(details: details, diffs: diffs, notes: notes.split(separator: "\n").map(String.init), incident: incident)
        } catch let error as RequestError {
            throw error
        } catch {
            logger.error("\(error)"); throw RequestError(500, RequestError.publicText(error))
        }
    }

    /// The app page: the app's status and one page of its releases, newest first.
    func appPage(_ name: String, page: Int, perPage: Int = 50) throws(RequestError) -> WebPage.AppPage {
        let status = try appStatus(name)
        do {
            let tip = try repo.tip()
            let config = try repo.configForListing(at: tip).config
            // Author, summary and versions are read for the page's releases
            // only: a deep page of a long history stays as cheap as the first.
            let total = try ReleaseHistory.load(repo, config: config, tip: tip, limit: 1, details: false).totals[name] ?? 0
            let newest = total - (page - 1) * perPage
            let shown = max(1, newest - perPage + 1)...max(1, newest)
            let history = try ReleaseHistory.load(repo, config: config, tip: tip, limit: page * perPage, detailsWhere: { $0.app == name && shown.contains($0.number) })
            let newestFirst = Array(history.of(name).reversed().dropFirst((page - 1) * perPage).prefix(perPage))
            let notes = NoteCache(repo)
            return WebPage.AppPage(status: status, releases: newestFirst.map { ($0, ReleaseOutcome.of($0, in: repo, notes: notes)) },
                                   total: total, page: page, perPage: perPage)
        } catch {
            logger.error("\(error)"); throw RequestError(500, RequestError.publicText(error))
        }
    }

    /// `GET /api/v1/apps/{app}`: one app of `rewind status --format json`.
    func app(_ name: String) throws(RequestError) -> JSON { try appStatus(name).json }

    /// One app of the status; 404 for an app the repository does not have.
    private func appStatus(_ name: String) throws(RequestError) -> AppStatus {
        guard let found = try status().apps.first(where: { $0.name == name }) else { throw RequestError(404, "unknown app '\(Bounded.text(name))'") }
        return found
    }

    /// `GET /api/v1/status` and `/api/v1/apps`.
    func status() throws(RequestError) -> StatusReport {
        do { return try StatusReport.build(repo: repo, stateDirectory: options.stateDirectory, cache: statusCache) } catch { logger.error("\(error)"); throw RequestError(500, RequestError.publicText(error)) }
    }
}

/// A commit as the release page and `GET /api/v1/releases/{commit}` show it.
struct ReleaseView: Sendable {
    let details: CommitDetails
    let diffs: [(app: String, diff: String)]
    let notes: [String]
    let incident: String?

    var json: JSON {
        .object(details.jsonFields + [("message", .string(details.commit.message)),
                                      ("diffs", .array(diffs.map { .object([("app", .string($0.app)), ("diff", .string($0.diff))]) })),
                                      ("notes", .array(notes.map { .string($0) })), ("incident", .optional(incident))])
    }
}

/// Who writes through the desk: the API token's holder or a signed-in
/// person of the web UI.
struct Actor: Sendable, Equatable {
    let name: String
    let trigger: RollbackTrailers.TriggerKind
}

/// What the API and the web UI ask the desk to write.
enum DeskAction: Sendable {
    case rollback(app: String, to: String?)
    case pin(app: String, to: String?)
    case unpin(app: String)

    var operation: Operation {
        switch self {
        case let .rollback(app, to): .rollback(apps: [app], all: false, to: to.map(TargetSpec.init(parsing:)))
        case let .pin(app, to): .pin(app, to: to.map(TargetSpec.init(parsing:)))
        case let .unpin(app): .unpin(app)
        }
    }

    /// The past tense the API answers with.
    var done: String {
        switch self {
        case .rollback: "rolled-back"
        case .pin: "pinned"
        case .unpin: "unpinned"
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

/// The desk's notes and incident reports, each written at once through a
/// handle of its own (the desk's keeps new objects in memory, see
/// CommitWriter).
struct DeskNotes {
    let repoPath: String
    let branch: String?
    let logger: Logger

    /// Adds outcome lines to the notes (a handle of its own: the desk's
    /// keeps new objects in memory, see CommitWriter).
    func note(_ entries: [NoteRecorder.Entry], on commit: OID) {
        do {
            let recorder = NoteRecorder(git: try Repository.open(repoPath), host: Clock.hostName())
            try recorder.write(recorder.render(entries, on: commit))
        } catch {
            logger.error("cannot record \(entries.map(\.outcome.rawValue).joined(separator: ", ")) as a note on \(commit.short): \(error)")
        }
    }

    /// When the escalated release is itself an automatic rollback (it did
    /// not recover), its incident report goes under refs/notes/rewind-incident;
    /// returns the report's summary.
    func incident(_ release: OID) -> String? {
        do {
            let repo = try DeployRepository(path: repoPath, branch: branch)
            guard RollbackTrailers.parse(try repo.git.commit(release).message)?.trigger.isAutomatic == true else { return nil }
            return try IncidentReport.write(repo, commit: release, through: NoteRecorder(git: repo.git, host: Clock.hostName())).summary
        } catch {
            logger.error("cannot write the incident report of \(release.short): \(error)")
            return nil
        }
    }
}
