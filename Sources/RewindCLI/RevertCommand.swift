import ArgumentParser
import DeployModel
import GitKit
import Remote
import Rollback
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// `rewind revert REV`.
struct RevertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revert",
        abstract: "Write the inverse of one commit on top of the branch, as `git revert` would (mainline 1 for merges).")

    @Argument(help: "The commit to revert.") var revision: String
    @Flag(help: "Override the irreversible-migration guard (recorded as Rewind-Forced trailers).") var force = false
    @OptionGroup var write: WriteOptions

    // Last: the shared repository options come after the command's own in --help.
    @OptionGroup var options: RepoOptions

    /// This command's line read without ArgumentParser; nil when only
    /// ArgumentParser can read it (QuickLine).
    static func quick(_ arguments: [String]) -> RevertCommand? {
        var line = QuickLine(arguments)
        var command = RevertCommand()
        command.force = line.flag("--force")
        command.write = WriteOptions.quick(&line)
        command.options = RepoOptions.quick(&line)
        guard let revision = line.argument() else { return nil }
        command.revision = revision
        return line.finished(command, write: command.write, repo: command.options)
    }

    func run() throws { try write.execute(.revert(revision), repoOptions: options, force: force) }
}
