import Artifacts
import DeployModel
import Rollback
import SystemSupport
import WebClient

/// How a reconciler runs.
public struct ReconcilerOptions: Sendable {
    public var repoPath: String
    public var branch: String?
    /// Default: `<git dir>/rewind/state`.
    public var stateDirectory: String?
    /// Milliseconds between full passes (drift detection).
    public var fullPassInterval: Int64 = 30_000
    /// Milliseconds between two looks at the branch ref.
    public var pollInterval: Int64 = 50
    /// Converge once and exit.
    public var once = false
    /// A commit an operator accepts after a history rewrite.
    public var acceptRewrite: String?
    public var artifactRoot: String?
    /// Leave process-platform apps running when the reconciler stops.
    public var keepAppsOnExit = false
    /// Environment passed to apps (plus their own variables), less
    /// Rewind's own variables and `secretEnvironment` (see `InheritedEnvironment`).
    public var environment: [String: String]
    /// Names (or `PREFIX*` patterns) of inherited variables apps must not see.
    public var secretEnvironment: [String] = []
    /// Directories searched for app commands given by name, before $PATH.
    public var searchPath: [String]
    /// The longest wait between two restarts of a crashing process.
    public var maxRestartBackoff: Int64 = 30_000
    /// SIGTERM to SIGKILL, for stopped processes.
    public var stopGrace: Int64 = 5_000
    /// How the loop is told to stop (default: SIGTERM or SIGINT).
    public var stop: any StopCondition = SignalStop()
    /// Prometheus for `policy.triggers` (none: triggers are not evaluated).
    public var prometheus: WebURL?
    /// Certificate authorities to trust for https:// Prometheus, besides the system's.
    public var caFile: String?
    /// Where trigger queries are answered instead of `prometheus` (tests pass a fake).
    public var metrics: (any MetricsSource)?
    /// Milliseconds between two evaluations of the triggers.
    public var analysisInterval: Int64 = 5_000
    /// Where rollback events go (webhooks); none by default.
    public var notifier: Notifier?
    /// Told about applies, passes and rollbacks (metrics).
    public var observer: any ReconcilerObserver = NoObserver()
    /// Which commits must carry a signature by an allowed signer (rewind.yaml's
    /// `policy.verify` can raise it, never lower it).
    public var verify: SignaturePolicy = .none
    /// The OpenSSH allowed_signers file signatures are checked against.
    public var allowedSigners: String?
    /// Bounds on app directories; a commit over them is refused.
    public var limits = AppLimits()
    /// How many apps of one dependency wave are started and waited for at
    /// once (1: one at a time, in dependency order).
    public var concurrency = 8
    /// The HAProxy program for apps with `traffic:` (a name on PATH or a path).
    public var haproxy = "haproxy"
    /// How registries are reached (credentials, plain-HTTP registries,
    /// trusted authorities, the largest artifact): the artifact cache's
    /// settings but its directory, which is the state directory's `artifacts`.
    public var registry = ArtifactOptions(directory: "")
    /// The artifact cache's bound: after a pull, least-recently-used
    /// entries go until it fits, except what rollback needs (`pruneArtifactCache`).
    public var artifactCacheSize: Int64 = 10 << 30
    /// The container engine's socket (Docker Engine API); nil: the usual sockets.
    public var containerSocket: String?
    /// This host's name in rewind.yaml's `hosts:`: only the apps placed on it are applied (nil: every app).
    public var host: String?
    /// With `host`: the host's status is written at least this often (ms); three missed make it stale.
    public var hostStatusInterval: Int64 = 60_000
    /// Called after the reconciler wrote a commit or notes (a mirror pushes them).
    public var onWrite: @Sendable () -> Void = {}

    /// Options with defaults.
    public init(repoPath: String, environment: [String: String], searchPath: [String]) {
        self.repoPath = repoPath
        self.environment = environment
        self.searchPath = searchPath
    }
}

/// The environment holds Rewind's secrets: a description names the
/// repository and state directory only, whatever prints it.
extension ReconcilerOptions: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { "ReconcilerOptions(repo: \(repoPath), state: \(stateDirectory ?? "default"))" }
    public var debugDescription: String { description }
}
