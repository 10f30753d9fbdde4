import ArgumentParser
import GitKit
import Rollback
import SystemSupport

/// `rewind show REV`: which apps a commit changed and how.
struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show which apps a commit changed (against its first parent) and how.")

    @Argument(help: "The commit to show, or APP#N: the app's release number N (see `rewind releases APP`).")
    var revision: String

    @Option(help: "Output format: table or json.")
    var format: OutputFormat = .table

    // Last: the shared repository options come after the command's own in --help.
    @OptionGroup var options: RepoOptions

    func run() throws {
        try runReporting(format: format) {
            let repo = try options.open()
            let id = try Self.resolve(revision, in: repo)
            let details = try CommitDetails.load(repo, commit: id)
            if let warning = details.warning { Terminal.error(warning) }
            if format == .json {
                Terminal.print(details.json.pretty)
            } else {
                Terminal.print(text(details))
            }
        }
    }

    private func text(_ d: CommitDetails) -> String {
        var lines = ["commit \(d.commit.id.hex)", "Author: \(d.commit.author.name) <\(d.commit.author.email)>",
                     "Date:   \(Dates.utc(d.commit.author.time))",
                     "Kind:   \(d.kind.rawValue)\(d.target.map { " of \($0.hex)" } ?? "")", "", "    \(d.commit.summary)", ""]
        if d.apps.isEmpty { lines.append("No app changed.") }
        for change in d.apps {
            lines.append("\(change.app): \(change.fromVersion ?? "-") -> \(change.toVersion ?? "-") (tree \(change.fromTree?.short ?? "none") -> \(change.toTree?.short ?? "none"))")
            lines += change.files.map { "    \($0)" }
        }
        if let trailers = d.trailers { lines += ["", trailers.rendered] }
        return lines.joined(separator: "\n")
    }

    /// A revision, or `APP#N` for an app's release N.
    static func resolve(_ revision: String, in repo: DeployRepository) throws -> OID {
        guard let hash = revision.lastIndex(of: "#"), let number = Int(revision[revision.index(after: hash)...]) else { return try repo.resolve(revision) }
        let app = String(revision[..<hash])
        let tip = try repo.tip()
        let config = try repo.configForListing(at: tip).config
        guard config.app(named: app) != nil else { return try repo.resolve(revision) }
        let releases = try ReleaseHistory.load(repo, config: config, tip: tip, details: false).of(app)
        guard number >= 1, number <= releases.count else {
            throw RewindError(.notFound, "app \(app) has no release #\(number)", hint: "it has releases #1 to #\(releases.count); see `rewind releases \(app)`")
        }
        return releases[number - 1].commit
    }
}
