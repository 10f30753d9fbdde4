import FoundationEssentials
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import DeployModel
import Rollback
import SystemSupport

/// The HTTP surface of `rewind serve` (`GET /api/v1/openapi.json`
/// describes all of it; `APIDocument` holds the descriptions).
///
///     GET  /healthz, /readyz, /metrics                     (open)
///     POST /hooks/alertmanager, /hooks/registry, /hooks/git (hook token; webhook signature)
///     GET  /api/v1/...                                     (a token or a session, unless no token is configured or --ui-public-read)
///     POST /api/v1/apps/{app}/rollback, /pin, /unpin, /allow (a bearer token; or a session and X-CSRF-Token; a role)
///     POST /api/v1/apps/{app}/promote, /abort, /pause, /resume (the same; RolloutRoutes.swift)
///     GET  /, /apps/{app}, /releases/{commit}, /audit      (the web UI: WebRoutes.swift)
///
/// Every refusal happens before any work: a missing or wrong token → 401, a
/// missing CSRF token → 403, a body over the limit → 413 (before parsing),
/// malformed JSON → 400.
struct Routes {
    let options: ServeOptions
    let desk: RollbackDesk
    let metrics: Metrics
    let readiness: Readiness
    let logger: Logger
    let deliveries = SeenDeliveries()
    let hub: EventHub
    let sessions: Sessions
    let throttle: SignInThrottle
    /// How often refusals of callers without a valid token are logged, per address.
    let anonymousRefusals: LogBudget
    /// The API token and the named tokens (see `ServeOptions.credentials`).
    let credentials: Credentials

    init(options: ServeOptions, desk: RollbackDesk, metrics: Metrics, readiness: Readiness, logger: Logger,
         hub: EventHub = EventHub(), sessions: Sessions = Sessions(), throttle: SignInThrottle = SignInThrottle(), anonymousRefusals: LogBudget = LogBudget()) {
        self.options = options
        self.throttle = throttle
        self.anonymousRefusals = anonymousRefusals
        self.desk = desk
        self.metrics = metrics
        self.readiness = readiness
        self.logger = logger
        self.hub = hub
        self.sessions = sessions
        // Checked (and refused, naming the clash) before serve binds.
        credentials = (try? options.credentials()) ?? Credentials()
    }

    func router() -> Router<ServeContext> {
        let router = Router(context: ServeContext.self)
        // Before any route: a malformed path parameter is refused first, signed in or not.
        router.add(middleware: PathParameterCheck())
        addProbeRoutes(router)
        addHookRoutes(router)
        addReadRoutes(router)
        addWriteRoutes(router)
        addRolloutRoutes(router)
        on(router, .get, "api/v1/events", "api/v1/events", .read) { request, context in try events(request, closed: context.connectionClosed) }
        addWebRoutes(router)
        // The API's description, from the routes themselves.
        let served = router.routes.map { (method: $0.method, path: $0.path.description) } + [(method: .get, path: "api/v1/openapi.json")]
        let document = APIDocument.json(served, hookToken: options.hookToken != nil)
        on(router, .get, "api/v1/openapi.json", "api/v1/openapi.json", .open) { _, _ in json(200, document) }
        // A known path with another method (TRACE included): 405 and the
        // methods it takes, read from the router so that no route is forgotten.
        router.add(middleware: MethodNotAllowed(routes: router.routes.map { ($0.path.description, $0.method) }))
        return router
    }

    /// Adds a route: who may call it (`Authorized`), and its answers
    /// counted under `label` with errors mapped to their status (`Counted`).
    func on(_ router: Router<ServeContext>, _ method: HTTPRequest.Method, _ path: String, _ label: String, _ access: Access,
            _ handler: @escaping @Sendable (Request, ServeContext) async throws -> Response) {
        router.group(RouterPath(path))
            .add(middleware: Counted(label: label, metrics: metrics, logger: logger))
            .add(middleware: Authorized(access: access, routes: self))
            .on("", method: method, use: handler)
    }

    /// Liveness, readiness and metrics: open to anyone who reaches the port.
    func addProbeRoutes(_ router: Router<ServeContext>) {
        on(router, .get, "healthz", "healthz", .open) { _, _ in text(200, "ok\n") }
        on(router, .get, "readyz", "readyz", .open) { _, _ in
            readiness.isReady ? text(200, "ready\n") : text(503, "the reconciler has not finished its first pass\n")
        }
        on(router, .get, "metrics", "metrics", .open) { _, _ in text(200, metrics.text(), type: "text/plain; version=0.0.4") }
    }

    /// Alertmanager's and the git host's webhooks, each with its own secret.
    func addHookRoutes(_ router: Router<ServeContext>) {
        on(router, .post, "hooks/alertmanager", "hooks/alertmanager", .hook) { request, _ in
            let payload = try AlertmanagerPayload.parse(try await body(request))
            let decisions = await desk.handle(payload, receivedAt: Clock.wallMilliseconds())
            return json(200, .object([("decisions", .array(decisions.map(\.json)))]))
        }
        // Authenticated by the git host's signature over the body, not by a token.
        on(router, .post, "hooks/git", "hooks/git", .open) { request, _ in
            let bytes = try await body(request)
            let delivery = try GitPushHook.verify(headers: request.headers, body: bytes, secret: options.gitHookSecret)
            guard deliveries.firstTime(delivery.id) else {
                return json(200, .object([("result", .string("duplicate")), ("delivery", .optional(delivery.id))]))
            }
            guard let loop = options.syncLoop else {
                return json(200, .object([("result", .string("local repository: nothing to fetch")), ("provider", .string(delivery.provider))]))
            }
            loop.trigger()
            metrics.count("rewind_git_push_hooks_total", [("provider", delivery.provider)])
            return json(202, .object([("result", .string("fetching")), ("provider", .string(delivery.provider)), ("delivery", .optional(delivery.id))]))
        }
        // The distribution registry's push notifications: the apps following a pushed repository are checked at once.
        on(router, .post, "hooks/registry", "hooks/registry", .hook) { request, _ in
            let repositories = try RegistryNotification.parse(try await body(request)).pushedRepositories
            guard let updates = options.updates else {
                return json(200, .object([("result", .string("no updates are watched")), ("repositories", .array(repositories.map { .string($0) }))]))
            }
            for repository in repositories { updates.notify(repository: repository) }
            metrics.count("rewind_registry_hooks_total", [("result", repositories.isEmpty ? "ignored" : "checking")])
            return json(202, .object([("result", .string(repositories.isEmpty ? "no tag pushed" : "checking")), ("repositories", .array(repositories.map { .string($0) }))]))
        }
    }

    /// The API's reads: status, apps, releases, incidents, the audit.
    func addReadRoutes(_ router: Router<ServeContext>) {
        on(router, .get, "api/v1/status", "api/v1/status", .read) { _, _ in json(200, try await desk.status().json) }
        on(router, .get, "api/v1/fleet", "api/v1/fleet", .read) { _, _ in json(200, await desk.fleet().json) }
        on(router, .get, "api/v1/apps", "api/v1/apps", .read) { _, _ in json(200, .array(try await desk.status().apps.map(\.json))) }
        on(router, .get, "api/v1/apps/:app/releases", "api/v1/apps/releases", .read) { request, context in
            let limit = request.uri.queryParameters.get("limit", as: Int.self) ?? 20
            guard limit >= 0 else { throw RequestError(400, "limit must be 0 (all) or a positive number") }
            let bytes = try await desk.releases(app: context.parameters.get("app"), limit: limit)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        // One resource named by the path's last parameter.
        let resources: [(path: String, route: String, parameter: String, read: @Sendable (RollbackDesk, String) async throws -> JSON)] = [
            ("api/v1/apps/:app", "api/v1/apps/app", "app", { try await $0.app($1) }),
            ("api/v1/releases/:commit", "api/v1/releases", "commit", { try await $0.release($1).json }),
            ("api/v1/incidents/:commit", "api/v1/incidents", "commit", { try await $0.incident($1) }),
        ]
        for resource in resources {
            on(router, .get, resource.path, resource.route, .read) { _, context in
                guard let name = context.parameters.get(resource.parameter) else { throw RequestError(404, "no \(resource.parameter) in the path") }
                return json(200, try await resource.read(desk, name))
            }
        }
        on(router, .get, "api/v1/audit", "api/v1/audit", .read) { request, _ in
            let q = request.uri.queryParameters
            let apps = q.getAll("app").flatMap { $0.split(separator: ",").map(String.init) }
            return json(200, try await desk.audit(apps: apps, since: q.get("since"), until: q.get("until"), reworkWindow: q.get("reworkWindow")).json)
        }
    }

    /// The API's writes: rollback, pin and unpin (operators), allow
    /// (admins), each a commit by the caller (`context.actor`).
    func addWriteRoutes(_ router: Router<ServeContext>) {
        on(router, .post, "api/v1/apps/:app/rollback", "api/v1/apps/rollback", .write(.operator)) { request, context in
            let input = try RollbackInput.parse(try await body(request))
            guard let app = context.parameters.get("app"), let actor = context.actor else { throw RequestError(404, "no app in the path") }
            if input.version != nil { throw RequestError(400, "field 'version' is for allow; a rollback's target is 'to'") }
            if input.force { try actor.require(.admin, to: "force a rollback past its guards") }
            return json(200, try await desk.write(.rollback(app: app, to: input.to), reason: input.reason, dryRun: input.dryRun, force: input.force, as: actor).json)
        }
        // Lets a rolled-back version be proposed by updates again.
        on(router, .post, "api/v1/apps/:app/allow", "api/v1/apps/allow", .write(.admin)) { request, context in
            let input = try RollbackInput.parse(try await body(request))
            guard let app = context.parameters.get("app"), let actor = context.actor else { throw RequestError(404, "no app in the path") }
            if input.force { throw RequestError(400, "field 'force' is for rollback") }
            guard let version = input.version, input.to == nil else { throw RequestError(400, "allow needs field 'version' (a rolled-back tag, version label or digest), and no 'to'") }
            return json(200, try await desk.write(.allow(app: app, version: version), reason: input.reason, dryRun: input.dryRun, as: actor).json)
        }
        for unpin in [false, true] {
            on(router, .post, "api/v1/apps/:app/\(unpin ? "unpin" : "pin")", unpin ? "api/v1/apps/unpin" : "api/v1/apps/pin", .write(.operator)) { request, context in
                let input = try RollbackInput.parse(try await body(request))
                guard let app = context.parameters.get("app"), let actor = context.actor else { throw RequestError(404, "no app in the path") }
                if unpin, input.to != nil { throw RequestError(400, "field 'to' is for pin; unpin releases the hold") }
                if input.version != nil { throw RequestError(400, "field 'version' is for allow") }
                if input.force { throw RequestError(400, "field 'force' is for rollback") }
                return json(200, try await desk.write(unpin ? .unpin(app: app) : .pin(app: app, to: input.to), reason: input.reason, dryRun: input.dryRun, as: actor).json)
            }
        }
    }

    /// `GET /api/v1/events`: Server-Sent Events (`status`, `tip`,
    /// `rollback`, `notes`) until the client goes or the server stops.
    /// A client that hangs up ends its stream at once (`closed`), not at
    /// the next event or keep-alive: its place among the 256 is free again.
    private func events(_ request: Request, closed: EventLoopFuture<Void>) throws(RequestError) -> Response {
        guard let stream = hub.subscribe(until: closed) else {
            throw RequestError(503, "too many event streams are open, or the server is stopping; retry later")
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: ResponseBody { writer in
            try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
            for await event in stream { try await writer.write(ByteBuffer(string: event.wire)) }
            try await writer.finish(nil)
        })
    }

    /// The body, refused with 413 when larger than the limit (checked on
    /// Content-Length first, then while reading).
    func body(_ request: Request) async throws -> [UInt8] {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > options.bodyLimit {
            throw RequestError(413, "request body of \(length) bytes is over the limit of \(options.bodyLimit)")
        }
        do {
            var buffer = try await request.body.collect(upTo: options.bodyLimit)
            return buffer.readBytes(length: buffer.readableBytes) ?? []
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw RequestError(413, "request body is over the limit of \(options.bodyLimit) bytes")
        } catch is NIOTooManyBytesError {
            // A chunked body has no Content-Length: the limit is found while reading.
            throw RequestError(413, "request body is over the limit of \(options.bodyLimit) bytes")
        } catch {
            throw RequestError(400, "the request body could not be read")
        }
    }
}

/// A request's context: Hummingbird's, plus the peer's address (the
/// sign-in throttle counts failures per address).
struct ServeContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?
    /// Completes when the client's connection closes.
    let connectionClosed: EventLoopFuture<Void>
    /// Who writes (`Access.write`), set once the caller is authorized.
    var actor: Actor?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        connectionClosed = source.channel.closeFuture
    }

    /// The address without the port ("unknown" when there is none).
    var peer: String { remoteAddress?.ipAddress ?? "unknown" }
}

/// The body of `POST /api/v1/apps/{app}/rollback`: every field optional,
/// an unknown field or a wrong type refused with 400 naming it (a misspelt
/// `dryRun` must never become a real rollback).
struct RollbackInput: Decodable {
    var to: String?
    var reason: String?
    var dryRun = false
    /// For allow: the rolled-back version (a tag, version label or digest).
    var version: String?
    /// For rollback: past the guards (an irreversible migration, a missing artifact); admins only.
    var force = false

    static let fields = ["to", "reason", "dryRun", "version", "force"]

    private struct Key: CodingKey {
        let stringValue: String
        init(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    private struct UnknownField: Error { let name: String }
    private struct WrongType: Error { let name: String }

    init() {}

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        for key in container.allKeys {
            do {
                switch key.stringValue {
                case "to": to = try container.decodeIfPresent(String.self, forKey: key)
                case "reason": reason = try container.decodeIfPresent(String.self, forKey: key)
                case "dryRun": dryRun = try container.decodeIfPresent(Bool.self, forKey: key) ?? false
                case "version": version = try container.decodeIfPresent(String.self, forKey: key)
                case "force": force = try container.decodeIfPresent(Bool.self, forKey: key) ?? false
                default: throw UnknownField(name: key.stringValue)
                }
            } catch is DecodingError {
                throw WrongType(name: key.stringValue)
            }
        }
    }

    static func parse(_ bytes: [UInt8]) throws(RequestError) -> RollbackInput {
        if bytes.allSatisfy({ $0 == 32 || $0 == 10 || $0 == 13 || $0 == 9 }) { return RollbackInput() }
        do {
            return try JSONDecoder().decode(RollbackInput.self, from: Data(bytes))
        } catch let error as UnknownField {
            let near = Spelling.nearest(error.name, in: fields).map { "; did you mean '\($0)'?" } ?? ""
            throw RequestError(400, "unknown field '\(Bounded.text(error.name, limit: 64))'\(near) (the fields are \(fields.joined(separator: ", ")))")
        } catch let error as WrongType {
            throw RequestError(400, "field '\(error.name)' must be \(["dryRun", "force"].contains(error.name) ? "true or false" : "a string")")
        } catch {
            throw RequestError(400, "the body must be a JSON object such as {\"to\": \"#3\", \"reason\": \"...\", \"dryRun\": true}")
        }
    }
}

func text(_ status: Int, _ body: String, type: String = "text/plain; charset=utf-8") -> Response {
    Response(status: .init(code: status), headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(string: body)))
}

func json(_ status: Int, _ value: JSON) -> Response {
    Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: value.bytes(indent: nil) + [10])))
}

/// Compares two secrets without leaking where they differ through timing.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var difference = UInt8(a.count == b.count ? 0 : 1)
    for i in 0..<max(a.count, b.count) {
        difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
    }
    return difference == 0
}

extension AlertDecision {
    var json: JSON {
        .object([("alertname", .string(alertname)), ("app", .optional(app)), ("fingerprint", .optional(fingerprint)),
                 ("decision", .string(outcome.rawValue)), ("reason", .string(reason)), ("commit", .optional(commit))])
    }
}
