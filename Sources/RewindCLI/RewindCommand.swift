import ArgumentParser
import DeployModel
import GitKit
import Logging
import Remote
import Rollback
import SystemSupport

/// The `rewind` command: GitOps rollbacks as git commits.
@available(macOS 10.15, macCatalyst 13, iOS 13, tvOS 13, watchOS 6, *)
public struct RewindCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "rewind",
        abstract: "GitOps rollbacks as git commits.",
        discussion: """
            Rewind reads a deployment repository (rewind.yaml plus one directory per app), \
            lists each app's releases from git history, and rolls back by writing ordinary commits.

            Exit codes: 0 done (or nothing to do), 1 refused (guard, conflict, dirty working tree), \
            2 invalid desired state, 3 check found violations, 4 not found, 5 gave up on contention, \
            6 remote unreachable or kept rejecting the push (commits stay queued), 7 something needs a human (status, wait), \
            8 a release failed or was rolled back (wait), 9 timed out (wait), 64 usage error, 70 internal failure.
            """,
        version: version,
        subcommands: [
            InitCommand.self, ValidateCommand.self, ReleasesCommand.self, ShowCommand.self, DiffCommand.self,
            RevertCommand.self, RollbackCommand.self, PinCommand.self, UnpinCommand.self, AllowCommand.self, CheckCommand.self,
            ReconcileHandOver.self, StatusCommand.self, WaitCommand.self, LogsCommand.self, AuditCommand.self, IncidentCommand.self,
            ServeHandOver.self, PullHandOver.self, NotifyHandOver.self, SyncCommand.self, PromoteCommand.self, AbortCommand.self, PauseCommand.self, ResumeCommand.self,
        ])

    public init() {}

    static let version = "0.1.0"

    /// Call first. SIGPIPE is ignored (a peer that hangs up is an error).
    /// SIGTERM and SIGINT raise a flag, which the reconciler's loop (or
    /// `serve`'s shutdown watcher) polls between steps; they also cancel
    /// every git transfer under way, and end a one-shot command at once
    /// with 128 + the signal, once no local write is half-done.
    public static func prepareProcess() {
        StopSignals.ignoreBrokenPipes()
        StopSignals.install()
        // libgit2's initialisation (about 1 ms: loading its libraries' state
        // and seeding mbedTLS; the CA bundle is read later, if ever:
        // rewind_certificates.h) runs on a thread of its own, beside the
        // parsing of the command line. Help and the version read no
        // repository: they skip it.
        if !Self.readsNoRepository(Array(CommandLine.arguments.dropFirst())) {
            bootstrapping.set()
            BackgroundThread.start { GitRuntime.bootstrap() }
        }
        BackgroundThread.start {
            while !StopSignals.wait(milliseconds: 60_000) {}
            // A one-shot command exits here, whatever its main thread is
            // blocked on; reconcile and serve stop their loops themselves, and
            // every transfer under way ends at once so that they can.
            guard ProcessRole.isLongRunning else { Interruption.exit(status: 128 + StopSignals.received) }
            NetworkDeadlines.cancelAll()
        }
    }

    /// Parses the command line and runs the chosen command, on the main
    /// thread: no one-shot command is async, so none starts Swift
    /// concurrency's threads.
    public static func runMain() {
        let arguments = SoakWindow.expandBareFlag(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try quickCommand(arguments) ?? {
                suggestForUnknownCommand(arguments)
                return try RewindCommand.parseAsRoot(arguments)
            }()
            try command.run()
            settleBeforeExit()
        } catch {
            settleBeforeExit()
            RewindCommand.exit(withError: error)
        }
    }

    /// Parses the command line with `root` (rewind-daemon's) and runs the
    /// command, awaiting async ones (`serve`).
    public static func run<Root: AsyncParsableCommand>(root: Root.Type) async {
        let arguments = SoakWindow.expandBareFlag(Array(CommandLine.arguments.dropFirst()))
        suggestForUnknownCommand(arguments)
        do {
            var command = try await root.asyncParseAsRoot(arguments)
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            settleBeforeExit()
        } catch {
            settleBeforeExit()
            root.exit(withError: error)
        }
    }

    /// Waits for libgit2's initialisation, which `prepareProcess` started
    /// on a thread of its own, before the process exits: exit's handlers
    /// (libcrypto's cleanup among them) must not run while that thread is
    /// still initialising, or it crashes on a lock they destroyed. Found as
    /// `rewind frobnicate` ending in SIGSEGV once in a full test run.
    static func settleBeforeExit() {
        if bootstrapping.value { GitRuntime.bootstrap() }
    }

    /// `rewind --version`, `rewind revert …` and `rewind rollback …` read
    /// without ArgumentParser (QuickLine), when they can be.
    static func quickCommand(_ arguments: [String]) -> ParsableCommand? {
        if arguments == ["--version"] { return PrintVersion() }
        switch arguments.first {
        case RevertCommand.configuration.commandName: return RevertCommand.quick(Array(arguments.dropFirst()))
        case RollbackCommand.configuration.commandName: return RollbackCommand.quick(Array(arguments.dropFirst()))
        default: return nil
        }
    }

    /// `rewind --version`, as ArgumentParser prints it.
    struct PrintVersion: ParsableCommand {
        func run() { Terminal.print(RewindCommand.version) }
    }

    /// Set when `prepareProcess` started libgit2's initialisation.
    private static let bootstrapping = AtomicFlag()

    /// `rewind`, `rewind --version`, `rewind help …`, `rewind … --help`: no repository is read.
    static func readsNoRepository(_ arguments: [String]) -> Bool {
        guard let first = arguments.first else { return true }
        return first == "--version" || first == "help" || arguments.contains("--help") || arguments.contains("-h")
    }
}

extension RewindCommand {
    /// `rewind rolback api`: says which command was meant, and exits 64.
    static func suggestForUnknownCommand(_ arguments: [String]) {
        guard let first = arguments.first, !first.hasPrefix("-"), first != "help" else { return }
        let names = configuration.subcommands.compactMap { $0.configuration.commandName }
        guard !names.contains(first) else { return }
        let guess = Spelling.nearest(first, in: names).map { "; did you mean '\($0)'?" } ?? ""
        Terminal.error("error: unknown command '\(Bounded.text(first, limit: 64))'\(guess)\nhint: `rewind --help` lists the commands")
        settleBeforeExit()
        Glibc.exit(64)
    }
}

/// Whether this process is `reconcile` or `serve` (which stop gracefully on
/// a signal) rather than a one-shot command (which exits at once).
package enum ProcessRole {
    private static let longRunning = AtomicFlag()
    package static var isLongRunning: Bool { longRunning.value }
    /// Called first thing by `reconcile` and `serve`.
    package static func markLongRunning() { longRunning.set() }
}

/// Options every command that reads a repository takes.
package struct RepoOptions: ParsableArguments {
    package init() {}

    @Option(name: .long, help: ArgumentHelp(
        "The deployment repository: a working tree or bare repository, or a remote URL (file://, git://, ssh://, user@host:path, https://).",
        discussion: "A remote repository is kept in a local mirror (see --mirror) and fetched before each command."))
    package var repo: String = "."

    @Option(name: .long, help: "The branch to follow (default: branch in rewind.yaml, else HEAD's branch).")
    package var branch: String?

    // Untitled: ArgumentParser lists titled groups before a command's own options.
    @OptionGroup package var remote: RemoteOptions

    /// These options as ArgumentParser would read them (QuickLine).
    static func quick(_ line: inout QuickLine) -> Self {
        var options = Self()
        options.repo = line.option("--repo") ?? "."
        options.branch = line.option("--branch")
        options.remote = RemoteOptions.quick(&line)
        return options
    }

    /// Opens the repository; a remote one is synced into its mirror first.
    package func open() throws -> DeployRepository { try openWithMirror().repo }

    /// Opens the repository and, for a remote URL, its mirror (synced first
    /// unless `sync` is false).
    package func openWithMirror(sync: Bool = true) throws -> (repo: DeployRepository, mirror: Mirror?) {
        guard let mirror = try sync ? syncedMirror() : remote.mirror(for: repo) else {
            return (try DeployRepository(path: repo, branch: branch), nil)
        }
        return (try DeployRepository(path: mirror.path, branch: branch), mirror)
    }

    /// For a remote URL, its mirror after one sync; nil for a local path.
    /// The first fetch must succeed; after that, a host that is down only
    /// gets a warning, and the mirror as last fetched is used.
    package func syncedMirror() throws -> Mirror? {
        guard let mirror = try remote.mirror(for: repo) else { return nil }
        if let error = mirror.sync().error {
            guard mirror.hasFetched else {
                throw RewindError(.notFound, "cannot fetch \(mirror.url): \(error)", hint: "check the URL, the network and the credentials options (rewind --help)")
            }
            Terminal.error("warning: cannot sync with \(mirror.url) (\(error)); using the mirror as last fetched")
        }
        return mirror
    }
}

/// How Rewind reaches a remote deployment repository.
package struct RemoteOptions: ParsableArguments {
    package init() {}

    @Option(name: .long, help: "Where the mirror of a remote repository lives (default: $REWIND_MIRROR, else ~/.local/state/rewind/mirrors/<host-and-path>).")
    var mirror: String?

    @Option(name: .long, help: "SSH private key file (default: $REWIND_SSH_KEY).")
    var sshKey: String?

    @Option(name: .long, help: "known_hosts file SSH host keys are checked against (default: $REWIND_KNOWN_HOSTS, else ~/.ssh/known_hosts).")
    var knownHosts: String?

    @Option(name: .long, help: "HTTPS user name (default: $REWIND_GIT_USERNAME, else x-access-token with a token).")
    var gitUsername: String?

    @Option(name: .long, help: "File holding the HTTPS token or password (default: $REWIND_GIT_TOKEN_FILE; or set REWIND_GIT_TOKEN).")
    var gitTokenFile: String?

    @Option(name: .long, help: "PEM file of certificate authorities to trust for HTTPS.")
    var gitCaFile: String?

    @Flag(name: .long, help: "Send the git token over plain http:// (anyone on the network can read it). Without it, a token with an http:// URL is refused.")
    var allowInsecureHttp = false

    @Option(name: .long, help: "How long connecting to the git host may take (default: $REWIND_GIT_CONNECT_TIMEOUT, else 10s).")
    var gitConnectTimeout: Duration?

    @Option(name: .long, help: ArgumentHelp(
        "How long the git host may stay silent during a fetch or push (default: $REWIND_GIT_IDLE_TIMEOUT, else 30s).",
        discussion: "A host that sends or takes no byte for this long is given up: the command works from the mirror as last fetched and queues what it writes."))
    var gitIdleTimeout: Duration?

    @Option(name: .long, help: ArgumentHelp(
        "For a protected followed branch: push rollback commits to a branch of their own starting with this prefix (e.g. rewind/rollback-).",
        discussion: "The rollback then applies once someone merges that branch."))
    var proposalPrefix: String?

    /// These options as ArgumentParser would read them (QuickLine).
    static func quick(_ line: inout QuickLine) -> Self {
        var options = Self()
        options.mirror = line.option("--mirror")
        options.sshKey = line.option("--ssh-key")
        options.knownHosts = line.option("--known-hosts")
        options.gitUsername = line.option("--git-username")
        options.gitTokenFile = line.option("--git-token-file")
        options.gitCaFile = line.option("--git-ca-file")
        options.allowInsecureHttp = line.flag("--allow-insecure-http")
        options.gitConnectTimeout = line.option("--git-connect-timeout")
        options.gitIdleTimeout = line.option("--git-idle-timeout")
        options.proposalPrefix = line.option("--proposal-prefix")
        return options
    }

    /// The mirror for `repo` when it is a remote URL; nil for a local path.
    func mirror(for repo: String) throws -> Mirror? {
        guard let url = try RemoteURL.parse(repo) else { return nil }
        let env = Environment.self
        var access = RemoteAccess(knownHosts: knownHosts ?? env.value("REWIND_KNOWN_HOSTS") ?? RemoteAccess.defaultKnownHosts)
        access.sshKey = sshKey ?? env.value("REWIND_SSH_KEY")
        access.username = gitUsername ?? env.value("REWIND_GIT_USERNAME")
        if let file = gitTokenFile ?? env.value("REWIND_GIT_TOKEN_FILE") {
            access.password = try Secret.fromFile(file, what: "token")
        } else if let token = env.value("REWIND_GIT_TOKEN") {
            access.password = Secret(token)
        }
        if url.scheme == .http, access.password != nil, !allowInsecureHttp {
            throw RewindError(.usage, "refusing to send the git token over plain http to \(url.host): anyone on the network could read it",
                              hint: "use an https:// URL, or pass --allow-insecure-http if this network is trusted")
        }
        access.caFile = gitCaFile
        access.deadlines = try deadlines()
        let path = mirror ?? env.value("REWIND_MIRROR") ?? Self.defaultMirror(for: url)
        return try Mirror(url: url, path: path, access: access, proposalPrefix: proposalPrefix)
    }

    /// The git network deadlines from the options, else the environment, else NetworkDeadlines' defaults (10 s and 30 s).
    func deadlines() throws -> NetworkDeadlines {
        func pick(_ option: Duration?, _ variable: String, _ fallback: Int64) throws -> Int64 {
            if let option { return option.milliseconds }
            guard let text = Environment.value(variable) else { return fallback }
            guard let value = Duration(parsing: text), value.milliseconds > 0 else {
                throw RewindError(.usage, "\(variable)='\(Bounded.text(text, limit: 64))' is not a duration", hint: "write for example 30s")
            }
            return value.milliseconds
        }
        let defaults = NetworkDeadlines()
        return NetworkDeadlines(connectMilliseconds: try pick(gitConnectTimeout, "REWIND_GIT_CONNECT_TIMEOUT", defaults.connectMilliseconds),
                                idleMilliseconds: try pick(gitIdleTimeout, "REWIND_GIT_IDLE_TIMEOUT", defaults.idleMilliseconds))
    }

    static func defaultMirror(for url: RemoteURL) -> String {
        let base = Environment.value("XDG_STATE_HOME") ?? ((Environment.value("HOME") ?? "/tmp") + "/.local/state")
        let slug = String(url.text.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" })
        return "\(base)/rewind/mirrors/\(slug.suffix(100))"
    }
}

/// Output formats for listings.
package enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

/// Runs a command body, printing Rewind's errors to stderr and exiting with
/// the documented code.
package func runReporting(format: OutputFormat = .table, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as RewindError {
        if format == .json {
            // Under --format json, errors are JSON too (on stdout, where the result would be).
            Terminal.print(JSON.object([("error", .object([
                ("code", .string("\(error.code)")), ("exitCode", .number(Int64(exitStatus(for: error.code)))), ("message", .string(error.message)),
                ("hint", .optional(error.hint)), ("diagnostics", .array(error.diagnostics.map { .string("\($0)") })),
            ]))]).pretty)
        } else {
            Terminal.error("error: \(error)")
        }
        throw ExitCode(exitStatus(for: error.code))
    }
}

package func exitStatus(for code: RewindError.Code) -> Int32 {
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

#if canImport(Glibc)
import Glibc
#endif

/// Shell completion of app names (`rewind --generate-completion-script bash`):
/// the apps of the tip's rewind.yaml in `--repo` (default `.`); remote
/// URLs are not opened for a completion.
enum AppNames {
    static let completion = CompletionKind.custom { words, _, prefix in
        let path = words.firstIndex(of: "--repo").flatMap { words.indices.contains($0 + 1) ? words[$0 + 1] : nil } ?? "."
        return names(repo: path).filter { $0.hasPrefix(prefix) }
    }

    static func names(repo path: String) -> [String] {
        guard !path.contains("://"), !path.contains("@"),
              let repo = try? DeployRepository(path: path, branch: nil), let tip = try? repo.tip(),
              let config = try? repo.configForListing(at: tip).config else { return [] }
        return config.apps.map(\.name)
    }
}

/// Log levels on the command line, parsed once at the edge.
package enum LogLevel: String, ExpressibleByArgument, CaseIterable {
    case debug, info, notice, warning, error

    package var level: Logger.Level { Logger.Level(rawValue: rawValue) ?? .info }
}

/// Signature policies on the command line (`--verify`).
extension SignaturePolicy: ExpressibleByArgument {}

/// Durations on the command line (`30s`, `1m30s`, `250ms`), parsed once at the edge.
extension Duration: ExpressibleByArgument {
    public init?(argument: String) {
        guard let value = Duration(parsing: argument), value.milliseconds > 0 else { return nil }
        self = value
    }

    public var defaultValueDescription: String { description }
}
