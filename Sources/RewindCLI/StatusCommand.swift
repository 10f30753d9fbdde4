import ArgumentParser
import ReconcilerStatus
import Rollback
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// The status report, a state directory problem as a `RewindError` (status, watch, wait).
func statusReport(_ repo: DeployRepository, stateDirectory: String?) throws -> StatusReport {
    do {
        return try StatusReport.build(repo: repo, stateDirectory: stateDirectory)
    } catch let error as StateError {
        throw RewindError(.internalFailure, error.message, hint: error.hint)
    }
}

/// `rewind status`: desired against applied, per app.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show, per app, the desired and applied release, health, pin, last error and what the reconciler waits for.")

    @Argument(help: "One app, for its detail: process, restarts, log file, health history, last error.", completion: AppNames.completion)
    var app: String?

    @Option(help: "The state directory (default: <git dir>/rewind/state).")
    var stateDir: String?

    @Option(help: "Output format: table or json.")
    var format: OutputFormat = .table

    @Flag(help: "Keep watching: redraw on each change on a terminal; otherwise a line per app that changed (with --format json, an object per line).")
    var watch = false

    @Flag(help: "The fleet: each host of rewind.yaml's hosts: with what it last published (its apps' versions and health), and whether it is stale.")
    var fleet = false

    // Last: the shared repository options come after the command's own in --help.
    @OptionGroup var repoOptions: RepoOptions

    func run() throws {
        try runReporting(format: format) {
            // The mirror as it is: status reads, it does not fetch or push.
            let repo = try repoOptions.openWithMirror(sync: false).repo
            if fleet {
                let report = FleetReport.build(repo: repo, now: Clock.wallMilliseconds())
                return Terminal.print(format == .json ? report.json.pretty : Self.fleetTable(report))
            }
            if watch { return try watchChanges(repo) }
            let report = try statusReport(repo, stateDirectory: stateDir)
            if let app {
                guard let status = report.apps.first(where: { $0.name == app }) else {
                    throw RewindError(.notFound, "unknown app '\(Bounded.text(app))'", hint: "apps in rewind.yaml: \(report.apps.map(\.name).joined(separator: ", "))")
                }
                let history = Self.history(repo, app: app)
                Terminal.print(format == .json ? detailJSON(status, history).pretty : detail(status, history))
                if status.needsHuman != nil || report.halted != nil || report.invalid != nil { throw ExitCode(7) }
                return
            }
            Terminal.print(format == .json ? report.json.pretty : text(report))
            // Like `kubectl rollout status`: scripts can tell that someone must act.
            if !report.needsHuman.isEmpty { throw ExitCode(7) }
        }
    }

    private func text(_ r: StatusReport) -> String {
        var lines = ["branch \(r.branch) at \(r.tip.map { String($0.prefix(7)) } ?? "(none)"), last applied \(r.lastApplied.map { String($0.prefix(7)) } ?? "(none)"); "
            + (r.reconcilerPid.map { "reconciler running (pid \($0))" } ?? "no reconciler running") + (r.host.map { ", as host \($0)" } ?? "")]
        if let halted = r.halted { lines.append("HALTED: \(halted)") }
        if let invalid = r.invalid {
            lines.append("REFUSED \(invalid.commit.short): \(invalid.message)")
            lines += invalid.details.map { "  \($0)" }
            lines.append("  repair: fix the files in a new commit, or undo the commit that broke them (`rewind revert HEAD` for the tip)")
        }
        if let error = r.lastError { lines.append("error: \(error)") }
        if let remote = r.remote {
            lines.append("remote \(remote.url): " + (remote.lastError.map { "last sync failed: \($0)" } ?? "in sync")
                + (remote.failingSince.map { " (failing since \(Clock.iso8601UTC(milliseconds: $0)))" } ?? "")
                + (remote.lastSuccessAt.map { " (last success \(Clock.iso8601UTC(milliseconds: $0)))" } ?? ""))
        }
        for entry in r.unpushed {
            lines.append("unpushed \(entry.commit.prefix(7)) for \(shortBranchName(entry.reference))" + (entry.lastError.map { ": \($0)" } ?? ""))
        }
        let rows = r.apps.map { a in
            [a.name, a.desiredVersion ?? "-", a.appliedVersion.map { "\($0) (\(a.appliedCommit.map { String($0.prefix(7)) } ?? "?"))" } ?? "-",
             a.healthIsLive || a.healthObservedAt == nil ? a.health.rawValue
                 : "\(a.health.rawValue) (last seen \(Clock.iso8601UTC(milliseconds: a.healthObservedAt ?? 0)))", a.pin.map { "held at \($0)" } ?? "-", a.waitingFor]
        }
        lines.append("")
        lines.append(Table.render(["APP", "DESIRED", "APPLIED", "HEALTH", "PIN", "WAITING FOR"], rows))
        for a in r.apps {
            if let error = a.lastError { lines.append("\(a.name): \(error)") }
            if let u = a.updates, u.state != .current { lines.append("\(a.name): updates \(u.state.rawValue): \(u.message)") }
            if let t = a.lastRollback, let committed = t.committedAt {
                var line = "\(a.name): automatic rollback \(t.rollbackCommit?.short ?? "?"): failure to commit \(committed - t.failedAt) ms"
                if let healthy = t.healthyAt { line += ", commit to healthy \(healthy - committed) ms" }
                lines.append(line)
            }
        }
        return lines.joined(separator: "\n")
    }

    /// One outcome from the notes of the app's releases.
    struct Event {
        let time: String
        let outcome: String
        let release: String
        let fields: [ReleaseNote.Field]
    }

    /// What the notes of the app's newest releases say happened, oldest first.
    static func history(_ repo: DeployRepository, app: String, releases limit: Int = 10) -> [Event] {
        guard let tip = try? repo.tip(), let config = try? repo.configForListing(at: tip).config,
              let history = try? ReleaseHistory.load(repo, config: config, tip: tip, limit: limit, details: false) else { return [] }
        var events: [Event] = []
        for release in history.of(app) {
            guard let text = (try? repo.git.note(on: release.commit, notesRef: ReleaseNote.notesRef)) ?? nil else { continue }
            for note in ReleaseNote.parseAll(text) where note.app == app {
                events.append(Event(time: note.value("time") ?? "", outcome: note.outcome.rawValue, release: release.commit.short,
                                    fields: note.fields.filter { $0.key != "time" && $0.key != "host" }))
            }
        }
        return events.sorted { $0.time < $1.time }
    }

    /// A line per host and app: version and health as the host last published them.
    static func fleetTable(_ report: FleetReport) -> String {
        var rows: [[String]] = []
        for host in report.hosts {
            let state = host.writtenAt == nil ? "never reported" : host.stale ? "STALE" : "fresh"
            let written = host.writtenAt.map { Clock.iso8601UTC(milliseconds: $0) } ?? "-"
            let synced = host.lastSync.map { Clock.iso8601UTC(milliseconds: $0) } ?? "-"
            if host.apps.isEmpty { rows.append([host.name, state, written, synced, "-", "-", "-", "-"]) }
            for app in host.apps {
                let stage = app.stage.map { ($0.halted ? "HALTED: " : "") + $0.reason } ?? "-"
                rows.append([host.name, state, written, synced, app.app, app.version ?? "-", app.health, stage])
            }
        }
        return Table.render(["HOST", "STATE", "WRITTEN", "LAST SYNC", "APP", "VERSION", "HEALTH", "STAGE"], rows)
    }

    private func detail(_ a: AppStatus, _ history: [Event]) -> String {
        var lines = [
            "app:         \(a.name)",
            "desired:     \(a.desiredVersion ?? "-")\(a.desiredTree.map { " (tree \($0.prefix(7)))" } ?? "")\(a.pin.map { ", held by a pin at \($0)" } ?? "")",
            "applied:     \(a.appliedVersion.map { "\($0) (\(a.appliedCommit.map { String($0.prefix(7)) } ?? "?"))" } ?? "-")",
            "health:      \(a.health.rawValue)" + (a.healthIsLive || a.healthObservedAt == nil ? "" : " (last seen \(Clock.iso8601UTC(milliseconds: a.healthObservedAt ?? 0)))")
                + (a.healthySince.map { ", healthy since \(Clock.iso8601UTC(milliseconds: $0))" } ?? ""),
            "process:     " + (a.pid.map { "pid \($0)" } ?? a.container.map { "container \($0.prefix(12))" } ?? "-") + (a.port.map { ", port \($0)" } ?? "")
                + (a.startedAt.map { ", started \(Clock.iso8601UTC(milliseconds: $0))" } ?? ""),
            "restarts:    \(a.restarts)",
        ] + (a.image.map { ["image:       \($0)"] } ?? []) + [
            "traffic:     " + (a.traffic.map { "listen 127.0.0.1:\($0.listenPort), \($0.strategy); \($0.line(app: a.name))" + ($0.held.map { "; DRAINED: \($0)" } ?? "") } ?? "-"),
            "log:         \(a.logFile ?? "-") (rewind logs \(a.name))",
            "waiting for: \(a.waitingFor.isEmpty ? "nothing" : a.waitingFor)",
        ]
        if let u = a.updates {
            lines.append("updates:     \(u.state.rawValue): \(u.message) (checked \(Clock.iso8601UTC(milliseconds: u.checkedAt)))")
        }
        if let error = a.lastError { lines.append("last error:  \(error)") }
        if let human = a.needsHuman { lines.append("NEEDS A HUMAN: \(human)") }
        lines.append("")
        lines.append(history.isEmpty ? "No outcomes recorded in the notes of its recent releases." : "History (notes of its recent releases):")
        let rows = history.suffix(20).map { e in [e.time, e.release, e.outcome, e.fields.map { "\($0.key)=\($0.value)" }.joined(separator: " ")] }
        if !rows.isEmpty { lines.append(Table.render(["TIME", "RELEASE", "OUTCOME", "DETAIL"], rows)) }
        return lines.joined(separator: "\n")
    }

    private func detailJSON(_ a: AppStatus, _ history: [Event]) -> JSON {
        guard case .object(var fields) = a.json else { return a.json }
        fields.append(("history", .array(history.map { e in
            .object([("time", .string(e.time)), ("release", .string(e.release)), ("outcome", .string(e.outcome)),
                     ("fields", .object(e.fields.map { ($0.key, JSON.string($0.value)) }))])
        })))
        return .object(fields)
    }

    /// `--watch`: reads the status again whenever the reconciler writes it
    /// (and every 100 ms besides) until interrupted.
    private func watchChanges(_ repo: DeployRepository) throws {
        let terminal = isatty(1) == 1 && format == .table
        var shown: [String: String] = [:]
        var drawn = ""
        let stop = SignalStop()
        let written = StateStore(repo, directory: stateDir).watch()
        repeat {
            let report = try statusReport(repo, stateDirectory: stateDir)
            let apps = report.apps.filter { app == nil || $0.name == app }
            if terminal {
                let screen = text(StatusReport(copying: report, apps: apps))
                if screen != drawn {
                    Terminal.write(1, Array(("\u{1B}[H\u{1B}[2J" + screen + "\n").utf8))
                    drawn = screen
                }
                continue
            }
            let now = Clock.iso8601UTC(milliseconds: Clock.wallMilliseconds())
            var lines: [(String, String)] = [("", [report.halted.map { "halted: \($0)" }, report.invalid.map { "refused \($0.commit.short): \($0.message)" }]
                .compactMap { $0 }.joined(separator: "; "))]
            for a in apps {
                let line = format == .json ? a.json.serialised
                    : "\(a.name) desired=\(a.desiredVersion ?? "-") applied=\(a.appliedVersion ?? "-") health=\(a.health.rawValue)"
                        + (a.needsHuman.map { " needs-human=\"\($0)\"" } ?? "") + " waiting-for=\"\(a.waitingFor)\""
                lines.append((a.name, line))
            }
            for (key, line) in lines where shown[key] != line {
                shown[key] = line
                if key.isEmpty && line.isEmpty { continue }
                Terminal.print(format == .json ? line : "\(now) \(line)")
            }
        } while written.wait(milliseconds: 100, stop: stop) != .stopped
    }
}
