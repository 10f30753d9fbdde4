import DeployModel
import FoundationEssentials
import HTTPTypes
import Hummingbird
import Logging
import SystemSupport

/// Path parameters as the API's document describes them
/// (`APIDocument.parameterPatterns`): a malformed commit id is 400, a
/// malformed app name 404 (no app can have it), before the handler and
/// before the web UI's redirect to the sign-in form.
struct PathParameterCheck<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let commit = context.parameters.get("commit") { try requireCommitID(commit) }
        if let app = context.parameters.get("app"), !RepoConfig.isValidAppName(app) {
            throw RequestError(404, "unknown app '\(Bounded.text(app, limit: 64))' (app names are lower-case letters, digits and dashes)")
        }
        return try await next(request, context)
    }

}

/// Only commit ids from a URL (4 to 40 hexadecimal digits), else 400: a
/// revision expression is not for libgit2's parser.
func requireCommitID(_ text: String) throws(RequestError) {
    guard (4...40).contains(text.utf8.count), text.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) || (65...70).contains($0) }) else {
        throw RequestError(400, "'\(Bounded.text(text, limit: 64))' is not a commit id (4 to 40 hexadecimal digits)")
    }
}

/// A known path asked with a method it does not take gets 405 and `Allow`
/// instead of the router's 404. Added after every route, it wraps only the
/// router's not-found answer.
struct MethodNotAllowed<Context: RequestContext>: RouterMiddleware {
    let patterns: [(segments: [Substring], method: HTTPRequest.Method)]

    init(routes: [(path: String, method: HTTPRequest.Method)]) {
        patterns = routes.map { ($0.path.split(separator: "/"), $0.method) }
    }

    /// The methods a path takes (a capture, `{name}` as the router writes
    /// it, or `*`, matches any one segment).
    func allowed(_ path: String) -> [String] {
        let segments = path.split(separator: "/")
        let methods = patterns.filter { pattern in
            pattern.segments.count == segments.count && zip(pattern.segments, segments).allSatisfy { $0.hasPrefix("{") || $0.hasPrefix(":") || $0 == "*" || $0 == $1 }
        }.map(\.method.rawValue)
        return Set(methods).sorted()
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let allowed = allowed(request.uri.path)
            guard !allowed.isEmpty else { throw error }
            let allow = allowed.joined(separator: ", ")
            var response = json(405, .object([("error", .string("\(request.method.rawValue) is not allowed here; use \(allow)"))]))
            response.headers[.allow] = allow
            return response
        }
    }
}

/// Who may call a route: checked by `Authorized` before its handler runs.
enum Access: Sendable {
    /// Anyone who reaches the port (probes, metrics, the web UI, whose pages sign in themselves).
    case open
    /// The hook token (`--hook-token-file`), when one is configured.
    case hook
    /// A token or a session, unless reads are public (`Routes.authorizeRead`).
    case read
    /// A bearer token, or a session with its CSRF token, of at least this
    /// role; the caller becomes `context.actor`.
    case write(Role)
}

/// Refuses a caller the route's `Access` does not let in (401 or 403,
/// before the handler and before the body is read). A refusal is logged
/// with the caller (its name and role, or its address when it is nobody).
struct Authorized: RouterMiddleware {
    typealias Context = ServeContext
    let access: Access
    let routes: Routes

    func handle(_ request: Request, context: ServeContext, next: (Request, ServeContext) async throws -> Response) async throws -> Response {
        var context = context
        do {
            switch access {
            case .open: break
            case .hook: try routes.authorizeHook(request)
            case .read: try routes.authorizeRead(request)
            case .write(let role): context.actor = try routes.authorizeWrite(request, needs: role)
            }
        } catch {
            routes.logRefusal(request, peer: context.peer, error)
            throw error
        }
        do {
            return try await next(request, context)
        } catch let error as RequestError where error.code == 403 {
            // A handler's own refusal of the role (a forced rollback by an operator).
            routes.logRefusal(request, peer: context.peer, error)
            throw error
        }
    }
}

/// Every answer of a route, counted in `rewind_http_requests_total` under
/// the route's label. A `RequestError` becomes its JSON answer; any other
/// error stays in the log, and the client learns only that it failed (500).
struct Counted<Context: RequestContext>: RouterMiddleware {
    let label: String
    let metrics: Metrics
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response: Response
        do {
            response = try await next(request, context)
        } catch let error as RequestError {
            response = error.jsonResponse
        } catch {
            logger.error("\(label): \(error)")
            response = json(500, .object([("error", .string("internal error; the server log has the details"))]))
        }
        metrics.count("rewind_http_requests_total", [("route", label), ("code", String(response.status.code))])
        return response
    }
}
