import GitKit
import Rollback
import SystemSupport

/// What each metric measures, in the JSON and the README alike.
public enum MetricDefinitions {
    public static let deploymentFrequency =
        "deploys: releases (commits on the branch's first-parent chain that changed an app's desired state: deploys, rollbacks, reverts, pins, unpins) whose author time is in the range, counted per app; perDay = deploys / days of the range the branch has lived (from its first release, up to now; at least one day), perWeek = perDay * 7"
    public static let changeLeadTime =
        "for each deploy release with a healthy note: the time of its first healthy note - the desired-state commit's author time; median and p90"
    public static let changeFailRate =
        "failed deploy releases / deploy releases; a deploy release failed when it has a failed note or a later rollback, revert or pin undid it"
    public static let recoveryTime =
        "for each failed deploy release: the first healthy note of the app on a later release - the first failure (its failed note, or the alert's startsAt when earlier but not before the release was committed; with no failure noted, the time of the rollback commit that undid it); median and p90; failed releases with no healthy release after them count as unrecovered"
    public static let reworkRate =
        "unplanned deploys / deploys; unplanned: rollbacks, reverts and pins, and deploys of an app within the rework window after the commit of one of its failed releases (fix-forward)"
    public static let durations = "durations are milliseconds; median: the middle value (the mean of the two middle values, rounded down); p90: the nearest rank, the ceil(0.9 n)-th smallest"
    public static let successRate = "rollbacks whose every app got a verified note / rollbacks"
    public static let automationCoverage = "rollbacks triggered by an alert or the reconciler's analysis / rollbacks"
    public static let rollbacksPerRelease = "rollbacks / deploy releases"
    public static let guardsHit = "refused notes of the migration and artifact guards recorded in the range (one per tip, app and guard)"
    public static let detect = "applied note of the rolled-back release (its commit time when it has none) -> its first failure or alert"
    public static let decision = "first failure or alert -> the rollback commit (to the millisecond from the rolled-back note automation writes in the same second, else the commit's time)"
    public static let recovery = "the rollback commit (as for timeToDecision) -> its healthy note (the last of its apps)"

    /// The DORA metrics' definitions with their names, as the reports list them.
    public static let named = [
        ("Deployment frequency", deploymentFrequency), ("Change lead time", changeLeadTime), ("Change fail rate", changeFailRate),
        ("Failed deployment recovery time", recoveryTime), ("Deployment rework rate", reworkRate), ("Durations", durations),
    ]
}

/// Formats durations for people: `850ms`, `42s`, `2m 5s`, `3h 12m`, `2d 4h`.
public func humanDuration(_ milliseconds: Int64?) -> String {
    guard let ms = milliseconds else { return "-" }
    if ms < 1000 { return "\(ms)ms" }
    let s = ms / 1000
    if s < 60 { return ms < 10_000 ? "\(s).\(ms % 1000 / 100)s" : "\(s)s" }
    if s < 3600 { return s % 60 == 0 ? "\(s / 60)m" : "\(s / 60)m \(s % 60)s" }
    if s < 86_400 { return s % 3600 / 60 == 0 ? "\(s / 3600)h" : "\(s / 3600)h \(s % 3600 / 60)m" }
    return s % 86_400 / 3600 == 0 ? "\(s / 86_400)d" : "\(s / 86_400)d \(s % 86_400 / 3600)h"
}

func percent(_ rate: Double?) -> String {
    guard let rate else { return "-" }
    let tenths = Int((rate * 1000).rounded())
    return "\(tenths / 10).\(tenths % 10)%"
}

func decimal(_ value: Double?, places: Int = 2) -> String {
    guard let value else { return "-" }
    var scale = 1.0
    for _ in 0..<places { scale *= 10 }
    let n = Int((value * scale).rounded())
    let whole = n / Int(scale), fraction = String(n % Int(scale) + Int(scale)).dropFirst()
    return "\(whole).\(fraction)"
}

/// A rate with four decimals, or null.
func rate(_ value: Double?) -> JSON {
    guard let value else { return .null }
    return .double((value * 10_000).rounded() / 10_000)
}

extension AuditReport {
    /// Every number, with each metric's definition.
    public var json: JSON {
        .object([
            ("branch", .string(branch)),
            ("tip", .string(tip.hex)),
            ("since", .string(Clock.iso8601UTC(milliseconds: query.since))),
            ("until", .string(Clock.iso8601UTC(milliseconds: query.until))),
            ("apps", .array(apps.map { .string($0) })),
            ("reworkWindowMilliseconds", .number(query.reworkWindow)),
            ("definitions", .object([
                ("deploymentFrequency", .string(MetricDefinitions.deploymentFrequency)),
                ("changeLeadTime", .string(MetricDefinitions.changeLeadTime)),
                ("changeFailRate", .string(MetricDefinitions.changeFailRate)),
                ("failedDeploymentRecoveryTime", .string(MetricDefinitions.recoveryTime)),
                ("deploymentReworkRate", .string(MetricDefinitions.reworkRate)),
                ("durations", .string(MetricDefinitions.durations)),
                ("rollbackSuccessRate", .string(MetricDefinitions.successRate)),
                ("automationCoverage", .string(MetricDefinitions.automationCoverage)),
                ("rollbacksPerRelease", .string(MetricDefinitions.rollbacksPerRelease)),
                ("dataLossGuardsHit", .string(MetricDefinitions.guardsHit)),
                ("timeToDetect", .string(MetricDefinitions.detect)),
                ("timeToDecision", .string(MetricDefinitions.decision)),
                ("timeToRecovery", .string(MetricDefinitions.recovery)),
            ])),
            ("rollbacks", .array(rollbacks.map(\.json))),
            ("freezeOverrides", .array(overrides.map(\.json))),
            ("escalations", .array(escalations.map { e in
                .object([("time", .string(Clock.iso8601UTC(milliseconds: e.time))), ("app", .string(e.app)), ("release", .string(e.release.hex)), ("reason", .string(e.reason))])
            })),
            ("dora", .object([
                ("overall", Self.json(overall, weeks: weeks)),
                ("apps", .object(perApp.map { ($0.app, Self.json($0.metrics, weeks: $0.weeks)) })),
            ])),
            ("rollbackMetrics", .object([
                ("attempted", .number(Int64(rollbackMetrics.attempted))),
                ("verified", .number(Int64(rollbackMetrics.verified))),
                ("escalated", .number(Int64(rollbackMetrics.escalated))),
                ("automatic", .number(Int64(rollbackMetrics.automatic))),
                ("deployReleases", .number(Int64(rollbackMetrics.deployReleases))),
                ("successRate", rate(rollbackMetrics.successRate)),
                ("automationCoverage", rate(rollbackMetrics.automationCoverage)),
                ("rollbacksPerRelease", rate(rollbackMetrics.rollbacksPerRelease)),
                ("dataLossGuardsHit", .object([
                    ("total", .number(Int64(rollbackMetrics.dataLossGuardsHit))),
                ] + rollbackMetrics.guardsHit.sorted { $0.key < $1.key }.map { ($0.key, .number(Int64($0.value))) })),
            ])),
            ("warnings", .array(warnings.map { .string($0) })),
        ])
    }

    static func json(_ m: DoraMetrics, weeks: [WeekMetrics]) -> JSON {
        .object(json(m) + [("weeks", .array(weeks.map { w in .object([("start", .string(Clock.iso8601UTC(milliseconds: w.start)))] + json(w.metrics)) }))])
    }

    static func json(_ m: DoraMetrics) -> [(String, JSON)] {
        func summary(_ d: DurationSummary) -> JSON {
            .object([("count", .number(Int64(d.count))), ("medianMilliseconds", d.median.map { .number($0) } ?? .null), ("p90Milliseconds", d.p90.map { .number($0) } ?? .null)])
        }
        return [
            ("deploymentFrequency", .object([("deploys", .number(Int64(m.deploys))), ("perDay", rate(m.deploysPerDay)), ("perWeek", rate(m.deploysPerWeek))])),
            ("changeLeadTime", summary(m.leadTime)),
            ("changeFailRate", .object([("failed", .number(Int64(m.failedReleases))), ("deployReleases", .number(Int64(m.deployReleases))), ("rate", rate(m.changeFailRate))])),
            ("failedDeploymentRecoveryTime", .object(
                [("count", .number(Int64(m.recoveryTime.count))), ("medianMilliseconds", m.recoveryTime.median.map { .number($0) } ?? .null),
                 ("p90Milliseconds", m.recoveryTime.p90.map { .number($0) } ?? .null), ("unrecovered", .number(Int64(m.unrecovered)))])),
            ("deploymentReworkRate", .object([("unplanned", .number(Int64(m.unplannedDeploys))), ("deploys", .number(Int64(m.deploys))), ("rate", rate(m.reworkRate))])),
        ]
    }

    /// For a postmortem or a compliance ticket.
    public var markdown: String {
        var out = "# Rewind audit: \(branch), \(Clock.iso8601UTC(milliseconds: query.since)) to \(Clock.iso8601UTC(milliseconds: query.until))\n\n"
        out += "Apps: \(apps.joined(separator: ", ")). Tip: `\(tip.short)`. Computed from git alone: commits, trailers and notes under `\(ReleaseNote.notesRef)`.\n\n"
        out += "## DORA metrics\n\n" + Self.markdownMetrics([("all apps", overall)] + perApp.map { ($0.app, $0.metrics) })
        out += "\n### By week (all apps)\n\n" + Self.markdownWeeks(weeks)
        out += "\n## Rollback metrics\n\n| metric | value |\n|---|---|\n"
        out += "| rollbacks | \(rollbackMetrics.attempted) |\n"
        out += "| rollback success rate (verified / attempted) | \(percent(rollbackMetrics.successRate)) (\(rollbackMetrics.verified)/\(rollbackMetrics.attempted)) |\n"
        out += "| automation coverage (automatic / all) | \(percent(rollbackMetrics.automationCoverage)) (\(rollbackMetrics.automatic)/\(rollbackMetrics.attempted)) |\n"
        out += "| rollbacks per release | \(decimal(rollbackMetrics.rollbacksPerRelease)) |\n"
        out += "| data-loss guards hit | \(rollbackMetrics.dataLossGuardsHit) (migration \(rollbackMetrics.guardsHit["migration"] ?? 0), artifact \(rollbackMetrics.guardsHit["artifact"] ?? 0)) |\n"
        out += "\n## Rollback history\n\n"
        if rollbacks.isEmpty {
            out += "No rollbacks in this range.\n"
        } else {
            out += "| time | commit | apps | from → to | kind | trigger | reason | author | detect | decide | recover | outcome |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
            for row in rollbacks {
                let trigger = row.triggerText
                let forced = row.forced.isEmpty ? "" : " **forced:** " + row.forced.joined(separator: "; ")
                out += "| \(Clock.iso8601UTC(milliseconds: row.time)) | `\(row.commit.short)` | \(row.apps.map(\.app).joined(separator: ", ")) | "
                    + Self.cell(row.apps.map { "\($0.from ?? "-") → \($0.to ?? "-")" }.joined(separator: ", "))
                    + " | \(row.kind) | \(Self.cell(trigger)) | \(Self.cell((row.reason ?? "") + forced)) | \(Self.cell(row.author)) | "
                    + "\(humanDuration(row.detectMilliseconds)) | \(humanDuration(row.decisionMilliseconds)) | \(humanDuration(row.recoveryMilliseconds)) | \(row.outcome) |\n"
            }
        }
        if !overrides.isEmpty {
            out += "\n## Freeze overrides\n\n| time | commit | apps | summary | author |\n|---|---|---|---|---|\n"
            for o in overrides {
                out += "| \(Clock.iso8601UTC(milliseconds: o.time)) | `\(o.commit.short)` | \(Self.cell(o.apps.joined(separator: ", "))) | \(Self.cell(o.summary)) | \(Self.cell(o.author)) |\n"
            }
        }
        if !escalations.isEmpty {
            out += "\n## Escalations\n\n| time | app | release | reason |\n|---|---|---|---|\n"
            for e in escalations { out += "| \(Clock.iso8601UTC(milliseconds: e.time)) | \(Self.cell(e.app)) | `\(e.release.short)` | \(Self.cell(e.reason)) |\n" }
        }
        out += "\n## Definitions\n\n"
        for (name, text) in MetricDefinitions.named {
            out += "- **\(name)**: \(text)\n"
        }
        if !warnings.isEmpty { out += "\n## Warnings\n\n" + warnings.map { "- \(Self.cell($0))\n" }.joined() }
        return out
    }

    static func markdownMetrics(_ rows: [(String, DoraMetrics)]) -> String {
        var out = "| | deploys | per week | lead time (median / p90) | change fail rate | recovery time (median / p90) | rework rate |\n|---|---|---|---|---|---|---|\n"
        for (name, m) in rows {
            out += "| \(name) | \(m.deploys) | \(decimal(m.deploysPerWeek, places: 1)) | \(humanDuration(m.leadTime.median)) / \(humanDuration(m.leadTime.p90)) | "
                + "\(percent(m.changeFailRate)) (\(m.failedReleases)/\(m.deployReleases)) | \(humanDuration(m.recoveryTime.median)) / \(humanDuration(m.recoveryTime.p90))"
                + (m.unrecovered > 0 ? " (\(m.unrecovered) unrecovered)" : "") + " | \(percent(m.reworkRate)) |\n"
        }
        return out
    }

    static func markdownWeeks(_ weeks: [WeekMetrics]) -> String {
        var out = "| week of | deploys | failed | change fail rate | recovery (median) | rework rate |\n|---|---|---|---|---|---|\n"
        for w in weeks {
            let m = w.metrics
            out += "| \(Clock.iso8601UTC(milliseconds: w.start).prefix(10)) | \(m.deploys) | \(m.failedReleases) | \(percent(m.changeFailRate)) | \(humanDuration(m.recoveryTime.median)) | \(percent(m.reworkRate)) |\n"
        }
        return out
    }

    /// Markdown text from outside (reasons, authors, labels): one line,
    /// pipes escaped, and no raw HTML for a renderer to pass through.
    static func cell(_ text: String) -> String {
        text.oneLine.replacing("|", with: "\\|")
            .replacing("&", with: "&amp;").replacing("<", with: "&lt;").replacing(">", with: "&gt;")
    }

    /// A code fence longer than any run of backticks in `text`, so that
    /// the text cannot close it.
    static func fence(for text: String) -> String {
        var longest = 0, run = 0
        for ch in text.utf8 {
            run = ch == 96 ? run + 1 : 0
            longest = max(longest, run)
        }
        return String(repeating: "`", count: max(3, longest + 1))
    }

    /// The terminal's view: the rollback table, then the metrics.
    public var table: String {
        var lines: [String] = []
        lines.append("Rollbacks \(Clock.iso8601UTC(milliseconds: query.since)) to \(Clock.iso8601UTC(milliseconds: query.until)) on \(branch):")
        if rollbacks.isEmpty {
            lines.append("  none")
        } else {
            var rows = [["TIME", "COMMIT", "APPS", "FROM → TO", "KIND", "TRIGGER", "DETECT", "DECIDE", "RECOVER", "OUTCOME", "REASON"]]
            for row in rollbacks {
                rows.append([Clock.iso8601UTC(milliseconds: row.time), row.commit.short, row.apps.map(\.app).joined(separator: ","),
                             row.apps.map { "\($0.from ?? "-") → \($0.to ?? "-")" }.joined(separator: ","), row.kind,
                             row.trigger + (row.alert.map { ":\($0)" } ?? ""), humanDuration(row.detectMilliseconds), humanDuration(row.decisionMilliseconds),
                             humanDuration(row.recoveryMilliseconds), row.outcome,
                             (row.breakGlass ? "[break-glass] " : "") + (row.forced.isEmpty ? "" : "[forced] ") + String((row.reason ?? "").prefix(60))])
            }
            lines += Self.columns(rows).map { "  " + $0 }
        }
        lines.append("")
        var metrics = [["APP", "DEPLOYS", "PER WEEK", "LEAD TIME", "CHANGE FAIL", "RECOVERY", "REWORK"]]
        for (name, m) in [("all", overall)] + perApp.map({ ($0.app, $0.metrics) }) {
            metrics.append([name, "\(m.deploys)", decimal(m.deploysPerWeek, places: 1), humanDuration(m.leadTime.median), "\(percent(m.changeFailRate)) (\(m.failedReleases)/\(m.deployReleases))",
                            humanDuration(m.recoveryTime.median), percent(m.reworkRate)])
        }
        lines.append("DORA metrics (medians; `--format json` has p90s, weeks and definitions):")
        lines += Self.columns(metrics).map { "  " + $0 }
        lines.append("")
        let r = rollbackMetrics
        lines.append("Rollback success rate \(percent(r.successRate)) (\(r.verified)/\(r.attempted) verified), automation coverage \(percent(r.automationCoverage)), "
                     + "\(decimal(r.rollbacksPerRelease)) rollbacks per release, \(r.dataLossGuardsHit) data-loss guard refusals, \(escalations.count) escalations")
        if !overrides.isEmpty {
            lines.append("")
            lines.append("Freeze overrides (Rewind-Override: freeze):")
            lines += Self.columns([["TIME", "COMMIT", "APPS", "SUMMARY", "AUTHOR"]] + overrides.map {
                [Clock.iso8601UTC(milliseconds: $0.time), $0.commit.short, $0.apps.joined(separator: ","), String($0.summary.prefix(60)), $0.author]
            }).map { "  " + $0 }
        }
        lines += warnings.map { "warning: \($0)" }
        return lines.joined(separator: "\n")
    }

    static func columns(_ rows: [[String]]) -> [String] {
        guard let width = rows.first?.count else { return [] }
        let widths = (0..<width).map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { c, cell in c == width - 1 ? cell : cell + String(repeating: " ", count: widths[c] - cell.count) }.joined(separator: "  ")
        }
    }
}

extension RollbackRow {
    /// The trigger as the reports print it: the alert's name, and who
    /// acted for automation and the API.
    public var triggerText: String {
        trigger + (alert.map { " (\($0))" } ?? "") + (automatic || trigger == "api" || trigger == "ui" ? actor.map { " by \($0)" } ?? "" : "")
            + (breakGlass ? " (BREAK-GLASS)" : "")
    }

    public var json: JSON {
        .object([
            ("time", .string(Clock.iso8601UTC(milliseconds: time))),
            ("commit", .string(commit.hex)),
            ("apps", .array(apps.map { a in
                .object([("app", .string(a.app)), ("from", .optional(a.from)), ("to", .optional(a.to)), ("rolledBackRelease", .optional(a.badRelease?.hex)), ("target", .optional(a.target?.hex))])
            })),
            ("kind", .string(kind)),
            ("trigger", .string(trigger)),
            ("alert", .optional(alert)),
            ("reason", .optional(reason)),
            ("author", .string(author)),
            ("actor", .optional(actor)),
            ("forced", .array(forced.map { .string($0) })),
            ("breakGlass", .bool(breakGlass)),
            ("timeToDetectMilliseconds", detectMilliseconds.map { .number($0) } ?? .null),
            ("timeToDecisionMilliseconds", decisionMilliseconds.map { .number($0) } ?? .null),
            ("timeToRecoveryMilliseconds", recoveryMilliseconds.map { .number($0) } ?? .null),
            ("outcome", .string(outcome)),
        ])
    }
}
