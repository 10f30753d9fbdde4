import DeployModel
import Foundation
import Hummingbird
import Logging
import Reconciler
import ReconcilerStatus
import Remote
import Rollback
import ServiceLifecycle
import SystemSupport
import Updates

/// How `rewind serve` runs.
public struct ServeOptions: Sendable {
    public var repoPath: String
    public var branch: String?
    public var stateDirectory: String?
    public var artifactRoot: String?
    /// Checks OCI and download targets before a rollback is written.
    public var artifacts: (any ArtifactAvailability)?
    public var host = "127.0.0.1"
    /// 0 lets the kernel choose; the address is logged and written to `<state>/serve.address`.
    public var port = 8484
    /// Bearer token for `POST /api/v1/...`; without one, those endpoints answer 401.
    public var apiToken: String?
    /// Who API rollbacks are recorded as acting (`Rewind-Actor`).
    public var apiTokenName = "api-token"
    /// Bearer token for `POST /hooks/...`; without one, hooks are open (bind to loopback).
    public var hookToken: String?
    /// The alert label that names the app.
    public var appLabel = "app"
    /// Only alerts with one of these `severity` labels act (empty: all).
    public var severities: Set<String> = []
    /// The largest request body read; larger ones get 413 before parsing.
    public var bodyLimit = 1 << 20
    /// Milliseconds a connection may stay silent (mid-headers, mid-body or idle) before it is closed.
    public var readTimeoutMilliseconds: Int64 = 10_000
    /// The largest request head (all header fields together).
    public var maxHeaderBytes = 16 << 10
    /// For a remote repository: keeps the mirror in step; `POST /hooks/git`
    /// and rollback commits trigger a sync at once.
    public var syncLoop: SyncLoop?
    /// The secret push webhooks are signed with (GitHub, Gitea/Forgejo) or
    /// carry (GitLab); nil: `POST /hooks/git` accepts unsigned pushes.
    public var gitHookSecret: String?
    /// Watches the apps' `updates:` and writes update commits;
    /// `POST /hooks/registry` wakes it. Nil: no updates are proposed.
    public var updates: UpdateWatch?

    /// Named tokens (`--ui-tokens-file`): each signs in to the web UI and
    /// is a bearer token for the API; its name is the `Rewind-Actor`.
    public var namedTokens = Credentials()
    /// Single sign-on through an OpenID Connect provider (`--oidc-issuer`).
    public var sso: SingleSignOn?
    /// Pages and read endpoints without a session (`--ui-public-read`).
    public var publicRead = false
    /// The session cookie is `Secure` always (else only when a proxy says
    /// `X-Forwarded-Proto: https`).
    public var secureCookies = false

    /// Options with defaults.
    public init(repoPath: String) { self.repoPath = repoPath }

    /// Every token that may act: the API token under `apiTokenName` (an
    /// admin), then the named tokens with their roles. A name or a token used twice is refused.
    public func credentials() throws(RewindError) -> Credentials {
        var all = Credentials()
        if let apiToken { try all.add(name: apiTokenName, token: apiToken, role: .admin) }
        for entry in namedTokens.entries {
            do {
                try all.add(name: entry.name, token: String(decoding: entry.token, as: UTF8.self), role: entry.identity.role, breakGlass: entry.identity.breakGlass)
            } catch {
                throw RewindError(.usage, "the tokens file and the API token clash: \(error.message)", hint: "give the API token another --api-token-name, and each name its own token")
            }
        }
        return all
    }
}

/// `rewind serve`: the reconciler and the HTTP server in one process, shut
/// down gracefully on SIGTERM or SIGINT.
public enum RewindServer {
    /// Runs until SIGTERM or SIGINT.
    public static func run(_ options: ServeOptions, reconciler reconcilerOptions: ReconcilerOptions, logger: Logger) async throws {
        // Refused before anything binds or writes serve.address: the running
        // serve's address stays as it is.
        try refuseBusyStateDirectory(options.stateDirectory)
        _ = try options.credentials()
        let metrics = Metrics()
        let stop = StopFlag()
        var reconcilerOptions = reconcilerOptions
        reconcilerOptions.stop = stop
        reconcilerOptions.observer = metrics
        if let loop = options.syncLoop {
            let previous = reconcilerOptions.onWrite
            reconcilerOptions.onWrite = { previous(); loop.trigger() }
            loop.start(stop: stop, logger: logger)
        }
        options.updates?.start(stop: stop)
        let reconciler = ReconcilerService(options: reconcilerOptions, stop: stop, logger: logger)
        let desk = try RollbackDesk(options: options, metrics: metrics, logger: logger, notifier: reconcilerOptions.notifier)
        let hub = EventHub()
        metrics.gauge("rewind_event_streams", help: "Event streams (GET /api/v1/events) open now; at most \(hub.capacity), more get 503.") { [hub] in Double(hub.subscriberCount) }
        let watcher = EventWatcher(hub: hub, repoPath: options.repoPath, branch: options.branch, stateDirectory: options.stateDirectory, logger: logger)
        let router = Routes(options: options, desk: desk, metrics: metrics, readiness: reconciler.readiness, logger: logger, hub: hub).router()
        let addressFile = (options.stateDirectory ?? "") + "/serve.address"
        let app = Application(
            router: router,
            server: .http1(configuration: .init(
                idleTimeout: .milliseconds(options.readTimeoutMilliseconds),
                httpDecoderConfiguration: .init(maxHeaderFieldSize: options.maxHeaderBytes, maxHeaderListSize: options.maxHeaderBytes, maxHeaderFieldCount: 100))),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "rewind"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? options.port
                logger.notice("rewind serve listening on http://\(options.host):\(port)")
                if options.stateDirectory != nil { _ = FileIO.writeAtomically(addressFile, text: "\(options.host):\(port)\n") }
            },
            logger: logger)
        // Shut down last to first: the event streams end before the server
        // waits for its open requests, and the server before the reconciler.
        let group = ServiceGroup(configuration: .init(services: [.init(service: reconciler), .init(service: app), .init(service: watcher)], logger: logger))
        // SIGTERM and SIGINT only raise a flag (see RewindCommand.prepareProcess);
        // one thread watches it and starts the graceful shutdown.
        let finished = AtomicFlag()
        Thread {
            while !finished.value {
                if StopSignals.wait(milliseconds: 200) {
                    logger.notice("shutting down")
                    Task { await group.triggerGracefulShutdown() }
                    return
                }
            }
        }.start()
        defer { finished.set() }
        try await group.run()
    }
}

extension RewindServer {
    /// Refuses a state directory whose lock another reconciler holds.
    static func refuseBusyStateDirectory(_ directory: String?) throws {
        guard let directory else { return }
        let store = StateStore(directory: directory)
        FileIO.makeDirectory(directory)
        guard let fd = FileIO.tryLock(store.lockFile) else {
            let pid = store.runningPid().map { " (pid \($0))" } ?? ""
            throw StateError("another reconciler\(pid) is running on \(directory)", hint: "stop it first, or pass a different --state-dir", busy: true)
        }
        FileIO.release(fd)
    }
}

/// Whether the reconciler has finished its first pass (`/readyz`).
final class Readiness: Sendable {
    private let ready = AtomicFlag()
    var isReady: Bool { ready.value }
    func markReady() { ready.set() }
}

/// The reconciler loop on a thread of its own (libgit2 handles and the
/// synchronous platform drivers stay off the server's event loops).
/// Logged by the service group at debug level: says which, never the
/// options (they hold the environment, and with it secrets).
extension ReconcilerService: CustomStringConvertible {
    var description: String { "ReconcilerService(\(options.repoPath))" }
}

/// Tokens and the webhook secret never appear in a description.
extension ServeOptions: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { "ServeOptions(\(host):\(port), repo: \(repoPath))" }
    public var debugDescription: String { description }
}

struct ReconcilerService: Service {
    let options: ReconcilerOptions
    let stop: StopFlag
    let logger: Logger
    let readiness = Readiness()

    func run() async throws {
        let options = options, logger = logger, readiness = readiness
        try await withGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
                let thread = Thread {
                    do {
                        let reconciler = try Reconciler(options: options, logger: logger)
                        reconciler.onPass = { readiness.markReady() }
                        try reconciler.run()
                        done.resume()
                    } catch {
                        done.resume(throwing: error)
                    }
                }
                thread.name = "rewind-reconciler"
                thread.start()
            }
        } onGracefulShutdown: {
            stop.stop()
        }
    }
}
