import Containers
import ArgumentParser
import RewindCLI
import DeployModel
import Logging
import Reconciler
import ReconcilerStatus
import WebClient
import Remote
import Rollback
import GitKit
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// `rewind reconcile`: the reconciler loop.
struct ReconcileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: DaemonHandOver.abstract("reconcile"),
        discussion: """
            Watches the branch (a new commit is noticed within about 50 ms), applies each app's \
            state through its platform in dependsOn order, waits until healthy, and records each \
            outcome in the state directory and as a git note under refs/notes/rewind. A release \
            that does not become healthy, or crash-loops in its soak window, is rolled back by a \
            commit when rewind.yaml's policy allows. SIGTERM or SIGINT stops the loop and the \
            processes it supervises (unless --keep-apps).
            """)

    @OptionGroup var loop: LoopOptions

    @Flag(help: "Converge once and exit (processes keep running).")
    var once = false

    @Option(help: "Accept a rewritten history: the tip must descend from REV from now on.")
    var acceptRewrite: String?

    // Last: the shared repository options come after the command's own in --help.
    @OptionGroup var repoOptions: RepoOptions

    func run() throws {
        ProcessRole.markLongRunning()
        let logger = loop.bootstrapLogging()
        try runReporting {
            let sync = try loop.syncLoop(repoOptions)
            var options = try loop.reconcilerOptions(repoOptions, mirror: sync?.mirror)
            options.once = once
            options.acceptRewrite = acceptRewrite
            if let sync {
                options.onWrite = { sync.trigger() }
                if !once { sync.start(stop: options.stop, logger: logger) }
            }
            do {
                let reconciler = try Reconciler(options: options, logger: logger)
                try reconciler.run()
                if once, let sync, let error = sync.mirror.sync().error { logger.warning("cannot push to \(sync.mirror.url): \(error)") }
            } catch let error as StateError where error.busy && acceptRewrite != nil {
                try handOver(acceptRewrite ?? "", error: error)
            } catch let error as StateError {
                throw RewindError(error.busy ? .contention : .internalFailure, error.message, hint: error.hint)
            }
        }
    }

    /// A reconciler already runs: leave the accepted commit for it and wait
    /// until it has taken it.
    private func handOver(_ revision: String, error: StateError) throws {
        let repo = try repoOptions.open()
        let commit = try repo.resolve(revision)
        let store = StateStore(repo, directory: loop.stateDir)
        guard FileIO.writeAtomically(store.acceptFile, text: commit.hex + "\n") else {
            throw RewindError(.internalFailure, "cannot write \(store.acceptFile)", hint: "check that the state directory is writable")
        }
        let deadline = Clock.monotonicMilliseconds() + 10_000
        while FileIO.exists(store.acceptFile) {
            if Clock.monotonicMilliseconds() > deadline {
                throw RewindError(.contention, "the running reconciler did not take the accepted commit within 10 s", hint: "is it stuck? see its log; the request stays in \(store.acceptFile)")
            }
            Clock.sleep(milliseconds: 20)
        }
        Terminal.print("accepted \(commit.short): the running reconciler resumes from it")
    }
}

/// What `reconcile` and `serve` share: the loop's state, pace, artifacts and logging.
struct LoopOptions: ParsableArguments {
    @Option(help: "The state directory (default: <git dir>/rewind/state).")
    var stateDir: String?

    @Option(help: "Time between full passes that look for drift, e.g. 30s.")
    var interval = Duration(milliseconds: 30_000)

    @Option(help: "Directory for relative artifact paths (default: REWIND_ARTIFACT_ROOT, else rewind.yaml's artifactRoot).")
    var artifactRoot: String?

    @Flag(help: "Leave the apps' processes running when Rewind stops.")
    var keepApps = false

    @Option(help: "Prometheus for policy.triggers, e.g. http://prometheus:9090 or https://prometheus.example.com.")
    var prometheusUrl: String?

    @Option(help: "A PEM file of certificate authorities to trust for https:// Prometheus and webhook URLs, besides the system's.")
    var caFile: String?

    @Option(help: "Time between two evaluations of policy.triggers.")
    var analysisInterval = Duration(milliseconds: 5_000)

    @Option(help: "Send rollback events as JSON to this webhook (repeatable; http or https).")
    var notifyUrl: [String] = []

    @Option(help: "Send rollback events to this Slack-compatible incoming webhook (repeatable; http or https).")
    var slackUrl: [String] = []

    @Option(help: ArgumentHelp("A notification routes file: targets (webhook, slack, pagerduty) and which events of which apps go to each (see the README).", valueName: "file"))
    var notifyRoutes: String?

    @Option(help: "Log level.")
    var logLevel: LogLevel = .info

    @Option(help: "For a remote repository: how often the mirror is fetched (push webhooks fetch at once).")
    var fetchInterval = Duration(milliseconds: 60_000)

    @Option(help: "Signature policy: none, head (the tip must be signed by an allowed signer) or all (every new commit). rewind.yaml's policy.verify can raise it.")
    var verify: SignaturePolicy = .none

    @Option(help: "OpenSSH allowed_signers file for --verify (default: $REWIND_ALLOWED_SIGNERS, else git's gpg.ssh.allowedSignersFile).")
    var allowedSigners: String?

    @Option(help: ArgumentHelp("An inherited variable apps must not see (repeatable; NAME, or PREFIX* such as AWS_*). Rewind's own REWIND_* variables are never passed on.", valueName: "name"))
    var secretEnv: [String] = []

    @Option(help: "How many apps of one dependency wave are started and waited for at once (1: one at a time).")
    var concurrency: Int = 8

    @Option(help: "The HAProxy program for apps with traffic: in app.yaml (a name on PATH, or a path).")
    var haproxy: String = "haproxy"

    @Option(help: "Refuse a commit with a file larger than this many bytes in an app directory.")
    var maxBlobSize: Int = 10 << 20

    @Option(help: "Refuse a commit with more files than this in one app directory.")
    var maxAppFiles: Int = 10_000

    @OptionGroup var registry: RegistryOptions

    @Option(help: ArgumentHelp("This host's name in rewind.yaml's hosts: apply only the apps placed on it (without hosts: in rewind.yaml, every app).", valueName: "name"))
    var host: String?

    @Option(help: "With --host: how often this host's status is written under refs/rewind/hosts/ even when nothing changed; the fleet view marks a host stale after three missed.")
    var statusInterval = Duration(milliseconds: 60_000)

    @Option(help: ArgumentHelp("The container engine's socket for platform: container (the Docker Engine API; default: /var/run/docker.sock, else /run/podman/podman.sock).", valueName: "path"))
    var containerSocket: String?

    @Option(help: "The artifact cache's bound in bytes: after a pull, least-recently-used artifacts are evicted, except the applied ones, those the policy could roll back to within policy.window, and pinned ones.")
    var artifactCacheSize: Int64 = 10 << 30

    func validate() throws {
        guard artifactCacheSize > 0 else { throw ValidationError("--artifact-cache-size must be positive") }
        if let host, !RepoConfig.isValidAppName(host) {
            // Echoed bounded: it names a ref (refs/rewind/hosts/NAME) and a file.
            throw ValidationError("--host '\(Bounded.text(host, limit: 64))' is not a host name: use lower-case letters, digits and dashes, starting with a letter or digit, as in rewind.yaml's hosts:")
        }
        guard statusInterval.milliseconds >= 1_000 else { throw ValidationError("--status-interval must be 1s or more") }
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be 1 or more") }
        guard maxBlobSize > 0, maxAppFiles > 0 else { throw ValidationError("--max-blob-size and --max-app-files must be positive") }
        for url in notifyUrl + slackUrl where WebURL(url) == nil {
            // Not echoed: a webhook URL's path is often its secret.
            throw ValidationError("a notification URL is not an http:// or https:// URL with a host (and without credentials before the host)")
        }
        if let caFile, FileIO.read(caFile) == nil { throw ValidationError("--ca-file \(caFile) cannot be read") }
        if let prometheusUrl, WebURL(prometheusUrl) == nil {
            // Not echoed: a URL may carry credentials.
            throw ValidationError("--prometheus-url is not an http:// or https:// URL with a host and without credentials, such as http://prometheus:9090")
        }
    }

    /// For a remote repository: its mirror, synced once, and the loop that keeps it in step.
    func syncLoop(_ repo: RepoOptions) throws -> SyncLoop? {
        try repo.syncedMirror().map { SyncLoop(mirror: $0, interval: fetchInterval.milliseconds) }
    }

    /// Sends log lines at `--log-level` and above to stderr; the entry point's logger.
    func bootstrapLogging() -> Logger {
        let level = logLevel.level
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "rewind")
    }

    /// The container engine of --container-socket, else of Docker's or Podman's usual socket when there is one.
    var containerEngine: ContainerEngine? {
        (containerSocket ?? ContainerEngine.defaultSocket()).flatMap { try? ContainerEngine(socket: $0) }
    }

    /// The reconciler's options from the command line and the environment.
    func reconcilerOptions(_ repo: RepoOptions, mirror: Mirror?) throws -> ReconcilerOptions {
        var options = ReconcilerOptions(repoPath: mirror?.path ?? repo.repo, environment: Spawn.currentEnvironment(),
                                        searchPath: Spawn.executableDirectory().map { [$0] } ?? [])
        options.secretEnvironment = secretEnv
        options.concurrency = concurrency
        options.haproxy = haproxy
        options.verify = verify
        options.limits.maxBlobBytes = maxBlobSize
        options.limits.maxFiles = maxAppFiles
        options.allowedSigners = allowedSigners ?? Environment.value("REWIND_ALLOWED_SIGNERS")
            ?? (try? Repository.open(options.repoPath))?.configValue("gpg.ssh.allowedSignersFile")
        options.branch = repo.branch
        options.stateDirectory = stateDir
        options.artifactRoot = artifactRoot ?? environmentArtifactRoot()
        options.keepAppsOnExit = keepApps
        options.fullPassInterval = interval.milliseconds
        options.prometheus = prometheusUrl.flatMap(WebURL.init)
        options.caFile = caFile
        options.registry = try registry.artifactOptions(directory: "", caFile: caFile)
        options.artifactCacheSize = artifactCacheSize
        options.containerSocket = containerSocket
        options.host = host
        options.hostStatusInterval = statusInterval.milliseconds
        options.analysisInterval = analysisInterval.milliseconds
        let routing = try notifyRoutes.map { file throws(RewindError) in try NotifyRouting.load(file: file, caFile: caFile) }
        let targets = notifyUrl.compactMap { Notifier.Target(url: $0, slack: false) } + slackUrl.compactMap { Notifier.Target(url: $0, slack: true) }
            + (routing?.targets ?? [])
        if !targets.isEmpty {
            let logger = Logger(label: "rewind")
            let state = stateDir ?? (try? DeployRepository(path: options.repoPath, branch: repo.branch)).map(StateStore.defaultDirectory)
            let deadLetters = routing?.routes.deadLetters ?? state.map { $0 + "/notifications-dead.jsonl" }
            options.notifier = Notifier(targets: targets, caFile: caFile, deadLetters: deadLetters, uiURL: routing?.routes.uiURL) { logger.warning("\($0)") }
        }
        return options
    }
}
