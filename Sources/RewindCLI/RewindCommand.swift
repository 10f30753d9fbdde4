import ArgumentParser
import Rollback
import SystemSupport

/// The `rewind` command: GitOps rollbacks as git commits.
@available(macOS 10.15, macCatalyst 13, iOS 13, tvOS 13, watchOS 6, *)
public struct RewindCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "rewind",
        abstract: "GitOps rollbacks as git commits.",
        discussion: """
            Rewind reads a deployment repository (rewind.yaml plus one directory per app), \
            lists each app's releases from git history, and rolls back by writing ordinary commits.

            Exit codes: 0 done (or nothing to do), 1 refused (guard, conflict, dirty working tree), \
            2 invalid desired state, 3 check found violations, 4 not found, 5 gave up on contention, \
            64 usage error, 70 internal failure.
            """,
        version: "0.1.0",
        subcommands: [
            InitCommand.self, ValidateCommand.self, ReleasesCommand.self, ShowCommand.self,
            RevertCommand.self, RollbackCommand.self, PinCommand.self, UnpinCommand.self, CheckCommand.self,
            ReconcileCommand.self, StatusCommand.self, ServeCommand.self,
        ])

    public init() {}

    /// Call first: SIGTERM and SIGINT only raise a flag, which the
    /// reconciler's loop (or `serve`'s shutdown watcher) polls between steps.
    public static func prepareProcess() {
        StopSignals.install()
    }

    /// Parses the command line and runs the chosen command, awaiting async
    /// ones (`serve`). Spelled out because overload resolution in a
    /// top-level `main.swift` picks the synchronous `main()`.
    public static func runAsync() async {
        do {
            var command = try await asyncParseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// Options every command that reads a repository takes.
struct RepoOptions: ParsableArguments {
    @Option(name: .long, help: "The deployment repository (a working tree or a bare repository).")
    var repo: String = "."

    @Option(name: .long, help: "The branch to follow (default: branch in rewind.yaml, else HEAD's branch).")
    var branch: String?

    func open() throws -> DeployRepository {
        try DeployRepository(path: repo, branch: branch)
    }
}

/// Output formats for listings.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

/// Runs a command body, printing Rewind's errors to stderr and exiting with
/// the documented code.
func runReporting(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as RewindError {
        Terminal.error("error: \(error)")
        throw ExitCode(exitStatus(for: error.code))
    }
}

func exitStatus(for code: RewindError.Code) -> Int32 {
    switch code {
    case .refused, .conflict, .dirtyWorkingTree: return 1
    case .invalidState: return 2
    case .checkFailed: return 3
    case .notFound: return 4
    case .contention: return 5
    case .usage: return 64
    case .internalFailure: return 70
    }
}
