import DeployModel
import GitKit
import Rollback
import SystemSupport

/// What the audit covers.
public struct AuditQuery: Sendable {
    /// The apps to report on; empty: every app of the tip's rewind.yaml.
    public var apps: [String]
    /// The range, in ms since the epoch: `since` included, `until` not.
    public var since: Int64
    public var until: Int64
    /// A deploy of an app this soon after one of its failed releases is a
    /// fix-forward: unplanned work (the rework rate).
    public var reworkWindow: Int64

    public static let defaultRange: Int64 = 30 * 86_400_000
    public static let defaultReworkWindow: Int64 = 86_400_000

    public init(apps: [String] = [], since: Int64, until: Int64, reworkWindow: Int64 = defaultReworkWindow) {
        self.apps = apps
        self.since = since
        self.until = until
        self.reworkWindow = reworkWindow
    }
}

/// One app of a rollback commit.
public struct RollbackApp: Sendable {
    public let app: String
    public let from: String?
    public let to: String?
    /// The release it rolled back (the one running before), when known.
    public let badRelease: OID?
    /// The commit whose state it restored (for reverts: the reverted commit).
    public let target: OID?
}

/// One row of the rollback history (seed 001's table, extended).
public struct RollbackRow: Sendable {
    public let commit: OID
    /// The rollback commit's time (ms).
    public let time: Int64
    /// `revert`, `rollback`, `pin`, or `git-revert` (git's own revert, no trailers).
    public let kind: String
    /// `manual`, `alert`, `analysis` or `api`.
    public let trigger: String
    public let alert: String?
    public let reason: String?
    public let author: String
    /// Who acted for an automatic or API rollback (`Rewind-Actor`).
    public let actor: String?
    /// Guards overridden with --force (`Rewind-Forced`).
    public let forced: [String]
    public let apps: [RollbackApp]
    /// Applied → first failure or alert.
    public let detectMilliseconds: Int64?
    /// First failure → the rollback commit.
    public let decisionMilliseconds: Int64?
    /// The rollback commit → healthy (every app).
    public let recoveryMilliseconds: Int64?
    /// `verified`, `escalated`, or `unknown` (no note says).
    public let outcome: String
    /// Written through a break-glass account (`Rewind-Break-Glass`).
    public var breakGlass = false

    /// Triggered by automation (an alert, or the reconciler's analysis).
    public var automatic: Bool { trigger == "alert" || trigger == "analysis" }
}

/// An escalation: automation gave the release to a human.
public struct EscalationRow: Sendable {
    public let time: Int64
    public let app: String
    public let release: OID
    public let reason: String
}

/// Durations' summary.
public struct DurationSummary: Sendable, Equatable {
    public let count: Int
    public let median: Int64?
    public let p90: Int64?

    /// Median: the middle value, or the mean of the two middle values
    /// (rounded down); p90: the nearest rank, the ⌈0.9·n⌉-th smallest.
    public init(_ values: [Int64]) {
        let sorted = values.sorted()
        count = sorted.count
        guard !sorted.isEmpty else { median = nil; p90 = nil; return }
        let n = sorted.count
        median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        p90 = sorted[max(0, (9 * n + 9) / 10 - 1)]
    }
}

/// The five DORA metrics over one set of releases.
public struct DoraMetrics: Sendable {
    /// Every release (deploys, rollbacks, pins, unpins).
    public var deploys = 0
    /// Releases of kind deploy (new desired state, not a rollback).
    public var deployReleases = 0
    /// Deploy releases that failed or were later rolled back or reverted.
    public var failedReleases = 0
    public var leadTime = DurationSummary([])
    public var recoveryTime = DurationSummary([])
    /// Failed deploy releases with no healthy release of the app after them.
    public var unrecovered = 0
    /// Rollbacks, reverts, pins and fix-forward deploys.
    public var unplannedDeploys = 0
    /// Days in the range (for the deployment frequency).
    public var days: Double = 0

    public var changeFailRate: Double? { deployReleases == 0 ? nil : Double(failedReleases) / Double(deployReleases) }
    public var reworkRate: Double? { deploys == 0 ? nil : Double(unplannedDeploys) / Double(deploys) }
    /// Over at least one day: a branch minutes old is not extrapolated.
    public var deploysPerDay: Double? { days <= 0 ? nil : Double(deploys) / max(days, 1) }
    public var deploysPerWeek: Double? { days <= 0 ? nil : Double(deploys) / max(days, 1) * 7 }
}

/// The metrics of one week (Monday 00:00 UTC).
public struct WeekMetrics: Sendable {
    public let start: Int64
    public let metrics: DoraMetrics
}

/// Seed 004's rollback metrics.
public struct RollbackMetrics: Sendable {
    public var attempted = 0
    public var verified = 0
    public var escalated = 0
    public var automatic = 0
    public var deployReleases = 0
    public var guardsHit: [String: Int] = ["migration": 0, "artifact": 0]

    public var successRate: Double? { attempted == 0 ? nil : Double(verified) / Double(attempted) }
    public var automationCoverage: Double? { attempted == 0 ? nil : Double(automatic) / Double(attempted) }
    public var rollbacksPerRelease: Double? { deployReleases == 0 ? nil : Double(attempted) / Double(deployReleases) }
    public var dataLossGuardsHit: Int { guardsHit.values.reduce(0, +) }
}

/// The audit of a range of history: the rollback history, the DORA
/// metrics per app and overall (by week and for the whole range), seed
/// 004's rollback metrics, and the escalations.
public struct AuditReport: Sendable {
    public let query: AuditQuery
    public let apps: [String]
    public let branch: String
    public let tip: OID
    public let rollbacks: [RollbackRow]
    public let escalations: [EscalationRow]
    public let overall: DoraMetrics
    public let weeks: [WeekMetrics]
    public let perApp: [(app: String, metrics: DoraMetrics, weeks: [WeekMetrics])]
    public let rollbackMetrics: RollbackMetrics
    public let warnings: [String]
    /// Commits let through a change window by a human (`withFreezeOverrides`).
    public internal(set) var overrides: [OverrideRow] = []

    /// Builds the report; an unknown app in the query is a usage error.
    public static func build(_ facts: AuditFacts, _ query: AuditQuery) throws -> AuditReport {
        try build(AuditDigest.compute(facts), query)
    }

    /// Builds the report of `query` from a digest of the history.
    public static func build(_ digest: AuditDigest, _ query: AuditQuery) throws -> AuditReport {
        let known = digest.apps
        for app in query.apps where !known.contains(app) {
            let near = Spelling.nearest(app, in: known).map { "did you mean '\($0)'? " } ?? ""
            throw RewindError(.usage, "unknown app '\(app)'", hint: "\(near)apps in \(RepoConfig.fileName): \(known.joined(separator: ", "))")
        }
        guard query.since <= query.until else {
            throw RewindError(.usage, "the range starts (\(Clock.iso8601UTC(milliseconds: query.since))) after it ends (\(Clock.iso8601UTC(milliseconds: query.until)))",
                              hint: "give a range that starts before it ends")
        }
        let apps = query.apps.isEmpty ? known : known.filter(query.apps.contains)
        let rows = digest.rows.filter { row in query.contains(row.time) && row.apps.contains { apps.contains($0.app) } }
        // Weeks cover the part of the range the branch has lived through:
        // from its first release to now (not a row for every week since 1970).
        let first = digest.releases.compactMap { $0.first?.time }.min() ?? query.until
        let lived = (from: max(query.since, first), until: max(max(query.since, first), min(query.until, Clock.wallMilliseconds() + 1)))
        let weekStarts = Weeks.starts(from: lived.from, until: lived.until)
        // One pass over each app's releases, tallied for the range and its
        // week; the overall metrics merge the apps' tallies.
        var perApp: [(String, DoraMetrics, [WeekMetrics])] = []
        var overall = Tally()
        var overallWeeks = [Tally](repeating: Tally(), count: weekStarts.count)
        for (app, list) in zip(digest.apps, digest.releases) where apps.contains(app) {
            var range = Tally()
            var weeks = [Tally](repeating: Tally(), count: weekStarts.count)
            var lastFailure: Int64?
            for r in list {
                let fixForward = r.kind == .deploy && lastFailure.map { r.time > $0 && r.time - $0 <= query.reworkWindow } == true
                if r.failed { lastFailure = r.time }
                guard query.contains(r.time) else { continue }
                let unplanned = r.kind == .rollback || r.kind == .pin || fixForward
                range.add(r, unplanned: unplanned)
                if let first = weekStarts.first {
                    let i = Int((Weeks.start(of: r.time) - first) / Weeks.length)
                    if weeks.indices.contains(i) { weeks[i].add(r, unplanned: unplanned) }
                }
            }
            overall.merge(range)
            for i in weeks.indices { overallWeeks[i].merge(weeks[i]) }
            perApp.append((app, range.metrics(from: lived.from, until: lived.until), Weeks.metrics(weeks, weekStarts, query)))
        }
        var rollbackMetrics = RollbackMetrics()
        rollbackMetrics.attempted = rows.count
        rollbackMetrics.verified = rows.filter { $0.outcome == "verified" }.count
        rollbackMetrics.escalated = rows.filter { $0.outcome == "escalated" }.count
        rollbackMetrics.automatic = rows.filter(\.automatic).count
        rollbackMetrics.deployReleases = overall.deployReleases
        for refusal in digest.refusals where apps.contains(refusal.app) && query.contains(refusal.time) {
            rollbackMetrics.guardsHit[refusal.name, default: 0] += 1
        }
        return AuditReport(
            query: query, apps: apps, branch: digest.branch, tip: digest.tip, rollbacks: rows,
            escalations: digest.escalations.filter { apps.contains($0.app) && query.contains($0.time) },
            overall: overall.metrics(from: lived.from, until: lived.until),
            weeks: Weeks.metrics(overallWeeks, weekStarts, query),
            perApp: perApp, rollbackMetrics: rollbackMetrics, warnings: digest.warnings)
    }
}

extension AuditQuery {
    /// A query from a user's words (the CLI's options, the API's query
    /// parameters): dates, RFC 3339 times or ages; `names` are the words'
    /// names for the errors.
    public init(apps: [String], since: String?, until: String?, reworkWindow: String?, naming names: (since: String, until: String, window: String),
                now: Int64 = Clock.wallMilliseconds()) throws {
        let end = try until.map { try Self.parseDate($0, option: names.until, now: now, endOfDay: true) } ?? now
        let start = try since.map { try Self.parseDate($0, option: names.since, now: now) } ?? end - Self.defaultRange
        var window = Self.defaultReworkWindow
        if let reworkWindow {
            guard let parsed = DeployModel.Duration(parsing: reworkWindow) else {
                throw RewindError(.usage, "\(names.window) '\(Bounded.text(reworkWindow, limit: 64))' is not a duration", hint: "give a duration such as 24h, 72h or 90m")
            }
            window = parsed.milliseconds
        }
        self.init(apps: apps, since: start, until: end, reworkWindow: window)
    }

    /// Milliseconds since the epoch for `text`; a bare date is midnight UTC
    /// (with `endOfDay`, the next midnight: `--until 2026-11-30` includes
    /// that day); `30d`, `2w`, `12h` are that long before `now`.
    public static func parseDate(_ text: String, option: String, now: Int64, endOfDay: Bool = false) throws -> Int64 {
        if text == "now" { return now }
        if let ms = Dates.parse(text) { return endOfDay && text.utf8.count == 10 ? ms + 86_400_000 : ms }
        if text.hasSuffix("w"), let weeks = Int64(text.dropLast()), weeks >= 0, weeks < 10_000 { return now - weeks * 7 * 86_400_000 }
        if text.hasSuffix("d"), let days = Int64(text.dropLast()), days >= 0, days < 100_000 { return now - days * 86_400_000 }
        if let age = DeployModel.Duration(parsing: text) { return now - age.milliseconds }
        throw RewindError(.usage, "\(option) '\(Bounded.text(text, limit: 64))' is not a date",
                          hint: "give a date (2026-11-01), an RFC 3339 time (2026-11-01T09:30:00Z, or with an offset such as +01:00), an age (30d, 2w, 12h) or 'now'")
    }

    func contains(_ milliseconds: Int64) -> Bool { milliseconds >= since && milliseconds < until }
}

/// ISO weeks: Monday 00:00 UTC to the next Monday.
enum Weeks {
    static let length: Int64 = 7 * 86_400_000

    /// The Monday 00:00 UTC at or before `milliseconds`.
    static func start(of milliseconds: Int64) -> Int64 {
        let day = milliseconds >= 0 ? milliseconds / 86_400_000 : (milliseconds - 86_399_999) / 86_400_000
        // 1970-01-01 was a Thursday: (day + 3) mod 7 is 0 on Mondays.
        let weekday = ((day + 3) % 7 + 7) % 7
        return (day - weekday) * 86_400_000
    }

    /// The metrics of each week of `starts`, from releases already in the range.
    static func metrics(_ tallies: [Tally], _ starts: [Int64], _ query: AuditQuery) -> [WeekMetrics] {
        zip(starts, tallies).map { week, tally in
            WeekMetrics(start: week, metrics: tally.metrics(from: max(week, query.since), until: min(week + length, query.until)))
        }
    }

    /// The starts of the weeks that overlap [since, until).
    static func starts(from since: Int64, until: Int64) -> [Int64] {
        var result: [Int64] = []
        var week = start(of: since)
        while week < until && result.count < 10_000 {
            result.append(week)
            week += length
        }
        return result
    }
}

/// What the audit knows of one release of one app.
struct ReleaseFacts {
    /// The release's commit time (ms) and kind: small, since an audit
    /// holds one per release of the history.
    let time: Int64
    let kind: ReleaseKind
    /// The first failure or alert (ms).
    let failedAt: Int64?
    /// Its `healthy` note (ms).
    let healthyAt: Int64?
    /// Failed or later rolled back or reverted (deploy releases only).
    let failed: Bool
    /// Failure → the app healthy again on a later release (ms).
    let recovery: Int64?
}

/// Counts and durations of a set of releases, from which the DORA metrics
/// follow; tallies of several apps or weeks merge.
struct Tally {
    var deploys = 0
    var deployReleases = 0
    var failed = 0
    var unrecovered = 0
    var unplanned = 0
    var lead: [Int64] = []
    var recovery: [Int64] = []

    mutating func add(_ r: ReleaseFacts, unplanned isUnplanned: Bool) {
        deploys += 1
        if isUnplanned { unplanned += 1 }
        guard r.kind == .deploy else { return }
        deployReleases += 1
        if let healthy = r.healthyAt { lead.append(max(0, healthy - r.time)) }
        if r.failed {
            failed += 1
            if let value = r.recovery { recovery.append(value) } else { unrecovered += 1 }
        }
    }

    mutating func merge(_ other: Tally) {
        deploys += other.deploys
        deployReleases += other.deployReleases
        failed += other.failed
        unrecovered += other.unrecovered
        unplanned += other.unplanned
        lead += other.lead
        recovery += other.recovery
    }

    /// The metrics, the frequency over [from, until).
    func metrics(from: Int64, until: Int64) -> DoraMetrics {
        var m = DoraMetrics()
        m.days = Double(until - from) / 86_400_000
        m.deploys = deploys
        m.deployReleases = deployReleases
        m.failedReleases = failed
        m.unrecovered = unrecovered
        m.unplannedDeploys = unplanned
        m.leadTime = DurationSummary(lead)
        m.recoveryTime = DurationSummary(recovery)
        return m
    }
}
