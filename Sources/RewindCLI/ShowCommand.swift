import ArgumentParser
import GitKit
import Rollback
import SystemSupport

/// `rewind show REV`: which apps a commit changed and how.
struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show which apps a commit changed (against its first parent) and how.")

    @OptionGroup var options: RepoOptions

    @Argument(help: "The commit to show.")
    var revision: String

    @Option(help: "Output format: table or json.")
    var format: OutputFormat = .table

    func run() throws {
        try runReporting {
            let repo = try options.open()
            let id = try repo.resolve(revision)
            let details = try CommitDetails.load(repo, commit: id)
            if let warning = details.warning { Terminal.error(warning) }
            if format == .json {
                Terminal.print(json(details).pretty)
            } else {
                Terminal.print(text(details))
            }
        }
    }

    private func text(_ d: CommitDetails) -> String {
        var lines = ["commit \(d.commit.id.hex)", "Author: \(d.commit.author.name) <\(d.commit.author.email)>",
                     "Date:   \(Dates.iso8601(d.commit.author.time, offsetMinutes: d.commit.author.offsetMinutes))",
                     "Kind:   \(d.kind.rawValue)\(d.target.map { " of \($0.hex)" } ?? "")", "", "    \(d.commit.summary)", ""]
        if d.apps.isEmpty { lines.append("No app changed.") }
        for change in d.apps {
            lines.append("\(change.app): \(change.fromVersion ?? "-") -> \(change.toVersion ?? "-") (tree \(change.fromTree?.short ?? "none") -> \(change.toTree?.short ?? "none"))")
            lines += change.files.map { "    \($0)" }
        }
        if let trailers = d.trailers { lines += ["", trailers.rendered] }
        return lines.joined(separator: "\n")
    }

    private func json(_ d: CommitDetails) -> JSON {
        .object([
            ("commit", .string(d.commit.id.hex)), ("parents", .array(d.commit.parents.map { .string($0.hex) })),
            ("author", .string(d.commit.author.name)), ("email", .string(d.commit.author.email)),
            ("date", .string(Dates.iso8601(d.commit.author.time, offsetMinutes: d.commit.author.offsetMinutes))),
            ("summary", .string(d.commit.summary)), ("kind", .string(d.kind.rawValue)), ("target", .optional(d.target?.hex)),
            ("apps", .array(d.apps.map { c in
                .object([("app", .string(c.app)), ("versionBefore", .optional(c.fromVersion)), ("version", .optional(c.toVersion)),
                         ("treeBefore", .optional(c.fromTree?.hex)), ("tree", .optional(c.toTree?.hex)), ("files", .array(c.files.map { .string($0) }))])
            })),
        ])
    }
}
