import DeployModel
import FoundationEssentials
import HTTPTypes
import Hummingbird
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
