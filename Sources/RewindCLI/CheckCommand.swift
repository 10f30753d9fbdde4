import ArgumentParser
import DeployModel
import GitKit
import Remote
import Rollback
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// `rewind check RANGE`.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Fail when a commit in RANGE changes a pinned app without unpinning it, or deploys inside a change window (for CI and pre-receive hooks).")

    @Argument(help: "OLD..NEW, or one revision for all of its history.") var range: String
    @Option(help: "Output format: table or json.") var format: OutputFormat = .table

    // Last: the shared repository options come after the command's own in --help.
    @OptionGroup var options: RepoOptions

    func run() throws {
        try runReporting(format: format) {
            let repo = try options.open()
            let violations = try RangeCheck.violations(repo, range: range)
            if format == .json {
                Terminal.print(JSON.array(violations.map { .object([("commit", .string($0.commit.hex)), ("app", .string($0.app)), ("summary", .string($0.summary)),
                                                                    ("window", .optional($0.window))]) }).pretty)
            } else if violations.isEmpty {
                Terminal.print("ok: no commit in \(range) changes a pinned app or deploys inside a change window")
            }
            for v in violations where format == .table {
                Terminal.error("\(v.commit.short) \"\(v.summary)\" " + (v.window.map { "deploys app \(v.app) inside a change window: \($0)" } ?? "changes app \(v.app), which is pinned"))
            }
            if !violations.isEmpty {
                if format == .table {
                    Terminal.error(violations.contains { $0.window != nil } ? "hint: deploy after the window, or add the trailer Rewind-Override: freeze (the audit lists it)"
                                   : "hint: drop those changes, or unpin first with `rewind unpin APP`")
                }
                throw ExitCode(exitStatus(for: .checkFailed))
            }
        }
    }
}
