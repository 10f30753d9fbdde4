import ArgumentParser
import Artifacts
import Containers
import RewindCLI
import DeployModel
import Logging
import Reconciler
import ReconcilerStatus
import Remote
import Rollback
import Server
import SystemSupport
import Updates

#if canImport(Glibc)
import Glibc
#endif

/// `rewind serve`: the reconciler plus the HTTP server.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: DaemonHandOver.abstract("serve"),
        discussion: """
            Binds 127.0.0.1:8484 by default. Tokens come from files or the environment \
            (REWIND_API_TOKEN, REWIND_HOOK_TOKEN) and are never logged. SIGTERM or SIGINT shuts \
            down gracefully: the server stops accepting, the reconciler finishes its step and \
            stops the processes it supervises (unless --keep-apps).
            """)

    @OptionGroup var loop: LoopOptions

    @Option(help: "Address to bind (before the fleet's --host NAME, this option was --host).")
    var address: String = "127.0.0.1"

    @Option(help: "Port to bind (0: any free port; the address is logged and written to <state>/serve.address).")
    var port: Int = 8484

    @Option(help: "File holding the bearer token for POST /api/v1/... (else REWIND_API_TOKEN).")
    var apiTokenFile: String?

    @Option(help: "The API token's name: API rollbacks record it as their Rewind-Actor trailer.")
    var apiTokenName: String = "api-token"

    @Option(help: "File holding the bearer token Alertmanager sends to /hooks/... (else REWIND_HOOK_TOKEN; none: hooks are open).")
    var hookTokenFile: String?

    @Option(help: "File holding the secret push webhooks are signed with (else REWIND_GIT_HOOK_SECRET; none: POST /hooks/git accepts unsigned pushes).")
    var gitHookSecretFile: String?

    @Option(help: "File of named tokens, one 'name: token' per line: each signs in to the web UI and is a bearer token for the API; the name becomes Rewind-Actor.")
    var uiTokensFile: String?

    @Flag(help: "Let anyone who reaches the server read the web UI's pages and the API's GET endpoints without signing in (writes still need a token).")
    var uiPublicRead = false

    @Flag(help: "Always mark the session cookie Secure (it is anyway when a proxy sends X-Forwarded-Proto: https).")
    var uiSecureCookie = false

    @Option(help: ArgumentHelp("Single sign-on: the OpenID Connect provider's issuer URL (discovery at <issuer>/.well-known/openid-configuration).", valueName: "url"))
    var oidcIssuer: String?

    @Option(help: "Single sign-on: this server's client id at the provider.")
    var oidcClientId: String?

    @Option(help: "Single sign-on: file holding the client secret (none: a public client with PKCE only).")
    var oidcClientSecretFile: String?

    @Option(help: "Single sign-on: file mapping groups to roles, one 'group: role' per line (viewer, operator, admin).")
    var oidcRolesFile: String?

    @Option(help: "Single sign-on: the ID token claim that lists the person's groups.")
    var oidcGroupsClaim: String = "groups"

    @Option(help: ArgumentHelp("This server's address as browsers reach it, for single sign-on's callback (default: http://ADDRESS:PORT).", valueName: "url"))
    var publicUrl: String?

    @Option(help: "The alert label that names the app.")
    var alertAppLabel: String = "app"

    @Option(help: "Act only on alerts with this severity label (repeatable; default: any).")
    var alertSeverity: [String] = []

    @Option(help: "Close a connection that sends nothing for this long (mid-headers, mid-body or idle).")
    var readTimeout = Duration(milliseconds: 10_000)

    @Flag(help: "Propose no updates: apps' updates: sections are not watched (another serve proposes them, or nobody should).")
    var noUpdates = false

    // Last: the shared repository options come after the command's own in --help.
    @OptionGroup var repoOptions: RepoOptions

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        if oidcIssuer != nil && (oidcClientId == nil || oidcRolesFile == nil) {
            throw ValidationError("--oidc-issuer needs --oidc-client-id and --oidc-roles-file (which groups get which role)")
        }
        if oidcIssuer == nil && (oidcClientId != nil || oidcRolesFile != nil || oidcClientSecretFile != nil) {
            throw ValidationError("--oidc-client-id, --oidc-client-secret-file and --oidc-roles-file need --oidc-issuer")
        }
        if oidcIssuer != nil && port == 0 && publicUrl == nil {
            throw ValidationError("--oidc-issuer with --port 0 needs --public-url (the provider sends browsers back to it)")
        }
        if let publicUrl, !(publicUrl.hasPrefix("http://") || publicUrl.hasPrefix("https://")) {
            throw ValidationError("--public-url must be an http:// or https:// URL, such as https://rewind.example.com")
        }
    }

    /// Single sign-on's settings and provider (discovery and keys), when --oidc-issuer is given.
    func singleSignOn(boundPort: Int) async throws -> SingleSignOn? {
        guard let oidcIssuer, let oidcClientId, let oidcRolesFile else { return nil }
        let roles = try GroupRoles.load(file: oidcRolesFile)
        let secret = try secret(file: oidcClientSecretFile, environment: "REWIND_OIDC_CLIENT_SECRET", what: "OIDC client secret")
        let base = publicUrl ?? "http://\(address.contains(":") ? "[\(address)]" : address):\(boundPort)"
        var settings = SingleSignOn.Settings(issuer: oidcIssuer, clientID: oidcClientId, clientSecret: secret, publicURL: base, roles: roles, caFile: loop.caFile)
        settings.groupsClaim = oidcGroupsClaim
        return try await SingleSignOn.start(settings)
    }

    func run() async throws {
        ProcessRole.markLongRunning()
        let logger = loop.bootstrapLogging()
        do {
            let sync = try loop.syncLoop(repoOptions)
            let repo = try sync.map { try DeployRepository(path: $0.mirror.path, branch: repoOptions.branch) } ?? repoOptions.open()
            var reconcile = try loop.reconcilerOptions(repoOptions, mirror: sync?.mirror)
            reconcile.stateDirectory = loop.stateDir ?? StateStore.defaultDirectory(repo)
            var serve = ServeOptions(repoPath: reconcile.repoPath)
            serve.syncLoop = sync
            serve.gitHookSecret = try secret(file: gitHookSecretFile, environment: "REWIND_GIT_HOOK_SECRET", what: "webhook secret")
            serve.branch = repoOptions.branch
            serve.stateDirectory = reconcile.stateDirectory
            serve.artifactRoot = reconcile.artifactRoot
            let artifacts = try reconcile.artifactStore(stateDirectory: reconcile.stateDirectory ?? StateStore.defaultDirectory(repo))
            serve.artifacts = EngineAwareAvailability(base: artifacts, engine: loop.containerEngine)
            if !noUpdates {
                // A tag list is small: a registry that has not answered in 30 s is tried again at the next check.
                var checking = artifacts.options
                checking.timeoutMilliseconds = 30_000
                serve.updates = UpdateWatch(repoPath: reconcile.repoPath, branch: repoOptions.branch, stateDirectory: reconcile.stateDirectory,
                                            artifacts: ArtifactStore(options: checking), logger: logger, onWrite: { sync?.trigger() },
                                            onProposed: { [notifier = reconcile.notifier] app, check in
                                                notifier?.send(RollbackEvent(.updateProposed, app: app, trigger: "registry", commit: check.commit, reason: check.message))
                                            })
            }
            serve.host = address
            serve.port = port
            serve.apiToken = try secret(file: apiTokenFile, environment: "REWIND_API_TOKEN", what: "API token")
            serve.apiTokenName = apiTokenName
            if let uiTokensFile {
                serve.namedTokens = try Credentials.load(file: uiTokensFile)
                if let mode = FileIO.permissions(uiTokensFile), mode & 0o077 != 0 {
                    logger.warning("the tokens file \(uiTokensFile) can be read by other users (mode \(String(mode, radix: 8))): chmod 600 \(uiTokensFile)")
                }
            }
            serve.publicRead = uiPublicRead
            serve.secureCookies = uiSecureCookie
            serve.hookToken = try secret(file: hookTokenFile, environment: "REWIND_HOOK_TOKEN", what: "hook token")
            serve.appLabel = alertAppLabel
            serve.readTimeoutMilliseconds = readTimeout.milliseconds
            serve.severities = Set(alertSeverity)
            serve.sso = try await singleSignOn(boundPort: port)
            try await RewindServer.run(serve, reconciler: reconcile, logger: logger)
        } catch let error as RewindError {
            Terminal.error("error: \(error)")
            throw ExitCode(exitStatus(for: error.code))
        } catch let error as StateError {
            Terminal.error("error: \(error)")
            throw ExitCode(error.busy ? 5 : 70)
        }
    }

    /// A token from a file (first line) or the environment; never printed.
    private func secret(file: String?, environment: String, what: String) throws -> String? {
        if let file { return try Secret.fromFile(file, what: what).reveal() }
        return Environment.value(environment)
    }
}
