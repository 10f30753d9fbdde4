import SystemSupport
import Hummingbird

/// `GET /api/v1/openapi.json`: an OpenAPI 3.1 description of every route
/// the router serves, built from the router's own list (a route without a
/// description here is still listed, summarised as "undocumented", and a
/// test fails on it).
enum APIDocument {
    struct Operation {
        let summary: String
        let security: Security
        let responses: [Int]
        var query: [String] = []
        var body: String? = nil
        var produces = "application/json"
    }

    /// `signed`: a push webhook's signature (GitHub's X-Hub-Signature-256,
    /// Gitea's, GitLab's token header) when a secret is configured.
    enum Security { case open, read, write, hook, session, signed }

    static let operations: [String: Operation] = [
        "GET /healthz": Operation(summary: "Liveness: 200 while the process runs", security: .open, responses: [200], produces: "text/plain"),
        "GET /readyz": Operation(summary: "Readiness: 200 once the reconciler finished its first pass, else 503", security: .open, responses: [200, 503], produces: "text/plain"),
        "GET /metrics": Operation(summary: "Prometheus metrics", security: .open, responses: [200], produces: "text/plain"),
        "POST /hooks/alertmanager": Operation(summary: "Alertmanager webhook (version 4): firing alerts roll back their app", security: .hook, responses: [200, 400, 401, 413],
                                              body: "Alertmanager's webhook JSON"),
        "POST /hooks/git": Operation(summary: "Push webhook (GitHub, GitLab, Gitea/Forgejo): fetch the remote now; signed when a webhook secret is configured", security: .signed, responses: [200, 202, 400, 401, 413],
                                     body: "the git host's push event"),
        "POST /hooks/registry": Operation(summary: "Distribution registry notifications: a pushed tag has the apps whose updates: follow its repository checked at once",
                                          security: .hook, responses: [200, 202, 400, 401, 413], body: "the registry's notification envelope ({\"events\": [...]})"),
        "GET /api/v1/status": Operation(summary: "rewind status --format json", security: .read, responses: [200, 401]),
        "GET /api/v1/fleet": Operation(summary: "rewind status --fleet --format json: each host with what it last published", security: .read, responses: [200, 401]),
        "GET /api/v1/apps": Operation(summary: "Every app's status", security: .read, responses: [200, 401]),
        "GET /api/v1/apps/{app}": Operation(summary: "One app's status", security: .read, responses: [200, 401, 404]),
        "GET /api/v1/apps/{app}/releases": Operation(summary: "rewind releases APP --format json", security: .read, responses: [200, 400, 401, 404], query: ["limit"]),
        "GET /api/v1/releases/{commit}": Operation(summary: "rewind show COMMIT --format json, with message, diffs, notes and incident report", security: .read, responses: [200, 400, 401, 404]),
        "GET /api/v1/incidents/{commit}": Operation(summary: "rewind incident COMMIT --format json", security: .read, responses: [200, 400, 401, 404]),
        "GET /api/v1/audit": Operation(summary: "rewind audit --format json", security: .read, responses: [200, 400, 401], query: ["since", "until", "app", "reworkWindow"]),
        "GET /api/v1/events": Operation(summary: "Server-Sent Events: status, tip, rollback, notes", security: .read, responses: [200, 401, 503], produces: "text/event-stream"),
        "GET /api/v1/openapi.json": Operation(summary: "This document", security: .open, responses: [200]),
        "POST /api/v1/apps/{app}/rollback": Operation(summary: "Roll back an app (Rewind-Trigger: api, or ui with a session); dryRun plans without writing. Role: operator (admin with force)",
                                                      security: .write, responses: [200, 400, 401, 403, 404, 409, 413, 422, 503], body: #"{"to": "REV|#N", "reason": "...", "dryRun": false, "force": false}"#),
        "POST /api/v1/apps/{app}/pin": Operation(summary: "Pin an app (at its current release, or at `to`). Role: operator", security: .write, responses: [200, 400, 401, 403, 404, 409, 413],
                                                 body: #"{"to": "REV|#N", "reason": "...", "dryRun": false}"#),
        "POST /api/v1/apps/{app}/allow": Operation(summary: "Let a rolled-back version be proposed by updates again (Rewind-Action: allow). Role: admin", security: .write,
                                                   responses: [200, 400, 401, 403, 404, 409, 413], body: #"{"version": "TAG|VERSION|sha256:…", "reason": "...", "dryRun": false}"#),
        "POST /api/v1/apps/{app}/unpin": Operation(summary: "Unpin an app. Role: operator", security: .write, responses: [200, 400, 401, 403, 404, 409, 413], body: #"{"reason": "...", "dryRun": false}"#),
        "POST /api/v1/apps/{app}/promote": Operation(summary: "rewind promote APP: the rollout's new version takes all traffic. Role: operator", security: .write,
                                                     responses: [200, 400, 401, 403, 404, 409, 413, 503], body: #"{"reason": "..."}"#),
        "POST /api/v1/apps/{app}/abort": Operation(summary: "rewind abort APP: traffic back to the stable version, and a rollback commit. Role: operator", security: .write,
                                                   responses: [200, 400, 401, 403, 404, 409, 413, 503], body: #"{"reason": "..."}"#),
        "POST /api/v1/apps/{app}/pause": Operation(summary: "rewind pause APP: the rollout stays at its step. Role: operator", security: .write,
                                                   responses: [200, 400, 401, 403, 404, 409, 413, 503], body: #"{"reason": "..."}"#),
        "POST /api/v1/apps/{app}/resume": Operation(summary: "rewind resume APP: a paused rollout goes on. Role: operator", security: .write,
                                                    responses: [200, 400, 401, 403, 404, 409, 413, 503], body: #"{"reason": "..."}"#),
        "GET /": Operation(summary: "Web UI: the apps", security: .session, responses: [200, 303], produces: "text/html"),
        "GET /login": Operation(summary: "Web UI: the sign-in form", security: .open, responses: [200, 303], query: ["next"], produces: "text/html"),
        "POST /login": Operation(summary: "Web UI: sign in with a token; sets the session cookie", security: .open, responses: [303, 401, 413, 429], body: "form: token, next", produces: "text/html"),
        "GET /login/oidc": Operation(summary: "Web UI: single sign-on (--oidc-issuer): to the provider's sign-in, with PKCE", security: .open, responses: [303, 404],
                                     query: ["next"], produces: "text/html"),
        "GET /login/oidc/callback": Operation(summary: "Web UI: single sign-on's return: the code exchanged, the ID token checked, the session started", security: .open,
                                              responses: [303, 401, 404, 429], query: ["code", "state", "error"], produces: "text/html"),
        "POST /logout": Operation(summary: "Web UI: sign out", security: .session, responses: [303, 401, 403], body: "form: csrf", produces: "text/html"),
        "GET /apps/{app}": Operation(summary: "Web UI: an app and its release timeline", security: .session, responses: [200, 303, 400, 404], query: ["page", "done"], produces: "text/html"),
        "GET /apps/{app}/rollback": Operation(summary: "Web UI: a rollback's preview (a dry run) and its confirmation", security: .session, responses: [200, 303, 400, 404, 409],
                                              query: ["to"], produces: "text/html"),
        "POST /apps/{app}/rollback": Operation(summary: "Web UI: roll back (Rewind-Trigger: ui)", security: .session, responses: [303, 400, 401, 403, 404, 409],
                                               body: "form: csrf, reason, to, force", produces: "text/html"),
        "POST /apps/{app}/pin": Operation(summary: "Web UI: pin", security: .session, responses: [303, 400, 401, 403, 404, 409], body: "form: csrf, reason, to", produces: "text/html"),
        "POST /apps/{app}/unpin": Operation(summary: "Web UI: unpin", security: .session, responses: [303, 400, 401, 403, 404, 409], body: "form: csrf, reason", produces: "text/html"),
        "POST /apps/{app}/allow": Operation(summary: "Web UI: allow a rolled-back version to be proposed again", security: .session, responses: [303, 400, 401, 403, 404, 409],
                                            body: "form: csrf, reason, version", produces: "text/html"),
        "GET /releases/{commit}": Operation(summary: "Web UI: a commit, its diff, notes and incident report", security: .session, responses: [200, 303, 400, 404], produces: "text/html"),
        "GET /fleet": Operation(summary: "Web UI: hosts × apps, each host as it last published its status", security: .session, responses: [200, 303], produces: "text/html"),
        "GET /audit": Operation(summary: "Web UI: audit charts and tables", security: .session, responses: [200, 303, 400], query: ["since", "until"], produces: "text/html"),
        "GET /ui/{asset}": Operation(summary: "Web UI: embedded CSS and script", security: .open, responses: [200, 304, 404], produces: "text/css, text/javascript"),
    ]

    /// A router path (`api/v1/apps/:app`) as OpenAPI writes it (`/api/v1/apps/{app}`).
    static func openAPIPath(_ routerPath: String) -> String {
        "/" + routerPath.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }.joined(separator: "/")
    }

    /// What a path parameter may be: the server answers anything else with
    /// 400 (a commit id) or 404 (no such app or asset).
    static let parameterPatterns = [
        "commit": "^[0-9a-fA-F]{4,40}$",
        "app": "^[a-z0-9][a-z0-9-]{0,62}$",
        "asset": "^[A-Za-z0-9][A-Za-z0-9._-]*$",
    ]

    static func orNull(_ schema: JSON) -> JSON { .object([("anyOf", .array([schema, .object([("type", .string("null"))])]))]) }

    /// What `AuditQuery.parseDate` reads: a date, an RFC 3339 time, an age or `now`.
    static let dateSchema: JSON = .object([("anyOf", .array([
        .object([("type", .string("string")), ("format", .string("date"))]), .object([("type", .string("string")), ("format", .string("date-time"))]),
        .object([("type", .string("string")), ("pattern", .string("^[0-9]{1,4}[smhdw]$"))]), .object([("enum", .array([.string("now"), .string("")]))]),
    ]))])

    /// What `Duration(parsing:)` reads, up to two parts (`24h`, `1h30m`); empty: the default.
    static let durationSchema: JSON = .object([("type", .string("string")),
                                               ("pattern", .string("^([0-9]{1,4}(ms|s|m|h|d)([0-9]{1,4}(ms|s|m|h))?)?$"))])

    /// Alertmanager's webhook body as `AlertmanagerPayload` reads it.
    static let alertmanagerSchema: JSON = {
        let string = JSON.object([("type", .string("string"))])
        let strings = JSON.object([("type", .string("object")), ("additionalProperties", string)])
        let alert = JSON.object([("type", .string("object")), ("required", .array(["status", "labels", "startsAt"].map { .string($0) })),
                                 ("properties", .object([("status", string), ("labels", strings), ("annotations", orNull(strings)), ("startsAt", string), ("fingerprint", orNull(string))]))])
        return .object([("type", .string("object")), ("required", .array(["version", "groupKey", "status", "alerts"].map { .string($0) })),
                        ("properties", .object([("version", .object([("const", .string("4"))])), ("groupKey", string), ("status", string),
                                                ("alerts", .object([("type", .string("array")), ("items", alert)]))]))])
    }()

    /// The document of a server; `hookToken`: whether Alertmanager's hook
    /// needs the hook token (without one, hooks are open).
    static func json(_ routes: [(method: HTTPRequest.Method, path: String)], hookToken: Bool) -> JSON {
        var byPath: [(String, [(String, JSON)])] = []
        for route in routes {
            let path = openAPIPath(route.path)
            let key = "\(route.method.rawValue) \(path)"
            let op = operations[key] ?? Operation(summary: "undocumented", security: .read, responses: [200])
            var fields: [(String, JSON)] = [("summary", .string(op.summary)), ("operationId", .string(key))]
            var parameters: [JSON] = path.split(separator: "/").filter { $0.hasPrefix("{") }.map {
                let name = String($0.dropFirst().dropLast())
                let pattern: [(String, JSON)] = parameterPatterns[name].map { [("pattern", .string($0))] } ?? []
                return .object([("name", .string(name)), ("in", .string("path")), ("required", .bool(true)), ("schema", .object([("type", .string("string"))] + pattern))])
            }
            parameters += op.query.map { name in
                // The API checks them (400); a web page shows its form again with the problem.
                let api = path.hasPrefix("/api/")
                let schema = api && ["since", "until"].contains(name) ? dateSchema : api && name == "reworkWindow" ? durationSchema : .object([("type", .string("string"))])
                return .object([("name", .string(name)), ("in", .string("query")), ("required", .bool(false)), ("schema", schema)])
            }
            if !parameters.isEmpty { fields.append(("parameters", .array(parameters))) }
            if let body = op.body {
                let type = body.hasPrefix("form") ? "application/x-www-form-urlencoded" : "application/json"
                var schema: [(String, JSON)] = key.hasPrefix("POST /api/v1/apps/") ? [("schema", writeSchema(key.split(separator: "/").last.map(String.init) ?? ""))] : []
                if key == "POST /hooks/alertmanager" { schema = [("schema", alertmanagerSchema)] }
                if key == "POST /hooks/registry" { schema = [("schema", registrySchema)] }
                // Webhooks always send a body, and allow needs its version; the other writes may omit theirs.
                let required = ["POST /hooks/alertmanager", "POST /hooks/registry", "POST /api/v1/apps/{app}/allow"].contains(key)
                fields.append(("requestBody", .object([("description", .string(body)), ("required", .bool(required)),
                                                       ("content", .object([(type, .object(schema))]))])))
            }
            switch op.security {
            case .open: fields.append(("security", .array([])))
            case .read, .write: fields.append(("security", .array([.object([("bearer", .array([]))]), .object([("session", .array([]))])])))
            // Without a session, a page answers 303 to the sign-in form.
            case .session: fields.append(("security", .array([.object([("session", .array([]))]), .object([])])))
            case .hook: fields.append(("security", .array(hookToken ? [.object([("hook", .array([]))])] : [])))
            case .signed: fields.append(("security", .array([])))
            }
            fields.append(("responses", .object(op.responses.map { code in
                (String(code), .object([("description", .string(describe(code)))] + (code < 300 ? [("content", .object([(op.produces, .object([]))]))] : [])))
            })))
            if let index = byPath.firstIndex(where: { $0.0 == path }) {
                byPath[index].1.append((route.method.rawValue.lowercased(), .object(fields)))
            } else {
                byPath.append((path, [(route.method.rawValue.lowercased(), .object(fields))]))
            }
        }
        return .object([
            ("openapi", .string("3.1.0")),
            ("info", .object([("title", .string("Rewind")), ("version", .string("v1")),
                              ("description", .string("rewind serve: the reconciler's API, webhooks and web UI. Rollbacks are git commits."))])),
            ("paths", .object(byPath.sorted { $0.0 < $1.0 }.map { ($0.0, .object($0.1)) })),
            ("components", .object([("securitySchemes", .object([
                ("bearer", .object([("type", .string("http")), ("scheme", .string("bearer")), ("description", .string("the API token (an admin) or a named token of --ui-tokens-file (its role: viewer, operator, admin or break-glass)"))])),
                ("session", .object([("type", .string("apiKey")), ("in", .string("cookie")), ("name", .string(Sessions.cookieName)),
                                     ("description", .string("a web UI session; writes also need the page's CSRF token in X-CSRF-Token (API) or the form's csrf field"))])),
                ("hook", .object([("type", .string("http")), ("scheme", .string("bearer")), ("description", .string("the hook token (Alertmanager); push webhooks are signed instead"))])),
            ]))])),
        ])
    }

    /// The registry's notification envelope as `RegistryNotification` reads it.
    static let registrySchema: JSON = {
        let string = orNull(.object([("type", .string("string"))]))
        let target = orNull(.object([("type", .string("object")), ("properties", .object(["repository", "tag", "digest", "mediaType"].map { ($0, string) }))]))
        let event = JSON.object([("type", .string("object")), ("properties", .object([("action", string), ("target", target)]))])
        return .object([("type", .string("object")), ("required", .array([.string("events")])),
                        ("properties", .object([("events", .object([("type", .string("array")), ("items", event)]))]))])
    }()

    /// The body of the API's writes (`RollbackInput`) for `verb` (rollback,
    /// pin, unpin, allow): unknown fields are refused.
    static func writeSchema(_ verb: String) -> JSON {
        // null is "not given", as the server reads it.
        func field(_ type: String, _ description: String) -> JSON {
            .object([("type", .array([.string(type), .string("null")])), ("description", .string(description))])
        }
        var properties: [(String, JSON)] = []
        if ["promote", "abort", "pause", "resume"].contains(verb) {
            let reason = field("string", "recorded in the note (and, for abort, the rollback commit's Rewind-Reason)")
            return .object([("type", .string("object")), ("additionalProperties", .bool(false)), ("properties", .object([("reason", reason)]))])
        }
        if verb == "rollback" || verb == "pin" {
            properties.append(("to", field("string", "a revision or #N (a release number); default: the rollback's default target, or the current release for pin")))
        }
        if verb == "allow" {
            properties.append(("version", .object([("type", .string("string")), ("minLength", .number(1)), ("description", .string("the rolled-back tag, version label or digest"))])))
        }
        properties.append(("reason", field("string", "written into the commit as Rewind-Reason")))
        properties.append(("dryRun", field("boolean", "plan (message, diffs, guards) and write nothing")))
        if verb == "rollback" {
            properties.append(("force", field("boolean", "past the guards (an irreversible migration, a missing artifact), recorded as Rewind-Forced; admins only")))
        }
        let required: [(String, JSON)] = verb == "allow" ? [("required", .array([.string("version")]))] : []
        return .object([("type", .string("object")), ("additionalProperties", .bool(false)), ("properties", .object(properties))] + required)
    }

    static func describe(_ code: Int) -> String {
        [200: "OK", 202: "Accepted", 303: "See other (sign in, or the written commit)", 304: "Not modified", 400: "Bad input: the error says what and where",
         401: "No or wrong token or session", 403: "The caller's role may not do this (the error names the role needed), or a missing or wrong CSRF token", 404: "Not found", 409: "Refused by a guard, or a conflict",
         413: "Body over the limit", 429: "Too many failed sign-ins from this address; wait", 422: "The repository's state is invalid", 503: "Busy or not ready; retry"][code] ?? "See the error"
    }
}
