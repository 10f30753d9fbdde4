import Audit
import DeployModel
import GitKit
import Logging
import Reconciler
import ReconcilerStatus
import Remote
import Rollback
import SystemSupport

/// The desk's reads: releases, the audit, incidents, one release, the app page.
extension RollbackDesk {
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
            return try AuditReport.build(try AuditDigest.load(repo), query).withFreezeOverrides(repo)
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
            return ReleaseView(details: details, diffs: diffs, notes: notes.split(separator: "\n").map(String.init), incident: incident,
                               reach: reach(details, config: config))
        } catch let error as RequestError {
            throw error
        } catch {
            logger.error("\(error)"); throw RequestError(500, RequestError.publicText(error))
        }
    }

    /// With `hosts:`, how far the release's apps have reached across their hosts.
    private func reach(_ details: CommitDetails, config: RepoConfig) -> [ReleaseReach] {
        guard !config.hosts.isEmpty else { return [] }
        let fleet = FleetReport.build(repo: repo, hosts: config.hosts, now: Clock.wallMilliseconds())
        return details.apps.compactMap { change in
            guard let ref = config.app(named: change.app), let tree = try? repo.appTree(ref, in: details.commit.tree) else { return nil }
            return fleet.reach(app: change.app, tree: tree.hex, placed: (ref.placement?.select(config.hosts) ?? []).map(\.name))
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
}

/// A commit as the release page and `GET /api/v1/releases/{commit}` show it.
struct ReleaseView: Sendable {
    let details: CommitDetails
    let diffs: [(app: String, diff: String)]
    let notes: [String]
    let incident: String?
    /// With `hosts:`: how far each app it changes has reached across its hosts.
    var reach: [ReleaseReach] = []

    var json: JSON {
        .object(details.jsonFields + [("message", .string(details.commit.message)),
                                      ("diffs", .array(diffs.map { .object([("app", .string($0.app)), ("diff", .string($0.diff))]) })),
                                      ("notes", .array(notes.map { .string($0) })), ("incident", .optional(incident)),
                                      ("reach", .array(reach.map(\.json)))])
    }
}

