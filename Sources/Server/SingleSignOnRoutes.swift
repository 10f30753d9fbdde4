import HTTPTypes
import Hummingbird
import SystemSupport

extension Routes {
    /// `GET /login/oidc?next=` sends the browser to the provider;
    /// `GET /login/oidc/callback` signs it in. A failed sign-in shows the
    /// browser only that it failed; the log says why.
    func addSingleSignOnRoutes(_ router: Router<ServeContext>) {
        on(router, .get, "login/oidc", "login/oidc", .open) { request, _ in
            guard let sso = options.sso else { throw RequestError(404, "single sign-on is not configured (rewind serve --oidc-issuer)") }
            let (url, state) = sso.authorizationURL(next: Self.safeNext(request.uri.queryParameters.get("next")))
            var response = Self.redirect(url)
            // The state is bound to this browser: a callback link someone else started is refused (login CSRF).
            response.headers[.setCookie] = stateCookie(state, maxAge: 600, request: request)
            return response
        }
        on(router, .get, "login/oidc/callback", "login/oidc/callback", .open) { request, context in
            guard let sso = options.sso else { throw RequestError(404, "single sign-on is not configured (rewind serve --oidc-issuer)") }
            if let wait = throttle.refusal(context.peer) {
                var response = page(429, WebPage.signIn(next: "/", problem: "Too many failed sign-ins from this address: try again in \(wait) s.", sso: true))
                response.headers[.retryAfter] = String(wait)
                return response
            }
            let q = request.uri.queryParameters
            do {
                let bound = request.cookies[Self.stateCookieName]?.value ?? ""
                guard let state = q.get("state"), constantTimeEqual(Array(bound.utf8), Array(state.utf8)) else {
                    throw SingleSignOn.Failure("the callback's state is not the one this browser was given (a sign-in started elsewhere)")
                }
                let (identity, next, expires) = try await sso.complete(code: q.get("code"), state: state, error: q.get("error"))
                throttle.succeeded(context.peer)
                let started = sessions.start(identity, expires: expires)
                metrics.count("rewind_ui_sign_ins_total", [("result", "signed-in")])
                logger.notice("web UI: \(identity.described) signed in through single sign-on")
                var response = Self.redirect(next)
                let maxAge = max(0, Int((started.session.expires - Clock.wallMilliseconds()) / 1000))
                response.headers[.setCookie] = cookie(started.id, maxAge: maxAge, request: request)
                response.headers.append(HTTPField(name: .setCookie, value: stateCookie("", maxAge: 0, request: request)))
                return response
            } catch {
                throttle.failed(context.peer)
                metrics.count("rewind_ui_sign_ins_total", [("result", "refused")])
                logger.warning("web UI: a single sign-on from \(context.peer) failed: \(error)")
                return page(401, WebPage.signIn(next: "/", problem: "Sign-in failed. Try again; if it keeps failing, ask whoever runs Rewind (the server's log says why).", sso: true))
            }
        }
    }

    static let stateCookieName = "rewind_oidc_state"

    /// The sign-in's state for the callback: HttpOnly, and SameSite=Lax, as
    /// the provider's redirect back is a navigation from another site.
    func stateCookie(_ value: String, maxAge: Int, request: Request) -> String {
        "\(Self.stateCookieName)=\(value); Path=/login/oidc; Max-Age=\(maxAge); HttpOnly; SameSite=Lax" + (securesCookies(request) ? "; Secure" : "")
    }
}
