import ArgumentParser
import RewindCLI

/// The commands `rewind` hands over to rewind-daemon: `rewind reconcile`
/// and `rewind serve`, parsed and run here as `rewind` would.
public struct DaemonCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "rewind",
        abstract: "The long-running commands of rewind (run them as `rewind reconcile` and `rewind serve`).",
        version: RewindCommand.configuration.version,
        subcommands: [ReconcileCommand.self, ServeCommand.self, PullCommand.self, NotifyCommand.self])

    public init() {}

    /// Parses the command line and runs the command, as `RewindCommand.runAsync` does.
    public static func runAsync() async {
        await RewindCommand.run(root: DaemonCommand.self)
    }
}
