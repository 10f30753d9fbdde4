import ArgumentParser
import DeployModel
import GitKit
import Remote
import Rollback
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// `rewind rollback APP... [--to REV|#N] | --all`.
struct RollbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Set apps' directories to their state at a target, in one commit.",
        discussion: "Without --to, each app goes back to its last release that was verified healthy (a git note), else its last release before the current one that was not rolled back.")

    @Argument(help: "The apps to roll back.", completion: AppNames.completion) var apps: [String] = []
    @Flag(help: "Roll back every app.") var all = false
    @Option(help: "The target: a revision, #N for the app's release number N, or a version label (the app's newest release with it).") var to: String?
    @Flag(help: "Override the irreversible-migration guard (recorded as Rewind-Forced trailers).") var force = false
    @OptionGroup var write: WriteOptions

    // Last: the shared repository options come after the command's own in --help.
    @OptionGroup var options: RepoOptions

    func validate() throws {
        if all && !apps.isEmpty { throw ValidationError("name apps or pass --all, not both") }
        if !all && apps.isEmpty { throw ValidationError("name at least one app, or pass --all") }
    }

    /// This command's line read without ArgumentParser; nil when only
    /// ArgumentParser can read it (QuickLine).
    static func quick(_ arguments: [String]) -> RollbackCommand? {
        var line = QuickLine(arguments)
        var command = RollbackCommand()
        command.all = line.flag("--all")
        command.to = line.option("--to")
        command.force = line.flag("--force")
        command.write = WriteOptions.quick(&line)
        command.options = RepoOptions.quick(&line)
        command.apps = line.remainingArguments()
        return line.finished(command, write: command.write, repo: command.options)
    }

    func run() throws { try write.execute(.rollback(apps: apps, all: all, to: to.map(TargetSpec.init(parsing:))), repoOptions: options, force: force) }
}
