import ArgumentParser
import GitKit
import Rollback
import SystemSupport

/// `rewind releases [APP]`: numbered releases per app.
struct ReleasesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "releases",
        abstract: "List each app's releases: commits on the branch's first-parent chain that changed the app.")

    @Argument(help: "Only this app.", completion: AppNames.completion)
    var app: String?

    @Option(help: "Output format: table or json.")
    var format: OutputFormat = .table

    @Option(help: "Show the newest N releases of each app (0: all).")
    var limit: Int = 20

    @Flag(help: "Ignore and do not update the release index in the git directory.")
    var noCache = false

    // Last: the shared repository options come after the command's own in --help.
    @OptionGroup var options: RepoOptions

    func validate() throws {
        guard limit >= 0 else { throw ValidationError("--limit must be 0 (all) or a positive number") }
    }

    func run() throws {
        try runReporting(format: format) {
            let repo = try options.open()
            let tip = try repo.tip()
            let (config, warning) = try repo.configForListing(at: tip)
            if let warning { Terminal.error(warning) }
            if let app, config.app(named: app) == nil {
                throw RewindError(.notFound, "unknown app '\(app)'", hint: "apps in rewind.yaml: \(config.apps.map(\.name).joined(separator: ", "))")
            }
            let history = try ReleaseHistory.load(repo, config: config, tip: tip, useCache: !noCache, limit: limit == 0 ? nil : limit)
            let names = app.map { [$0] } ?? config.apps.map(\.name)
            let shown = names.map { ($0, history.of($0), history.totals[$0] ?? 0) }
            let notes = NoteCache(repo)
            let outcome = { (release: Release) in ReleaseOutcome.of(release, in: repo, notes: notes) }
            if format == .json {
                Terminal.write(1, ReleaseJSON.render(shown, outcome: outcome))
            } else {
                Terminal.print(table(shown, outcome))
            }
        }
    }

    private func table(_ shown: [(String, [Release], Int)], _ outcome: (Release) -> ReleaseOutcome) -> String {
        var rows: [[String]] = []
        for (_, releases, _) in shown {
            for r in releases {
                var note = r.summary
                if let target = r.target, r.kind != .deploy { note = "(\(r.reverts ? "reverts" : "back to") \(target.short)) " + note }
                if let by = r.rolledBackBy { note = "[rolled back by \(by.short)] " + note }
                let o = outcome(r)
                rows.append([r.app, "#\(r.number)", r.commit.short, Dates.utc(r.time), r.kind.rawValue,
                             "\(r.previousVersion ?? "-") -> \(r.version ?? "-")", o.outcome?.rawValue ?? "-", o.trigger ?? "-",
                             o.reason.map { String($0.prefix(48)) } ?? "-", r.author, String(note.prefix(72))])
            }
        }
        return Table.render(["APP", "RELEASE", "COMMIT", "DATE", "KIND", "VERSION", "OUTCOME", "TRIGGER", "REASON", "AUTHOR", "NOTE"], rows)
    }
}
