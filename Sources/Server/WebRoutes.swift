import Audit
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Rollback
import SystemSupport

/// The web UI's routes: pages rendered by `WebPage`, forms that write
/// through the desk exactly as the CLI and the API do (trigger `ui`, the
/// signed-in name as `Rewind-Actor`), and the embedded assets.
///
///     GET  /login, POST /login, POST /logout
///     GET  /, /apps/{app}?page=N, /releases/{commit}, /audit?since=&until=
///     GET  /apps/{app}/rollback?to=REV                 (the preview: a dry run)
///     POST /apps/{app}/rollback, /apps/{app}/pin, /apps/{app}/unpin   (session and CSRF token)
///     GET  /ui/{asset}                                 (ui.css, ui.js, audit.css)
extension Routes {
    /// No inline script, nothing from elsewhere, no framing.
    static let contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    func addWebRoutes(_ router: Router<ServeContext>) {
        addSessionRoutes(router)
        addPageRoutes(router)
        addFormRoutes(router)
        addAllowRoute(router)
    }

    /// Assets, sign-in and sign-out.
    func addSessionRoutes(_ router: Router<ServeContext>) {
        on(router, .get, "ui/:asset", "ui/asset", .open) { request, context in
            asset(context.parameters.get("asset") ?? "", ifNoneMatch: request.headers[.ifNoneMatch])
        }
        on(router, .get, "login", "login", .open) { request, _ in
            let next = Self.safeNext(request.uri.queryParameters.get("next"))
            if session(request) != nil { return Self.redirect(next) }
            return page(200, WebPage.signIn(next: next, problem: signInOff ? Self.noTokens : nil, sso: options.sso != nil))
        }
        on(router, .post, "login", "login", .open) { request, context in await signIn(request, from: context.peer) }
        addSingleSignOnRoutes(router)
        on(router, .post, "logout", "logout", .open) { request, context in
            await webForm(request, needs: .viewer, peer: context.peer) { _, _, _ in
                sessions.end(request.cookies[Sessions.cookieName]?.value)
                var response = Self.redirect("/login")
                response.headers[.setCookie] = cookie("", maxAge: 0, request: request)
                return response
            }
        }
    }

    /// The pages: overview, an app, a release, the fleet, the audit.
    func addPageRoutes(_ router: Router<ServeContext>) {
        on(router, .get, "/", "ui/overview", .open) { request, _ in
            await webPage(request) { viewer in page(200, WebPage.overview(try await desk.status(), viewer: viewer)) }
        }
        on(router, .get, "apps/:app", "ui/app", .open) { request, context in
            await webPage(request) { viewer in
                let name = context.parameters.get("app") ?? ""
                let number = request.uri.queryParameters.get("page") ?? "1"
                guard let page = Int(number), page >= 1, page <= 1_000_000 else { throw RequestError(400, "page '\(Bounded.text(number, limit: 32))' is not a page number (1, 2, ...)") }
                let notice = request.uri.queryParameters.get("done").flatMap { Self.notices[$0] }
                return self.page(200, WebPage.app(try await desk.appPage(name, page: page), viewer: viewer, notice: notice))
            }
        }
        on(router, .get, "releases/:commit", "ui/release", .open) { request, context in
            await webPage(request) { viewer in
                page(200, WebPage.release(try await desk.release(context.parameters.get("commit") ?? ""), viewer: viewer))
            }
        }
        on(router, .get, "fleet", "ui/fleet", .open) { request, _ in
            await webPage(request) { viewer in page(200, WebPage.fleet(await desk.fleet(), viewer: viewer)) }
        }
        on(router, .get, "audit", "ui/audit", .open) { request, _ in
            await webPage(request) { viewer in
                let q = request.uri.queryParameters
                let since = Self.nonEmpty(q.get("since")) ?? "30d"
                let until = Self.nonEmpty(q.get("until")) ?? "now"
                do {
                    return page(200, WebPage.audit(try await desk.audit(since: since, until: until), since: since, until: until, problem: nil, viewer: viewer))
                } catch let error as RequestError where error.code == 400 {
                    return page(400, WebPage.audit(nil, since: since, until: until, problem: error.message, viewer: viewer))
                }
            }
        }
    }

    /// The rollback preview and the forms that write: rollback, pin, unpin.
    func addFormRoutes(_ router: Router<ServeContext>) {
        on(router, .get, "apps/:app/rollback", "ui/rollback-preview", .open) { request, context in
            await webPage(request) { viewer in
                let app = context.parameters.get("app") ?? ""
                let to = Self.nonEmpty(request.uri.queryParameters.get("to"))
                return await preview(app: app, to: to, reason: "", force: false, refusal: nil, viewer: viewer)
            }
        }
        on(router, .post, "apps/:app/rollback", "ui/rollback", .open) { request, context in
            await webForm(request, needs: .operator, peer: context.peer) { actor, form, viewer in
                let app = context.parameters.get("app") ?? ""
                let to = Self.nonEmpty(form["to"])
                let reason = (form["reason"] ?? "").trimmingCharacters()
                let force = form["force"] == "1"
                if force { try actor.require(.admin, to: "roll back across a guard") }
                guard !reason.isEmpty else {
                    return await preview(app: app, to: to, reason: reason, force: force, refusal: RequestError(400, "a reason is required: say why you roll back"), viewer: viewer)
                }
                do {
                    let written = try await desk.write(.rollback(app: app, to: to), reason: reason, dryRun: false, force: force, as: actor)
                    switch written.outcome {
                    case .written(let commit?): return Self.redirect("/releases/\(commit.hex)")
                    case .alreadyDone, .written(nil), .planned: return Self.redirect("/apps/\(HTTPEndpoint.encode(app))?done=already")
                    }
                } catch let error as RequestError {
                    return await preview(app: app, to: to, reason: reason, force: force, refusal: error, viewer: viewer)
                }
            }
        }
        for unpin in [false, true] {
            let verb = unpin ? "unpin" : "pin"
            on(router, .post, "apps/:app/\(verb)", "ui/\(verb)", .open) { request, context in
                await webForm(request, needs: .operator, peer: context.peer) { actor, form, _ in
                    let app = context.parameters.get("app") ?? ""
                    let reason = (form["reason"] ?? "").trimmingCharacters()
                    guard !reason.isEmpty else { throw RequestError(400, "a reason is required to \(verb) \(Bounded.text(app, limit: 64))") }
                    let to = unpin ? nil : Self.nonEmpty(form["to"]?.trimmingCharacters())
                    let written = try await desk.write(unpin ? .unpin(app: app) : .pin(app: app, to: to), reason: reason, dryRun: false, as: actor)
                    // Already pinned (or not pinned at all): nothing written, and the page says so.
                    if case .alreadyDone = written.outcome { return Self.redirect("/apps/\(HTTPEndpoint.encode(app))?done=already") }
                    return Self.redirect("/apps/\(HTTPEndpoint.encode(app))?done=\(verb)ned")
                }
            }
        }
    }

    /// The web UI's allow of a blocked update (the same commit as `rewind allow`).
    func addAllowRoute(_ router: Router<ServeContext>) {
        on(router, .post, "apps/:app/allow", "ui/allow", .open) { request, context in
            await webForm(request, needs: .admin, peer: context.peer) { actor, form, _ in
                let app = context.parameters.get("app") ?? ""
                let reason = (form["reason"] ?? "").trimmingCharacters()
                guard !reason.isEmpty else { throw RequestError(400, "a reason is required to allow a version of \(Bounded.text(app, limit: 64)) again") }
                guard let version = Self.nonEmpty(form["version"]?.trimmingCharacters()) else { throw RequestError(400, "name the version to allow") }
                let written = try await desk.write(.allow(app: app, version: version), reason: reason, dryRun: false, as: actor)
                if case .alreadyDone = written.outcome { return Self.redirect("/apps/\(HTTPEndpoint.encode(app))?done=already") }
                return Self.redirect("/apps/\(HTTPEndpoint.encode(app))?done=allowed")
            }
        }
    }

    /// A query or form value, nil when absent or empty.
    static func nonEmpty(_ value: String?) -> String? { value?.isEmpty == false ? value : nil }

    static let notices = ["pinned": "Pinned: the commit is on the branch.", "unpinned": "Unpinned: the commit is on the branch.",
                          "allowed": "Allowed: the commit is on the branch; the next update check may propose that version.",
                          "already": "Nothing to do: the app is already there."]
    static let noTokens = "Sign-in is off: rewind serve has no token (start it with --api-token-file or --ui-tokens-file)."

    /// The dry run of a rollback and its confirmation form (or the guard's refusal).
    private func preview(app: String, to: String?, reason: String, force: Bool, refusal: RequestError?, viewer: WebPage.Viewer) async -> Response {
        var plan: DeskWrite?
        var problem = refusal
        if problem == nil || problem?.code == 400 {
            do {
                plan = try await desk.write(.rollback(app: app, to: to), reason: reason.isEmpty ? nil : reason, dryRun: true, force: force && viewer.canAdminister,
                                            as: Actor(Identity(name: viewer.name ?? "preview", role: viewer.role ?? .viewer), trigger: .ui))
            } catch {
                if problem == nil { problem = error }
            }
        }
        return page(problem?.code ?? 200, WebPage.rollbackPreview(app: app, to: to, plan: plan, refusal: problem, force: force, reason: reason, viewer: viewer))
    }

    // MARK: Sessions

    private func signIn(_ request: Request, from peer: String) async -> Response {
        if let wait = throttle.refusal(peer) {
            metrics.count("rewind_ui_sign_ins_total", [("result", "throttled")])
            var response = page(429, WebPage.signIn(next: "/", problem: "Too many wrong tokens from this address: try again in \(wait) s.", sso: options.sso != nil))
            response.headers[.retryAfter] = String(wait)
            return response
        }
        let bytes: [UInt8]
        do { bytes = try await body(request) } catch { return page(413, WebPage.signIn(next: "/", problem: "The form is too large.")) }
        let form = FormBody.parse(bytes)
        let next = Self.safeNext(form["next"])
        guard !credentials.isEmpty else { return page(401, WebPage.signIn(next: next, problem: signInOff ? Self.noTokens : "Sign-in with a token is off: use single sign-on.", sso: options.sso != nil)) }
        guard let identity = credentials.lookup((form["token"] ?? "").trimmingCharacters()) else {
            throttle.failed(peer)
            metrics.count("rewind_ui_sign_ins_total", [("result", "refused")])
            logger.warning("web UI: a sign-in with a wrong token from \(peer) was refused")
            return page(401, WebPage.signIn(next: next, problem: "That token is not known. Use the API token or your named token.", sso: options.sso != nil))
        }
        throttle.succeeded(peer)
        let started = sessions.start(identity)
        metrics.count("rewind_ui_sign_ins_total", [("result", "signed-in")])
        logger.notice("web UI: \(identity.described) signed in")
        var response = Self.redirect(next)
        response.headers[.setCookie] = cookie(started.id, maxAge: Int(sessions.lifetimeMilliseconds / 1000), request: request)
        return response
    }

    /// The session cookie: HttpOnly, SameSite=Strict, and Secure behind TLS.
    func cookie(_ value: String, maxAge: Int, request: Request) -> String {
        "\(Sessions.cookieName)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Strict" + (securesCookies(request) ? "; Secure" : "")
    }

    /// Cookies are `Secure` with --ui-secure-cookie, or behind a proxy that says the browser came over TLS.
    func securesCookies(_ request: Request) -> Bool {
        options.secureCookies || request.headers[Self.forwardedProto]?.lowercased() == "https"
    }

    static let forwardedProto = HTTPField.Name("X-Forwarded-Proto")!

    /// Where to go after signing in: a path of this server only.
    static func safeNext(_ next: String?) -> String {
        guard let next, next.hasPrefix("/"), !next.hasPrefix("//"), !next.hasPrefix("/\\"), !next.contains("\r"), !next.contains("\n"), next.utf8.count < 2_048 else { return "/" }
        return next
    }

    /// The viewer of a page: the session's person; or, when reads are
    /// public (no token configured, or --ui-public-read), a read-only
    /// visitor; nil: sign in first.
    private func viewer(_ request: Request) -> WebPage.Viewer? {
        if let session = self.session(request) { return WebPage.Viewer(session) }
        if signInOff || options.publicRead { return .anonymous }
        return nil
    }

    /// A page: the sign-in redirect without a session, the error in words on failure.
    private func webPage(_ request: Request, _ body: (WebPage.Viewer) async throws -> Response) async -> Response {
        guard let viewer = viewer(request) else {
            var here = request.uri.path
            if let query = request.uri.query, !query.isEmpty { here += "?" + query }
            return Self.redirect("/login?next=\(HTTPEndpoint.encode(here))")
        }
        return await rendered(viewer) { try await body(viewer) }
    }

    /// `body`'s page, or its failure as a page in words (internal errors
    /// stay in the log); counted under `route`.
    private func rendered(_ viewer: WebPage.Viewer, _ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let error as RequestError {
            return page(error.code, WebPage.error(error.code, error.message, viewer: viewer))
        } catch {
            logger.error("\(error)")
            return page(500, WebPage.error(500, "internal error; the server log has the details", viewer: viewer))
        }
    }

    /// A form's POST: a live session of at least `role` and its CSRF token, or nothing is done.
    private func webForm(_ request: Request, needs role: Role, peer: String,
                         _ body: (Actor, [String: String], WebPage.Viewer) async throws -> Response) async -> Response {
        guard let session = self.session(request) else {
            return page(401, WebPage.error(401, "Sign in first: this form needs a session. Nothing was written.", viewer: .anonymous))
        }
        let viewer = WebPage.Viewer(session)
        let actor = Actor(session.identity, trigger: .ui)
        let form: [String: String]
        do {
            form = FormBody.parse(try await self.body(request))
        } catch let error as RequestError {
            return page(error.code, WebPage.error(error.code, error.message, viewer: viewer))
        } catch {
            return page(400, WebPage.error(400, "the form could not be read", viewer: viewer))
        }
        guard let csrf = form["csrf"], constantTimeEqual(Array(csrf.utf8), Array(session.csrf.utf8)) else {
            metrics.count("rewind_ui_csrf_refusals_total")
            return page(403, WebPage.error(403, "The form's CSRF token is missing or wrong: reload the page and try again. Nothing was written.", viewer: viewer))
        }
        do {
            try actor.require(role)
        } catch {
            logRefusal(request, peer: peer, error)
            return page(403, WebPage.error(403, error.message + ". Nothing was written.", viewer: viewer))
        }
        return await rendered(viewer) {
            do {
                return try await body(actor, form, viewer)
            } catch let error as RequestError where error.code == 403 {
                logRefusal(request, peer: peer, error)
                throw error
            }
        }
    }

    // MARK: Responses

    func page(_ status: Int, _ html: String) -> Response {
        Response(status: .init(code: status), headers: [
            .contentType: "text/html; charset=utf-8", .contentSecurityPolicy: Self.contentSecurityPolicy, .cacheControl: "no-store",
            .xContentTypeOptions: "nosniff", HTTPField.Name("Referrer-Policy")!: "same-origin", HTTPField.Name("X-Frame-Options")!: "DENY",
        ], body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store", .contentLength: "0", .contentSecurityPolicy: contentSecurityPolicy])
    }

    private func asset(_ name: String, ifNoneMatch: String?) -> Response {
        let found: (type: String, etag: String, text: String)?
        if name == "audit.css" {
            // The audit page's style is the HTML report's own.
            found = ("text/css; charset=utf-8", "\"audit-\(String(fnv1a(AuditReport.css), radix: 16))\"", AuditReport.css)
        } else {
            found = embeddedWebAssets[name]
        }
        guard let found else { return text(404, "no asset '\(Bounded.text(name, limit: 64))'\n") }
        var headers: HTTPFields = [.contentType: found.type, .eTag: found.etag, .cacheControl: "no-cache", .xContentTypeOptions: "nosniff"]
        if ifNoneMatch == found.etag {
            headers[.contentLength] = "0"
            return Response(status: .notModified, headers: headers)
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: found.text)))
    }

}

/// An `application/x-www-form-urlencoded` body: the first value of each
/// name, at most 100 fields.
enum FormBody {
    static func parse(_ bytes: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in bytes.split(separator: UInt8(ascii: "&")).prefix(100) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            let name = decode(parts[0])
            if fields[name] == nil { fields[name] = parts.count > 1 ? decode(parts[1]) : "" }
        }
        return fields
    }

    private static func decode(_ bytes: ArraySlice<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 65...70: c - 55
            case 97...102: c - 87
            default: nil
            }
        }
        while i < bytes.endIndex {
            let c = bytes[i]
            if c == UInt8(ascii: "+") {
                out.append(32)
            } else if c == UInt8(ascii: "%"), i + 2 < bytes.endIndex, let h = hex(bytes[i + 1]), let l = hex(bytes[i + 2]) {
                out.append(h << 4 | l)
                i += 2
            } else {
                out.append(c)
            }
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
