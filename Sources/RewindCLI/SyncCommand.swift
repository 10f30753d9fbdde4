import ArgumentParser
import Remote
import Rollback
import SystemSupport

/// `rewind sync`: fetch the remote into the mirror and push what is queued.
struct SyncCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Fetch a remote repository into its mirror, and push queued rollback commits and notes.",
        discussion: """
            Every command that reads a remote repository syncs first; rewind reconcile and serve \
            sync every --fetch-interval and on push webhooks. This command does it once and says \
            what happened. Exit 6 when the remote could not be reached or kept rejecting the push \
            (the commits stay queued).
            """)

    @Option(help: "Output format: table or json.")
    var format: OutputFormat = .table

    // Last: the shared repository options come after the command's own in --help.
    @OptionGroup var repoOptions: RepoOptions

    func run() throws {
        try runReporting(format: format) {
            guard let mirror = try repoOptions.remote.mirror(for: repoOptions.repo) else {
                throw RewindError(.usage, "\(repoOptions.repo) is a local repository: there is nothing to sync", hint: "pass the URL of a remote repository with --repo")
            }
            let started = Clock.monotonicMilliseconds()
            let report = mirror.sync()
            let milliseconds = Clock.monotonicMilliseconds() - started
            if format == .json {
                Terminal.print(JSON.object([
                    ("remote", .string(mirror.url.text)), ("mirror", .string(mirror.path)), ("fetched", .bool(report.fetched)),
                    ("updated", .array(report.updated.map { .string($0) })), ("pushed", .array(report.pushed.map { .string($0) })),
                    ("alreadyOnRemote", .array(report.alreadyOnRemote.map { .string($0) })),
                    ("replanned", .array(report.replanned.map { .string($0) })), ("alreadyDone", .array(report.alreadyDone.map { .string($0) })),
                    ("proposed", .array(report.proposed.map { .string($0) })), ("unpushed", .number(Int64(report.unpushed))),
                    ("error", .optional(report.error)), ("durationMs", .number(milliseconds)),
                ]).pretty)
            } else {
                var lines = ["\(mirror.url) -> \(mirror.path): " + (report.error == nil ? "in sync" : "sync failed") + " (\(milliseconds) ms)"]
                lines += report.updated.map { "updated \(shortBranchName($0))" }
                lines += report.pushed.map { "pushed \($0.prefix(12))" }
                lines += report.alreadyOnRemote.map { "the remote had \($0.prefix(12)) already (another writer pushed it)" }
                lines += report.replanned.map { "the remote moved: planned again as \($0)" }
                lines += report.alreadyDone.map { "dropped: \($0)" }
                lines += report.proposed.map { "proposed on branch \($0): merge it to apply" }
                if report.unpushed > 0 { lines.append("\(report.unpushed) commit(s) still unpushed") }
                if let error = report.error { lines.append("error: \(error)") }
                Terminal.print(lines.joined(separator: "\n"))
            }
            if report.error != nil { throw ExitCode(6) }
        }
    }
}
