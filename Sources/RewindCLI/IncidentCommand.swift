import ArgumentParser
import Audit
import DeployModel
import GitKit
import Rollback
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// `rewind incident REV`: a postmortem draft for one rollback.
struct IncidentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "incident",
        abstract: "Print a postmortem draft for a rollback: timeline, what changed, trailers, guards, durations.")

    @Argument(help: "A rollback commit, or the release it rolled back.")
    var revision: String

    @Option(help: "Output format: markdown or json.")
    var format: IncidentFormat = .markdown

    @Option(help: "Write the report to this file (replaced atomically) instead of stdout.")
    var output: String?

    @OptionGroup var options: RepoOptions

    func run() throws {
        try runReporting(format: format == .json ? .json : .table) {
            let repo = try options.open()
            let report = try IncidentReport.build(repo, revision: revision)
            try emit(format == .json ? report.json.bytes(indent: 2) + [10] : Array(report.markdown.utf8), to: output)
        }
    }
}
