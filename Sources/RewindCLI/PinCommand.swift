import ArgumentParser
import DeployModel
import GitKit
import Remote
import Rollback
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// `rewind pin APP [--to REV|#N]`.
struct PinCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pin",
        abstract: "Hold an app at a state (default: its current one), recorded in rewind.pins.yaml; with --to, roll back and hold.")

    @Argument(help: "The app to pin.", completion: AppNames.completion) var app: String
    @Option(help: "The target: a revision, #N for the app's release number N, or a version label (the app's newest release with it).") var to: String?
    @Flag(help: "Override the irreversible-migration guard (recorded as Rewind-Forced trailers).") var force = false
    @OptionGroup var write: WriteOptions

    // Last: the shared repository options come after the command's own in --help.
    @OptionGroup var options: RepoOptions

    func run() throws { try write.execute(.pin(app, to: to.map(TargetSpec.init(parsing:))), repoOptions: options, force: force) }
}
