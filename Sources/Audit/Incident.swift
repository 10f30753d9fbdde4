import DeployModel
import GitKit
import Rollback
import SystemSupport

/// A postmortem draft for one rollback (seed 003's post-incident process,
/// seed 000's incident report): the timeline from commits and notes, what
/// changed, the trailers, the guards, the durations, and empty sections for
/// what only people know.
public struct IncidentReport: Sendable {
    public struct Event: Sendable {
        public let time: Int64
        public let app: String?
        public let kind: String
        public let text: String
    }

    public let row: RollbackRow
    public let timeline: [Event]
    /// Each app's file diff from the rolled-back release to the rollback's state.
    public let diffs: [(app: String, diff: String)]
    public let trailers: [String]
    public let guards: [String]
    /// Bad release applied → healthy again.
    public let totalMilliseconds: Int64?

    /// The report of `revision`: a rollback commit, or a release a
    /// rollback undid (its first rollback is reported). Reads the audit's
    /// digest (cached in the git directory) and the notes of the commits
    /// the report names, not the whole history.
    public static func build(_ repo: DeployRepository, revision: String, useCache: Bool = true) throws -> IncidentReport {
        let id: OID
        do {
            id = try repo.git.resolveCommit(revision)
        } catch {
            throw RewindError(.notFound, "unknown revision '\(revision)'", hint: "give a rollback commit or the release it rolled back; `rewind audit` lists rollbacks")
        }
        return try build(repo, commit: id, revision: revision, useCache: useCache)
    }

    /// The report of the rollback commit `id`, or of the first rollback of the release `id`.
    public static func build(_ repo: DeployRepository, commit id: OID, revision: String? = nil, useCache: Bool = true) throws -> IncidentReport {
        let digest = try AuditDigest.load(repo, useCache: useCache, rowsOnly: true)
        let row = digest.rows.first { $0.commit == id } ?? digest.rows.first { $0.apps.contains { $0.badRelease == id } }
        if let row {
            let config = try repo.configForListing(at: digest.tip).config
            return make(IncidentSource(repo: repo, config: config), row)
        }
        // A release undone by a rollback of a range of releases (not the one just before it).
        let facts = try AuditFacts.read(repo, useCache: useCache)
        return try build(facts, commit: id, revision: revision)
    }

    /// Builds the report of the rollback `id` and writes it as its note
    /// under refs/notes/rewind-incident (what the reconciler and serve do
    /// after an automatic rollback).
    public static func write(_ repo: DeployRepository, commit id: OID, through recorder: NoteRecorder) throws -> IncidentReport {
        let report = try build(repo, commit: id)
        try recorder.replace(report.markdown, on: id, notesRef: ReleaseNote.incidentNotesRef)
        return report
    }

    public static func build(_ facts: AuditFacts, commit id: OID, revision: String? = nil) throws -> IncidentReport {
        var rollback: OID?
        var members: [(app: String, index: Int)] = []
        for app in facts.config.apps.map(\.name) {
            let list = facts.history.of(app)
            for (i, release) in list.enumerated() where release.commit == id {
                if release.kind == .rollback || release.kind == .pin {
                    rollback = id
                    members.append((app, i))
                } else if rollback == nil, let by = release.rolledBackBy {
                    rollback = by
                }
            }
        }
        if let by = rollback, by != id {
            members = []
            for app in facts.config.apps.map(\.name) {
                if let i = facts.history.of(app).firstIndex(where: { $0.commit == by }) { members.append((app, i)) }
            }
        }
        guard let rollback, let row = Analysis(facts: facts).row(rollback, members) else {
            throw RewindError(.notFound, "\(revision ?? id.short) (\(id.short)) is neither a rollback commit nor a release that a rollback undid",
                              hint: "give a rollback commit or the release it rolled back; `rewind audit --since DATE` lists the rollbacks")
        }
        return make(IncidentSource(repo: facts.repo, config: facts.config), row)
    }

    private static func make(_ facts: IncidentSource, _ row: RollbackRow) -> IncidentReport {
        var events: [Event] = []
        var applied: [Int64] = []
        for app in row.apps {
            guard let bad = app.badRelease, let release = try? facts.repo.git.commit(bad) else { continue }
            events.append(Event(time: release.author.time * 1000, app: app.app, kind: "committed",
                                text: "release `\(bad.short)` of \(app.app) \(app.from ?? "") committed by \(release.author.name): \(release.summary)"))
            let before = Self.beforeRollback(facts.events(app.app, on: bad), app: app.app)
            events += before
            applied += before.filter { $0.kind == "applied" }.map(\.time)
            if applied.isEmpty { applied.append(release.author.time * 1000) }
        }
        let who = row.author + (row.actor.map { " (actor \($0))" } ?? "")
        events.append(Event(time: row.time, app: nil, kind: "rollback",
                            text: "rollback commit `\(row.commit.short)` (\(row.kind), trigger \(row.trigger)\(row.alert.map { " \($0)" } ?? "")) by \(who)" + (row.reason.map { ": \($0)" } ?? "")))
        let after = row.apps.flatMap { Self.afterRollback(facts.events($0.app, on: row.commit), app: $0.app) }
        events += after
        let healthyAgain = after.filter { $0.kind == "recovered" }.map(\.time)
        let ordered = events.enumerated().sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }.map(\.element)
        let commit = try? facts.repo.git.commit(row.commit)
        let message = commit?.message ?? ""
        let trailers = message.split(separator: "\n").filter { $0.hasPrefix("Rewind-") || $0.hasPrefix("This reverts commit ") }.map(String.init)
        let total = applied.min().flatMap { start in healthyAgain.count == row.apps.count ? healthyAgain.max().map { $0 - start } : nil }
        return IncidentReport(row: row, timeline: ordered, diffs: diffs(facts, row, rollbackTree: commit?.tree), trailers: trailers,
                              guards: guardsChecked(facts, row), totalMilliseconds: total)
    }

    /// The failed release's story, from its notes: applied, healthy, the
    /// alert and the failure, automation's decision, an escalation or abort.
    private static func beforeRollback(_ notes: [NoteEvent], app: String) -> [Event] {
        var events: [Event] = []
        for event in notes {
            let note = event.note
            switch event.outcome {
            case .applied:
                events.append(Event(time: event.time, app: app, kind: "applied", text: "\(app) \(note.value("version") ?? "") applied on \(note.value("host") ?? "?")"
                                    + (note.value("duration").map { " in \($0)" } ?? "")))
            case .healthy:
                events.append(Event(time: event.time, app: app, kind: "healthy", text: "\(app) \(note.value("version") ?? "") healthy"))
            case .failed:
                if let starts = note.value("startsAt").flatMap(Dates.parse), starts < event.time {
                    events.append(Event(time: starts, app: app, kind: "alert",
                                        text: "alert \(note.value("alert") ?? "?") started firing" + (note.value("labels").map { " (labels: \($0))" } ?? "")))
                }
                var text = "\(app) failed: \(note.value("reason") ?? "")"
                if let alert = note.value("alert") { text += "; alert \(alert)" + (note.value("labels").map { " (labels: \($0))" } ?? "") + (note.value("startsAt").map { ", startsAt \($0)" } ?? "") }
                events.append(Event(time: event.time, app: app, kind: "failed", text: text))
            case .rolledBack:
                events.append(Event(time: event.time, app: app, kind: "decision",
                                    text: "automation decided to roll \(app) back" + (note.value("to").map { " to \($0)" } ?? "") + (note.value("by").map { " (commit \($0))" } ?? "")))
            case .escalated:
                events.append(Event(time: event.time, app: app, kind: "escalated", text: "\(app) escalated to a human: \(note.value("reason") ?? "")"))
            case .aborted:
                events.append(Event(time: event.time, app: app, kind: "aborted",
                                    text: "\(app) \(note.value("version") ?? "") taken out of traffic (\(note.value("weight").map { "was at \($0)%" } ?? "aborted")): \(note.value("reason") ?? "")"))
            case .held, .verified, .refused, .step, .promoted, .paused, .resumed, .sequence:
                break
            }
        }
        return events
    }

    /// What the rollback commit's notes say happened after it.
    private static func afterRollback(_ notes: [NoteEvent], app: String) -> [Event] {
        notes.compactMap { event in
            switch event.outcome {
            case .healthy: Event(time: event.time, app: app, kind: "recovered", text: "\(app) \(event.note.value("version") ?? "") healthy again")
            case .verified: Event(time: event.time, app: app, kind: "verified", text: "rollback of \(app) verified")
            case .escalated: Event(time: event.time, app: app, kind: "escalated", text: "the rollback did not recover \(app); escalated: \(event.note.value("reason") ?? "")")
            case .failed: Event(time: event.time, app: app, kind: "failed", text: "the rollback of \(app) failed: \(event.note.value("reason") ?? "")")
            default: nil
            }
        }
    }

    /// Each app's diff from the failed release to the rollback.
    private static func diffs(_ facts: IncidentSource, _ row: RollbackRow, rollbackTree: OID?) -> [(String, String)] {
        row.apps.compactMap { app in
            guard let ref = facts.config.app(named: app.app), let bad = app.badRelease,
                  let badTree = try? facts.repo.git.commit(bad).tree, let rollbackTree else { return nil }
            return (app.app, (try? facts.repo.git.unifiedDiff(from: badTree, to: rollbackTree, paths: [ref.path])) ?? "")
        }
    }

    /// The guards as they stand for this commit: the state it wrote is
    /// valid, which irreversible migrations it crossed (and whether that was
    /// forced), and what artifact each app needs.
    static func guardsChecked(_ facts: IncidentSource, _ row: RollbackRow) -> [String] {
        var lines: [String] = []
        if let tree = try? facts.repo.git.commit(row.commit).tree {
            do {
                try DesiredState.check(facts.repo, tree: tree, commit: row.commit, what: "the state of \(row.commit.short)", limits: AppLimits())
                lines.append("the whole state the rollback wrote is valid (rewind.yaml, every app.yaml, the pins)")
            } catch {
                lines.append("the state the rollback wrote is not valid now: \(error)")
            }
            for app in row.apps {
                guard let ref = facts.config.app(named: app.app) else { continue }
                let after = facts.repo.appSpec(appTree: try? facts.repo.appTree(ref, in: tree), app: ref)
                let before = app.badRelease.flatMap { bad in (try? facts.repo.git.commit(bad).tree).flatMap { facts.repo.appSpec(appTree: try? facts.repo.appTree(ref, in: $0), app: ref) } }
                let crossed = (before?.irreversibleMigrations ?? []).subtracting(after?.irreversibleMigrations ?? []).sorted()
                lines.append(crossed.isEmpty ? "\(app.app): no irreversible migration crossed" : "\(app.app): irreversible migrations crossed: \(crossed.joined(separator: ", "))")
                if let artifact = after?.artifact { lines.append("\(app.app): artifact \(artifact) required (its presence was checked before the commit was written)") }
            }
        }
        lines += row.forced.map { "overridden with --force: \($0)" }
        return lines
    }

    /// One line for notifications.
    public var summary: String {
        let apps = row.apps.map { "\($0.app) \($0.from ?? "-") → \($0.to ?? "-")" }.joined(separator: ", ")
        return "\(apps) by \(row.kind) \(row.commit.short) (\(row.trigger)\(row.alert.map { " \($0)" } ?? "")): detect \(humanDuration(row.detectMilliseconds)), "
            + "decide \(humanDuration(row.decisionMilliseconds)), recover \(humanDuration(row.recoveryMilliseconds)); \(row.outcome)"
    }

    public var markdown: String {
        let apps = row.apps.map(\.app).joined(separator: ", ")
        var out = "# Incident: \(apps) rolled back by `\(row.commit.short)`\n\n"
        out += "- **Outcome:** \(row.outcome)\n- **Rollback:** `\(row.commit.hex)` (\(row.kind))\n"
        for app in row.apps {
            out += "- **\(app.app):** \(AuditReport.cell(app.from ?? "-")) → \(AuditReport.cell(app.to ?? "-"))" + (app.badRelease.map { ", rolled-back release `\($0.short)`" } ?? "") + "\n"
        }
        out += "- **Trigger:** \(row.trigger)" + (row.alert.map { " (alert \(AuditReport.cell($0)))" } ?? "") + "\n"
        out += "- **Author:** \(AuditReport.cell(row.author))" + (row.actor.map { "; actor \(AuditReport.cell($0))" } ?? "") + "\n"
        if let reason = row.reason { out += "- **Reason:** \(AuditReport.cell(reason))\n" }
        if !row.forced.isEmpty { out += "- **Guards overridden:** \(AuditReport.cell(row.forced.joined(separator: "; ")))\n" }
        out += "\n## Timeline (UTC)\n\n| time | app | event |\n|---|---|---|\n"
        for event in timeline {
            out += "| \(Clock.iso8601UTC(milliseconds: event.time)) | \(event.app ?? "") | \(AuditReport.cell(event.text)) |\n"
        }
        out += "\n## Durations\n\n| measure | duration |\n|---|---|\n"
        out += "| time to detect (applied → first failure or alert) | \(humanDuration(row.detectMilliseconds)) |\n"
        out += "| time to decision (first failure → rollback commit) | \(humanDuration(row.decisionMilliseconds)) |\n"
        out += "| time to recovery (rollback commit → healthy) | \(humanDuration(row.recoveryMilliseconds)) |\n"
        out += "| total (bad release applied → healthy again) | \(humanDuration(totalMilliseconds)) |\n"
        out += "\n## What changed\n\nThe apps' files from the rolled-back release to the state the rollback restored:\n\n"
        for (app, diff) in diffs {
            let fence = AuditReport.fence(for: diff)
            out += "### \(AuditReport.cell(app))\n\n\(fence)diff\n\(diff.isEmpty ? "(no difference in the app's files)\n" : diff)\(diff.hasSuffix("\n") || diff.isEmpty ? "" : "\n")\(fence)\n\n"
        }
        let trailerText = trailers.joined(separator: "\n")
        let fence = AuditReport.fence(for: trailerText)
        out += "## Trailers\n\n\(fence)\n\(trailerText)\n\(fence)\n\n## Guards checked\n\n"
        out += guards.map { "- \(AuditReport.cell($0))\n" }.joined()
        out += "\n## Root cause\n\n_To be written._\n\n## Impact\n\n_Who and what was affected, for how long._\n\n## Action items\n\n- [ ] _Owner, action, due date._\n"
        return out
    }

    public var json: JSON {
        .object([
            ("rollback", row.json),
            ("timeline", .array(timeline.map { e in
                .object([("time", .string(Clock.iso8601UTC(milliseconds: e.time))), ("app", .optional(e.app)), ("event", .string(e.kind)), ("text", .string(e.text))])
            })),
            ("durations", .object([
                ("timeToDetectMilliseconds", row.detectMilliseconds.map { .number($0) } ?? .null),
                ("timeToDecisionMilliseconds", row.decisionMilliseconds.map { .number($0) } ?? .null),
                ("timeToRecoveryMilliseconds", row.recoveryMilliseconds.map { .number($0) } ?? .null),
                ("totalMilliseconds", totalMilliseconds.map { .number($0) } ?? .null),
            ])),
            ("diffs", .array(diffs.map { .object([("app", .string($0.app)), ("diff", .string($0.diff))]) })),
            ("trailers", .array(trailers.map { .string($0) })),
            ("guardsChecked", .array(guards.map { .string($0) })),
            ("summary", .string(summary)),
        ])
    }
}

/// What an incident report reads: the repository, its apps, and the notes
/// of the few commits the report names (read when asked for).
struct IncidentSource {
    let repo: DeployRepository
    let config: RepoConfig

    /// `app`'s events on `commit`, oldest first (one per outcome, the first line).
    func events(_ app: String, on commit: OID) -> [NoteEvent] {
        guard let text = (try? repo.git.note(on: commit, notesRef: ReleaseNote.notesRef)) ?? nil else { return [] }
        var ignored: [String] = []
        var seen: Set<NoteOutcome> = []
        return AuditFacts.events(inNote: text, on: commit, warnings: &ignored)
            .filter { $0.note.app == app && ($0.outcome.isReleaseOutcome || $0.outcome == .aborted) && seen.insert($0.outcome).inserted }
            .sorted { ($0.time, $0.outcome.order) < ($1.time, $1.outcome.order) }
    }
}
