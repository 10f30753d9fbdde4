import ArgumentParser
import Rollback

/// `rewind releases [APP]`: numbered releases per app.
struct ReleasesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "releases",
        abstract: "List each app's releases: commits on the branch's first-parent chain that changed the app.")

    @OptionGroup var options: RepoOptions

    @Argument(help: "Only this app.")
    var app: String?

    @Option(help: "Output format: table or json.")
    var format: OutputFormat = .table

    @Option(help: "Show at most the newest N releases per app (0: all).")
    var limit: Int = 256

    @Flag(help: "Ignore and do not update the release index in the git directory.")
    var noCache = false

    func validate() throws {
        guard limit >= 0 else { throw ValidationError("--limit must be 0 (all) or a positive number") }
    }

    func run() throws {
        try runReporting {
            let repo = try options.open()
            let tip = try repo.tip()
            let config = try repo.config(tree: try repo.git.commit(tip).tree)
            if let app, config.app(named: app) == nil {
                throw RewindError(.notFound, "unknown app '\(app)'", hint: "apps in rewind.yaml: \(config.apps.map(\.name).joined(separator: ", "))")
            }
            let history = try ReleaseHistory.load(repo, config: config, tip: tip, useCache: !noCache, versionLimit: limit == 0 ? nil : limit)
            let names = app.map { [$0] } ?? config.apps.map(\.name)
            let shown = names.map { name -> (String, [Release], Int) in
                let all = history.of(name)
                return (name, limit == 0 ? all : Array(all.suffix(limit)), all.count)
            }
            if format == .json {
                Terminal.print(JSON.array(shown.map { name, releases, total in
                    .object([("app", .string(name)), ("total", .number(Int64(total))), ("releases", .array(releases.map(Self.json)))])
                }).serialised)
            } else {
                Terminal.print(table(shown))
            }
        }
    }

    private func table(_ shown: [(String, [Release], Int)]) -> String {
        var rows: [[String]] = []
        for (_, releases, _) in shown {
            for r in releases {
                var note = r.summary
                if let target = r.target, r.kind != .deploy { note = "(\(r.reverts ? "reverts" : "back to") \(target.short)) " + note }
                if let by = r.rolledBackBy { note = "[rolled back by \(by.short)] " + note }
                rows.append([r.app, "#\(r.number)", r.commit.short, Dates.iso8601(r.time, offsetMinutes: r.offsetMinutes), r.kind.rawValue,
                             "\(r.previousVersion ?? "-") -> \(r.version ?? "-")", r.author, String(note.prefix(72))])
            }
        }
        return Table.render(["APP", "RELEASE", "COMMIT", "DATE", "KIND", "VERSION", "AUTHOR", "NOTE"], rows)
    }

    static func json(_ r: Release) -> JSON {
        .object([
            ("number", .number(Int64(r.number))), ("commit", .string(r.commit.hex)), ("kind", .string(r.kind.rawValue)),
            ("versionBefore", .optional(r.previousVersion)), ("version", .optional(r.version)),
            ("tree", .optional(r.tree?.hex)), ("previousTree", .optional(r.previousTree?.hex)),
            ("author", .string(r.author)), ("email", .string(r.email)),
            ("date", .string(Dates.iso8601(r.time, offsetMinutes: r.offsetMinutes))),
            ("target", .optional(r.target?.hex)), ("reverts", .bool(r.reverts)), ("rolledBackBy", .optional(r.rolledBackBy?.hex)), ("summary", .string(r.summary)),
        ])
    }
}
