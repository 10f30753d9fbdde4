import HTTPTypes
import Hummingbird
import DeployModel
import Rollback
import SystemSupport

/// Who is calling, and whether they may: bearer tokens, sessions, CSRF,
/// roles, the hook token, and the log line of a refusal.
extension Routes {
    /// Who is calling: the owner of a bearer token, or of a live session.
    /// A wrong bearer token is nobody, whatever cookie comes with it.
    struct Caller {
        let identity: Identity
        let session: Sessions.Session?
    }

    func caller(_ request: Request) -> Caller? {
        if request.headers[.authorization] != nil {
            guard let token = Self.bearerToken(request), let identity = credentials.lookup(token) else { return nil }
            return Caller(identity: identity, session: nil)
        }
        guard let session = self.session(request) else { return nil }
        return Caller(identity: session.identity, session: session)
    }

    /// The live session of the request's cookie.
    func session(_ request: Request) -> Sessions.Session? {
        sessions.session(request.cookies[Sessions.cookieName]?.value)
    }

    /// The token of `Authorization: Bearer <token>`.
    static func bearerToken(_ request: Request) -> String? {
        let header = request.headers[.authorization] ?? ""
        let prefix = "Bearer "
        return header.hasPrefix(prefix) ? String(header.dropFirst(prefix.count)) : nil
    }

    /// Reads need a token or a session (every role reads), unless no token
    /// is configured at all (nobody could sign in) or `--ui-public-read` is given.
    func authorizeRead(_ request: Request) throws(RequestError) {
        if signInOff || options.publicRead { return }
        guard caller(request) != nil else { throw RequestError(401, "sign in, or send Authorization: Bearer <token>") }
    }

    /// Writes need a bearer token (trigger `api`), or a session whose CSRF
    /// token comes in `X-CSRF-Token` (trigger `ui`), of at least `role`.
    /// The token's name is the commit's `Rewind-Actor`.
    func authorizeWrite(_ request: Request, needs role: Role) throws(RequestError) -> Actor {
        guard !signInOff else {
            throw RequestError(401, "no API token is configured; start rewind serve with --api-token-file, REWIND_API_TOKEN or --ui-tokens-file")
        }
        guard let caller = caller(request) else { throw RequestError(401, "missing or wrong bearer token") }
        var trigger = RollbackTrailers.TriggerKind.api
        if let session = caller.session {
            guard let given = request.headers[Self.csrfHeader], constantTimeEqual(Array(given.utf8), Array(session.csrf.utf8)) else {
                throw RequestError(403, "missing or wrong CSRF token (send the page's token in X-CSRF-Token)")
            }
            trigger = .ui
        }
        let actor = Actor(caller.identity, trigger: trigger)
        try actor.require(role)
        return actor
    }

    /// A refused request in the log, with who asked: the caller's name
    /// and role, or the address of a caller without a valid token. Never a token.
    /// A caller without a valid token is logged at most once per address
    /// every 10 s (with how many were not), so that nobody can flood the
    /// log; a known caller's refusals are each logged.
    func logRefusal(_ request: Request, peer: String, _ error: RequestError) {
        let line = "refused \(request.method.rawValue) \(Bounded.text(request.uri.path, limit: 200))"
        if let known = caller(request) {
            logger.warning("\(line) for \(known.identity.described): \(error.code) \(error.message)")
        } else if let quiet = anonymousRefusals.admit(peer) {
            let more = quiet > 0 ? " (and \(quiet) more from this address not logged)" : ""
            logger.warning("\(line) for an unknown caller from \(peer): \(error.code) \(error.message)\(more)")
        }
    }

    static let csrfHeader = HTTPField.Name("X-CSRF-Token")!

    /// Nobody can sign in: no token and no single sign-on (then the pages are read-only and every write is 401).
    var signInOff: Bool { credentials.isEmpty && options.sso == nil }

    /// Checks the hook token (`Authorization: Bearer <token>`) in constant
    /// time; without one configured, hooks are open.
    func authorizeHook(_ request: Request) throws(RequestError) {
        guard let token = options.hookToken else { return }
        guard let given = Self.bearerToken(request), constantTimeEqual(Array(given.utf8), Array(token.utf8)) else {
            throw RequestError(401, "missing or wrong bearer token")
        }
    }
}
