import ArgumentParser
import Reconciler
import Rollback
import SystemSupport

/// `rewind status`: desired against applied, per app.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show, per app, the desired and applied release, health, pin, last error and what the reconciler waits for.")

    @OptionGroup var repoOptions: RepoOptions

    @Option(help: "The state directory (default: <git dir>/rewind/state).")
    var stateDir: String?

    @Option(help: "Output format: table or json.")
    var format: OutputFormat = .table

    func run() throws {
        try runReporting {
            // The mirror as it is: status reads, it does not fetch or push.
            let repo = try repoOptions.openWithMirror(sync: false).repo
            let report: StatusReport
            do {
                report = try StatusReport.build(repo: repo, stateDirectory: stateDir)
            } catch let error as StateError {
                throw RewindError(.internalFailure, error.message, hint: error.hint)
            }
            Terminal.print(format == .json ? report.json.pretty : text(report))
            // Like `kubectl rollout status`: scripts can tell that someone must act.
            if !report.needsHuman.isEmpty { throw ExitCode(7) }
        }
    }

    private func text(_ r: StatusReport) -> String {
        var lines = ["branch \(r.branch) at \(r.tip.map { String($0.prefix(7)) } ?? "(none)"), last applied \(r.lastApplied.map { String($0.prefix(7)) } ?? "(none)"); "
            + (r.reconcilerPid.map { "reconciler running (pid \($0))" } ?? "no reconciler running")]
        if let halted = r.halted { lines.append("HALTED: \(halted)") }
        if let invalid = r.invalid {
            lines.append("REFUSED \(invalid.commit.prefix(7)): \(invalid.message)")
            lines += invalid.details.map { "  \($0)" }
            lines.append("  repair: fix the files in a new commit, or undo the commit that broke them (`rewind revert HEAD` for the tip)")
        }
        if let error = r.lastError { lines.append("error: \(error)") }
        if let remote = r.remote {
            lines.append("remote \(remote.url): " + (remote.lastError.map { "last sync failed: \($0)" } ?? "in sync")
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
            if let t = a.lastRollback, let committed = t.committedAt {
                var line = "\(a.name): automatic rollback \(t.rollbackCommit.map { String($0.prefix(7)) } ?? "?"): failure to commit \(committed - t.failedAt) ms"
                if let healthy = t.healthyAt { line += ", commit to healthy \(healthy - committed) ms" }
                lines.append(line)
            }
        }
        return lines.joined(separator: "\n")
    }
}
