import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import TestSupport
import SystemSupport
import Rollback
@testable import Server

/// The web UI's sign-in, sessions and CSRF tokens, and the OpenAPI
/// document, through Hummingbird's testing client on a real repository.
@Suite struct WebSecurityTests {
    let routes = RoutesTests()

    /// Signs in with a token; the session cookie (name=value) and the page's CSRF token.
    static func signIn(_ client: any TestClientProtocol, token: String = RoutesTests.aliceToken) async throws -> (cookie: String, csrf: String) {
        var cookie = ""
        try await client.execute(uri: "/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                 body: ByteBuffer(string: "token=\(token)&next=%2F")) { response in
            #expect(response.status == .seeOther)
            cookie = String((response.headers[.setCookie] ?? "").split(separator: ";").first ?? "")
        }
        var csrf = ""
        try await client.execute(uri: "/", method: .get, headers: [.cookie: cookie]) { response in
            #expect(response.status == .ok)
            let page = String(buffer: response.body)
            if let range = page.range(of: #"name="csrf" value=""#) { csrf = String(page[range.upperBound...].prefix(64)) }
        }
        #expect(csrf.count == 64)
        return (cookie, csrf)
    }

    static let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]

    @Test func withoutASessionPagesRedirectAndTheAPIIs401() async throws {
        try await routes.withServer { repo, client in
            for path in ["/", "/apps/api", "/releases/\(try repo.tip())", "/audit", "/apps/api/rollback"] {
                try await client.execute(uri: path, method: .get) { response in
                    #expect(response.status == .seeOther, "\(path)")
                    #expect(response.headers[.location] == "/login?next=\(HTTPEndpoint.encode(path))", "\(path)")
                }
            }
            for path in ["/api/v1/status", "/api/v1/apps", "/api/v1/apps/api", "/api/v1/apps/api/releases", "/api/v1/audit", "/api/v1/events"] {
                for headers: HTTPFields in [[:], [.authorization: "Bearer wrong-token"], [.authorization: "Bearer wrong-token", .cookie: "rewind_session=\(String(repeating: "a", count: 64))"]] {
                    try await client.execute(uri: path, method: .get, headers: headers) { #expect($0.status == .unauthorized, "\(path) \(headers)") }
                }
            }
            // The named token is a bearer token too.
            try await client.execute(uri: "/api/v1/status", method: .get, headers: [.authorization: "Bearer \(RoutesTests.aliceToken)"]) { #expect($0.status == .ok) }
            // Open: probes, metrics, the sign-in page and the assets.
            for path in ["/healthz", "/metrics", "/login", "/ui/ui.js", "/ui/ui.css", "/ui/audit.css", "/api/v1/openapi.json"] {
                try await client.execute(uri: path, method: .get) { #expect($0.status == .ok, "\(path)") }
            }
        }
    }

    @Test func signingInGivesAStrictHttpOnlyCookieAndAWrongTokenIs401() async throws {
        try await routes.withServer { _, client in
            try await client.execute(uri: "/login", method: .post, headers: Self.form, body: ByteBuffer(string: "token=not-the-token&next=%2F")) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.setCookie] == nil)
                #expect(!String(buffer: response.body).contains("not-the-token"), "the wrong token is not echoed")
            }
            for (headers, secure) in [(Self.form, false), (Self.form + [HTTPField.Name("X-Forwarded-Proto")!: "https"], true)] {
                try await client.execute(uri: "/login", method: .post, headers: headers, body: ByteBuffer(string: "token=\(RoutesTests.aliceToken)&next=%2Fapps%2Fapi")) { response in
                    #expect(response.status == .seeOther)
                    #expect(response.headers[.location] == "/apps/api")
                    let cookie = response.headers[.setCookie] ?? ""
                    #expect(cookie.hasPrefix("rewind_session=") && cookie.contains("; HttpOnly") && cookie.contains("; SameSite=Strict") && cookie.contains("; Path=/"), "\(cookie)")
                    #expect(cookie.contains("; Secure") == secure, "\(cookie)")
                    #expect(!cookie.contains(RoutesTests.aliceToken))
                }
            }
            // Only this server's paths after signing in.
            for next in ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"] {
                try await client.execute(uri: "/login", method: .post, headers: Self.form,
                                         body: ByteBuffer(string: "token=\(RoutesTests.aliceToken)&next=\(HTTPEndpoint.encode(next))")) { #expect($0.headers[.location] == "/", "\(next)") }
            }
        }
    }

    /// Ten wrong tokens from one address within a minute: that address is
    /// refused sign-in (even with the right token) until the minute is over.
    @Test func wrongTokensAreThrottledPerAddress() async throws {
        try await routes.withServer { _, client in
            for _ in 0..<10 {
                try await client.execute(uri: "/login", method: .post, headers: Self.form, body: ByteBuffer(string: "token=guess")) { #expect($0.status == .unauthorized) }
            }
            try await client.execute(uri: "/login", method: .post, headers: Self.form, body: ByteBuffer(string: "token=\(RoutesTests.aliceToken)")) { response in
                #expect(response.status == .tooManyRequests)
                #expect(Int(response.headers[.retryAfter] ?? "") ?? 0 > 0)
                #expect(response.headers[.setCookie] == nil)
            }
        }
        let throttle = SignInThrottle(limit: 3, windowMilliseconds: 1_000)
        for t in [0, 100, 200] as [Int64] { throttle.failed("10.0.0.1", now: t) }
        #expect(throttle.refusal("10.0.0.1", now: 300) == 1)
        #expect(throttle.refusal("10.0.0.2", now: 300) == nil, "another address is not affected")
        #expect(throttle.refusal("10.0.0.1", now: 1_001) == nil, "the oldest failure left the window")
        throttle.failed("10.0.0.1", now: 1_100)
        throttle.succeeded("10.0.0.1")
        #expect(throttle.refusal("10.0.0.1", now: 1_200) == nil)
    }

    @Test func everyPageCarriesTheSecurityHeadersAndNeverTheToken() async throws {
        try await routes.withServer { repo, client in
            let session = try await Self.signIn(client)
            for path in ["/", "/apps/api", "/apps/api?page=2", "/releases/\(try repo.tip())", "/audit", "/audit?since=2000-01-01", "/apps/api/rollback", "/apps/api/rollback?to=%231", "/login"] {
                try await client.execute(uri: path, method: .get, headers: [.cookie: session.cookie]) { response in
                    #expect([.ok, .seeOther].contains(response.status), "\(path): \(response.status)")
                    let policy = response.headers[.contentSecurityPolicy] ?? ""
                    #expect(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline") && policy.contains("frame-ancestors 'none'"), "\(path): \(policy)")
                    let page = String(buffer: response.body)
                    #expect(!page.contains(RoutesTests.aliceToken) && !page.contains(RoutesTests.token), "\(path)")
                    #expect(!page.contains("<script>") && !page.contains(" onclick=") && !page.contains("style=\""), "\(path): no inline script or style")
                }
            }
            // The app page: one row per release, newest first, with its author and versions (as git says).
            let oracle = try repo.git("log", "--first-parent", "--format=%h", "--", "apps/api").split(separator: "\n").map(String.init)
            try await client.execute(uri: "/apps/api", method: .get, headers: [.cookie: session.cookie]) { response in
                let page = String(buffer: response.body)
                let rows = page.components(separatedBy: "<tr id=\"release-").dropFirst()
                #expect(rows.count == oracle.count, "\(rows.count) rows")
                #expect(rows.first?.hasPrefix("\(oracle.count)\"") == true, "newest first")
                for (row, short) in zip(rows, oracle) {
                    #expect(row.contains(">\(short.prefix(7))") && row.contains("Test Author") && row.contains(" → "), "\(row.prefix(300))")
                }
            }
            try await client.execute(uri: "/apps/api?page=0", method: .get, headers: [.cookie: session.cookie]) { #expect($0.status == .badRequest) }
            try await client.execute(uri: "/apps/nope", method: .get, headers: [.cookie: session.cookie]) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/audit?since=soon", method: .get, headers: [.cookie: session.cookie]) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("soon"))
            }
        }
    }

    @Test func aPostWithoutTheCSRFTokenIs403AndWritesNothing() async throws {
        try await routes.withServer { repo, client in
            let session = try await Self.signIn(client)
            let before = try repo.snapshot()
            let cookie: HTTPFields = [.cookie: session.cookie, .contentType: "application/x-www-form-urlencoded"]
            for path in ["/apps/api/rollback", "/apps/api/pin", "/apps/api/unpin", "/logout"] {
                for body in ["reason=no+token", "reason=wrong&csrf=\(String(repeating: "0", count: 64))", "reason=short&csrf=abc"] {
                    try await client.execute(uri: path, method: .post, headers: cookie, body: ByteBuffer(string: body)) { #expect($0.status == .forbidden, "\(path) \(body)") }
                }
                // No session at all: 401.
                try await client.execute(uri: path, method: .post, headers: Self.form, body: ByteBuffer(string: "reason=x&csrf=\(session.csrf)")) { #expect($0.status == .unauthorized, "\(path)") }
            }
            // The API with a session cookie needs the token in X-CSRF-Token.
            try await client.execute(uri: "/api/v1/apps/api/rollback", method: .post, headers: [.cookie: session.cookie], body: ByteBuffer(string: ##"{"reason":"x"}"##)) {
                #expect($0.status == .forbidden)
            }
            #expect(try repo.snapshot() == before, "nothing was written")
            // The session is still good: the refusals did not sign anyone out.
            try await client.execute(uri: "/", method: .get, headers: [.cookie: session.cookie]) { #expect($0.status == .ok) }
        }
    }

    @Test func theUIsWritesAreTheCLIsCommitsWithTriggerUIAndTheSignedInName() async throws {
        try await routes.withServer { repo, client in
            let session = try await Self.signIn(client)
            let headers: HTTPFields = [.cookie: session.cookie, .contentType: "application/x-www-form-urlencoded"]
            // A reason is required; without one, the preview says so and nothing is written.
            let before = try repo.snapshot()
            try await client.execute(uri: "/apps/api/rollback", method: .post, headers: headers, body: ByteBuffer(string: "csrf=\(session.csrf)&reason=+")) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("a reason is required"))
            }
            #expect(try repo.snapshot() == before)
            var location: String?
            try await client.execute(uri: "/apps/api/rollback", method: .post, headers: headers,
                                     body: ByteBuffer(string: "csrf=\(session.csrf)&to=%231&reason=bad+deploy+%26+more")) { response in
                #expect(response.status == .seeOther)
                location = response.headers[.location]
            }
            #expect(location == "/releases/\(try repo.tip())")
            let message = try repo.git("log", "-1", "--format=%B")
            #expect(message.contains("Rewind-Trigger: ui") && message.contains("Rewind-Actor: alice") && message.contains("Rewind-Reason: bad deploy & more"), "\(message)")
            // Through the API with the session and its CSRF header: also ui.
            try await client.execute(uri: "/api/v1/apps/worker/pin", method: .post, headers: [.cookie: session.cookie, Routes.csrfHeader: session.csrf],
                                     body: ByteBuffer(string: ##"{"reason":"hold"}"##)) { #expect($0.status == .ok) }
            let pin = try repo.git("log", "-1", "--format=%B")
            #expect(pin.contains("Rewind-Action: pin") && pin.contains("Rewind-Trigger: ui") && pin.contains("Rewind-Actor: alice"), "\(pin)")
            // Pinning what is pinned writes nothing, and the page says so.
            let pinned = try repo.tip()
            try await client.execute(uri: "/apps/worker/pin", method: .post, headers: headers, body: ByteBuffer(string: "csrf=\(session.csrf)&reason=again")) { response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.location] == "/apps/worker?done=already", "\(response.headers[.location] ?? "")")
            }
            #expect(try repo.tip() == pinned)
            // The API token's holder is recorded under its name, as trigger api.
            try await client.execute(uri: "/api/v1/apps/worker/unpin", method: .post, headers: [.authorization: "Bearer \(RoutesTests.token)"]) { #expect($0.status == .ok) }
            let unpin = try repo.git("log", "-1", "--format=%B")
            #expect(unpin.contains("Rewind-Trigger: api") && unpin.contains("Rewind-Actor: api-token"), "\(unpin)")
            // A guard's refusal is shown in words on the preview.
            try await client.execute(uri: "/apps/api/rollback?to=%23999", method: .get, headers: [.cookie: session.cookie]) { response in
                #expect(response.status == .notFound || response.status == .badRequest, "\(response.status)")
                #expect(String(buffer: response.body).contains("#999"))
            }
            // Signing out ends the session.
            try await client.execute(uri: "/logout", method: .post, headers: headers, body: ByteBuffer(string: "csrf=\(session.csrf)")) { response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.setCookie]?.contains("Max-Age=0") == true)
            }
            try await client.execute(uri: "/", method: .get, headers: [.cookie: session.cookie]) { #expect($0.status == .seeOther) }
        }
    }

    /// Rolling worker back would cross an irreversible migration: the
    /// preview says so in words and offers the override; only with it
    /// checked is the commit written, with `Rewind-Forced`.
    @Test func aGuardsRefusalIsShownInWordsAndAHumanMayForceIt() async throws {
        try await routes.withServer { repo, client in
            let session = try await Self.signIn(client)
            try await client.execute(uri: "/apps/worker/rollback", method: .get, headers: [.cookie: session.cookie]) { response in
                #expect(response.status == .conflict)
                let page = String(buffer: response.body)
                #expect(page.contains("irreversible migration: worker migration 0002_drop_legacy_jobs"), "\(page)")
                #expect(!page.contains("name=\"force\"") && page.contains("Only an admin may roll back across this guard"), "an operator is not offered the force")
            }
            let tip = try repo.tip()
            let headers: HTTPFields = [.cookie: session.cookie, .contentType: "application/x-www-form-urlencoded"]
            try await client.execute(uri: "/apps/worker/rollback", method: .post, headers: headers, body: ByteBuffer(string: "csrf=\(session.csrf)&reason=checked")) { response in
                #expect(response.status == .conflict)
                #expect(String(buffer: response.body).contains("irreversible migration"))
            }
            #expect(try repo.tip() == tip, "refused: no commit")
            // The refusal is noted for the audit's "data-loss guards hit", as the CLI's is.
            #expect(try repo.git("notes", "--ref=rewind", "show", tip).contains("refused app=worker guard=migration trigger=ui"))
            // Past a guard is an admin's: alice (an operator) is refused, ada (an admin) may.
            try await client.execute(uri: "/apps/worker/rollback", method: .post, headers: headers,
                                     body: ByteBuffer(string: "csrf=\(session.csrf)&reason=data+checked+by+alice&force=1")) { response in
                #expect(response.status == .forbidden)
                #expect(String(buffer: response.body).contains("needs the admin role"))
            }
            #expect(try repo.tip() == tip, "refused: no commit")
            let admin = try await Self.signIn(client, token: RoutesTests.adaToken)
            try await client.execute(uri: "/apps/worker/rollback", method: .get, headers: [.cookie: admin.cookie]) { #expect(String(buffer: $0.body).contains("name=\"force\"")) }
            try await client.execute(uri: "/apps/worker/rollback", method: .post, headers: [.cookie: admin.cookie, .contentType: "application/x-www-form-urlencoded"],
                                     body: ByteBuffer(string: "csrf=\(admin.csrf)&reason=data+checked+by+ada&force=1")) { #expect($0.status == .seeOther) }
            let message = try repo.git("log", "-1", "--format=%B")
            #expect(message.contains("Rewind-Forced: worker migration 0002_drop_legacy_jobs is irreversible") && message.contains("Rewind-Trigger: ui")
                    && message.contains("Rewind-Actor: ada"), "\(message)")
        }
    }

    @Test func publicReadOpensThePagesButNotTheWrites() async throws {
        try await routes.withServer(publicRead: true) { repo, client in
            let before = try repo.snapshot()
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.status == .ok)
                let page = String(buffer: response.body)
                #expect(page.contains("Read only") && !page.contains("name=\"csrf\""))
            }
            try await client.execute(uri: "/api/v1/status", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/api/v1/apps/api/rollback", method: .post) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/apps/api/rollback", method: .post, headers: Self.form, body: ByteBuffer(string: "reason=x")) { #expect($0.status == .unauthorized) }
            #expect(try repo.snapshot() == before)
        }
    }

    /// The OpenAPI document is valid JSON and describes every route the router has.
    @Test func theOpenAPIDocumentListsEveryRoute() async throws {
        try await routes.withServer { _, client in
            var document: [String: Any] = [:]
            try await client.execute(uri: "/api/v1/openapi.json", method: .get) { response in
                #expect(response.status == .ok)
                document = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any] ?? [:]
            }
            #expect(document["openapi"] as? String == "3.1.0")
            let paths = document["paths"] as? [String: [String: Any]] ?? [:]
            try await withFixtureRepoAsync("three-apps") { repo in
                var options = ServeOptions(repoPath: repo.path)
                options.apiToken = RoutesTests.token
                let desk = try RollbackDesk(options: options, metrics: Metrics(), logger: .init(label: "test"))
                let router = Routes(options: options, desk: desk, metrics: Metrics(), readiness: Readiness(), logger: .init(label: "test")).router()
                var served = 0
                for route in router.routes {
                    let path = APIDocument.openAPIPath(route.path.description)
                    #expect(paths[path] != nil, "\(path) is not in the document")
                    if paths[path]?[route.method.rawValue.lowercased()] != nil { served += 1 }
                }
                #expect(served == paths.values.map(\.count).reduce(0, +), "every operation documented is a route")
                #expect(served == APIDocument.operations.count, "no description is left without its route")
            }
            let rollbackBody = ((((paths["/api/v1/apps/{app}/rollback"]?["post"] as? [String: Any])?["requestBody"] as? [String: Any])?["content"] as? [String: Any])?["application/json"] as? [String: Any])?["schema"] as? [String: Any]
            #expect((rollbackBody?["properties"] as? [String: Any])?.keys.sorted() == RollbackInput.fields.filter { $0 != "version" }.sorted(), "the schema has the fields a rollback accepts")
            #expect(rollbackBody?["additionalProperties"] as? Bool == false)
            for (path, operations) in paths {
                for (method, operation) in operations {
                    let summary = (operation as? [String: Any])?["summary"] as? String ?? ""
                    #expect(!summary.isEmpty && summary != "undocumented", "\(method) \(path)")
                }
            }
        }
    }

    @Test func aTokensFileWithAMistakeNamesTheLineAndNeverTheToken() throws {
        let secret = "s3cr3t-\(UUID().uuidString)"
        for (text, words) in [("alice \(secret)\n", "tokens:1: expected 'name: token'"), ("\n# ok\nbad name: \(secret)\n", "tokens:3: token name 'bad name' is not valid"),
                              ("alice: short\n", "tokens:1: the token of 'alice' is shorter than 16 characters"),
                              ("al\u{1B}[2Jice: \(secret)\n", "tokens:1: token name 'al?[2Jice' is not valid"),
                              ("alice: \(secret)\nalice: \(secret)x\n", "tokens:2: token name 'alice' is used twice"),
                              ("alice: \(secret)\nbob: \(secret)\n", "tokens:2: the token of 'bob' is also the token of another name"), ("# nobody\n", "names no token")] {
            do {
                _ = try Credentials.parse(text, file: "tokens")
                Issue.record("accepted: \(words)")
            } catch {
                #expect(error.message.contains(words), "\(error.message)")
                #expect(!"\(error)".contains(secret))
            }
        }
        let parsed = try Credentials.parse("# team\nalice: \(secret)\nbob:   \(secret)-bob  \n", file: "tokens")
        #expect(parsed.lookup(secret)?.name == "alice" && parsed.lookup(secret + "-bob")?.name == "bob" && parsed.lookup("nope") == nil)
        var options = ServeOptions(repoPath: "/nowhere")
        options.apiToken = secret
        options.apiTokenName = "alice"
        options.namedTokens = parsed
        #expect(throws: RewindError.self) { _ = try options.credentials() }
    }

    /// A new subscriber gets the last status first; closing ends every stream.
    @Test func theEventHubReplaysTheLastStatusAndClosesItsStreams() async throws {
        let hub = EventHub(capacity: 2)
        hub.publish("status", .object([("n", .number(1))]))
        guard let first = hub.subscribe(), let second = hub.subscribe() else { Issue.record("no stream"); return }
        #expect(hub.subscribe() == nil, "over capacity")
        hub.publish("tip", .object([("commit", .string("abc"))]))
        hub.close()
        var names: [String] = []
        for await event in first { names.append(event.name) }
        #expect(names == ["status", "tip"])
        var wire = ""
        for await event in second { wire += event.wire }
        #expect(wire == "id: 1\nevent: status\ndata: {\"n\":1}\n\nid: 2\nevent: tip\ndata: {\"commit\":\"abc\"}\n\n")
        #expect(hub.subscribe() == nil, "closed")
    }
}

extension HTTPFields {
    static func + (a: HTTPFields, b: HTTPFields) -> HTTPFields {
        var out = a
        for field in b { out.append(field) }
        return out
    }
}
