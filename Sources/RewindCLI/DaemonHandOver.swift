import ArgumentParser
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// `rewind reconcile` and `rewind serve` run in `rewind-daemon`, the binary
/// beside `rewind`: only they link the HTTP server and client, so every
/// other command starts without loading them. `rewind` replaces itself
/// with the daemon (exec: same pid, signals, exit status and output).
public enum DaemonHandOver {
    /// The daemon's commands, with the abstract `rewind --help` lists.
    public static let commands: [(name: String, abstract: String)] = [
        ("reconcile", "Keep every app at what the branch says; roll back failed releases by commit."),
        ("serve", "Run the reconciler and the HTTP server: web UI, API, Alertmanager and push webhooks, metrics."),
        ("pull", "Pull an OCI artifact by digest into the reconciler's artifact cache."),
        ("notify", "Notification routes (--notify-routes): `rewind notify test ROUTE` sends a sample to each of its targets."),
    ]

    public static func abstract(_ name: String) -> String { commands.first { $0.name == name }?.abstract ?? "" }

    /// Call first, before any signal handling is set up: when the command
    /// line names a daemon command (`rewind serve ...`, `rewind help serve`),
    /// this process becomes rewind-daemon and does not return.
    public static func execIfDaemonCommand(_ arguments: [String]) {
        var forwarded = arguments
        if arguments.first == "help", arguments.count >= 2, commands.contains(where: { $0.name == arguments[1] }) {
            forwarded = [arguments[1], "--help"]
        }
        guard let first = forwarded.first, commands.contains(where: { $0.name == first }) else { return }
        exec(forwarded)
    }

    /// Replaces this process with rewind-daemon running `arguments`; exits 70 when it cannot.
    static func exec(_ arguments: [String]) -> Never {
        let path = daemonPath()
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        execv(path, argv)
        let why = String(cString: strerror(errno))
        Terminal.error("error: cannot run \(path): \(why)\nhint: rewind-daemon is installed beside rewind (both are built by `swift build`); reinstall both")
        Glibc.exit(70)
    }

    /// `rewind-daemon` in this executable's directory.
    static func daemonPath() -> String {
        (Spawn.executableDirectory() ?? ".") + "/rewind-daemon"
    }
}

/// `rewind reconcile` in `rewind --help`; it runs in rewind-daemon.
struct ReconcileHandOver: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reconcile", abstract: DaemonHandOver.abstract("reconcile"))
    @Argument(parsing: .captureForPassthrough) var arguments: [String] = []
    func run() throws { DaemonHandOver.exec(["reconcile"] + arguments) }
}

/// `rewind pull` in `rewind --help`; it runs in rewind-daemon.
struct PullHandOver: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pull", abstract: DaemonHandOver.abstract("pull"))
    @Argument(parsing: .captureForPassthrough) var arguments: [String] = []
    func run() throws { DaemonHandOver.exec(["pull"] + arguments) }
}

/// `rewind notify` in `rewind --help`; it runs in rewind-daemon.
struct NotifyHandOver: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "notify", abstract: DaemonHandOver.abstract("notify"))
    @Argument(parsing: .captureForPassthrough) var arguments: [String] = []
    func run() throws { DaemonHandOver.exec(["notify"] + arguments) }
}

/// `rewind serve` in `rewind --help`; it runs in rewind-daemon.
struct ServeHandOver: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: DaemonHandOver.abstract("serve"))
    @Argument(parsing: .captureForPassthrough) var arguments: [String] = []
    func run() throws { DaemonHandOver.exec(["serve"] + arguments) }
}
