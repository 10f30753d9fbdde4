import Foundation
import Synchronization
import Hummingbird
import HummingbirdTesting
import Logging
import ReconcilerDoubles
import Rollback
import Testing
import TestSupport
@testable import Server

/// Roles: every route of `rewind serve` and every form of the web UI, tried
/// by a viewer, an operator, an admin and a break-glass account, through
/// Hummingbird's testing client on a real repository.
@Suite struct RolesTests {
    let routes = RoutesTests()

    /// Who may use a route: `nil` for routes no role governs (open, hooks).
    static let table: [String: Role?] = [
        "GET /healthz": nil, "GET /readyz": nil, "GET /metrics": nil, "GET /api/v1/openapi.json": nil, "GET /ui/{asset}": nil,
        "GET /login": nil, "POST /login": nil, "GET /login/oidc": nil, "GET /login/oidc/callback": nil,
        "POST /hooks/alertmanager": nil, "POST /hooks/git": nil, "POST /hooks/registry": nil,
        "GET /api/v1/status": .viewer, "GET /api/v1/fleet": .viewer, "GET /api/v1/apps": .viewer, "GET /api/v1/apps/{app}": .viewer,
        "GET /api/v1/apps/{app}/releases": .viewer, "GET /api/v1/releases/{commit}": .viewer,
        "GET /api/v1/incidents/{commit}": .viewer, "GET /api/v1/audit": .viewer, "GET /api/v1/events": .viewer,
        "POST /api/v1/apps/{app}/rollback": .operator, "POST /api/v1/apps/{app}/pin": .operator, "POST /api/v1/apps/{app}/unpin": .operator,
        "POST /api/v1/apps/{app}/allow": .admin,
        "POST /api/v1/apps/{app}/promote": .operator, "POST /api/v1/apps/{app}/abort": .operator, "POST /api/v1/apps/{app}/pause": .operator,
        "POST /api/v1/apps/{app}/resume": .operator,
        "GET /": .viewer, "GET /apps/{app}": .viewer, "GET /releases/{commit}": .viewer, "GET /fleet": .viewer, "GET /audit": .viewer,
        "GET /apps/{app}/rollback": .viewer,
        "POST /apps/{app}/rollback": .operator, "POST /apps/{app}/pin": .operator, "POST /apps/{app}/unpin": .operator,
        "POST /apps/{app}/allow": .admin, "POST /logout": .viewer,
    ]

    static let callers: [(name: String, token: String, role: Role)] = [
        ("vera", RoutesTests.veraToken, .viewer), ("alice", RoutesTests.aliceToken, .operator),
        ("ada", RoutesTests.adaToken, .admin), ("glass", RoutesTests.glassToken, .admin),
    ]

    /// A route's path as the router writes it, with `{name}` for a capture.
    static func key(_ method: String, _ path: String) -> String {
        let segments = path.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
        return "\(method) /" + segments.joined(separator: "/")
    }

    @Test func everyRouteAndFormRefusesTheRolesBelowItsOwnAndLogsWho() async throws {
        let log = LogCapture()
        let known = Mutex<[(method: String, path: String)]>([])
        try await routes.withServer(logger: Logger(label: "test", factory: { _ in log }), routes: { all in known.withLock { $0 = all } }) { repo, client in
            let served = known.withLock { $0 }
            let keys = Set(served.map { Self.key($0.method, $0.path) })
            #expect(keys == Set(Self.table.keys), "every route has a role in the table: missing \(keys.subtracting(Self.table.keys)), gone \(Set(Self.table.keys).subtracting(keys))")
            let before = try repo.snapshot()
            let tip = try repo.tip()
            for caller in Self.callers {
                let session = try await WebSecurityTests.signIn(client, token: caller.token)
                // The sign-out form last: it ends the session.
                for key in Self.table.keys.sorted(by: { ($0 == "POST /logout" ? 1 : 0, $0) < ($1 == "POST /logout" ? 1 : 0, $1) }) {
                    guard let needed = Self.table[key] ?? nil, key != "GET /api/v1/events" else { continue }
                    let parts = key.split(separator: " ", maxSplits: 1)
                    let method = HTTPRequest.Method(String(parts[0]))!
                    let path = String(parts[1]).replacingOccurrences(of: "{app}", with: "api").replacingOccurrences(of: "{commit}", with: tip)
                    let api = path.hasPrefix("/api/")
                    var headers: HTTPFields = api ? [.authorization: "Bearer \(caller.token)"] : [.cookie: session.cookie]
                    var body = ""
                    if method == .post && api {
                        let rollout = ["/promote", "/abort", "/pause", "/resume"].contains { path.hasSuffix($0) }
                        body = path.hasSuffix("/allow") ? #"{"version": "1.0.0", "dryRun": true}"# : path.hasSuffix("/unpin") ? #"{"dryRun": true}"#
                            : rollout ? #"{"reason": "table"}"# : #"{"dryRun": true, "reason": "table"}"#
                    } else if method == .post {
                        headers[.contentType] = "application/x-www-form-urlencoded"
                        body = "csrf=\(session.csrf)"  // no reason: an allowed form is refused for that (400), not for the role
                    }
                    try await client.execute(uri: path, method: method, headers: headers, body: ByteBuffer(string: body)) { response in
                        let text = String(buffer: response.body)
                        if caller.role < needed {
                            #expect(response.status == .forbidden, "\(caller.name) \(key): \(response.status)")
                            #expect(text.contains("needs the \(needed.name) role") && text.contains("\(caller.name) is"), "\(caller.name) \(key): \(text.prefix(300))")
                        } else {
                            #expect(response.status != .forbidden && response.status != .unauthorized, "\(caller.name) \(key): \(response.status) \(text.prefix(300))")
                        }
                    }
                }
            }
            #expect(try repo.snapshot() == before, "dry runs and refusals write nothing")
            // Every refusal is in the log with who asked; no token is.
            #expect(log.contains("refused POST /api/v1/apps/api/rollback for vera (viewer): 403"))
            #expect(log.contains("refused POST /apps/api/allow for alice (operator): 403"))
            #expect(log.contains("refused POST /api/v1/apps/api/allow for alice (operator): 403"))
            #expect(!log.lines.contains { line in Self.callers.contains { line.message.contains($0.token) } })
        }
    }

    /// A caller without a valid token cannot flood the log: one line per
    /// address every 10 s, saying how many more were not logged.
    @Test func refusalsOfUnknownCallersAreLoggedSparingly() async throws {
        let log = LogCapture()
        try await routes.withServer(logger: Logger(label: "test", factory: { _ in log })) { _, client in
            for _ in 0..<50 {
                try await client.execute(uri: "/api/v1/apps/api/rollback", method: .post, headers: [.authorization: "Bearer wrong-token"]) { #expect($0.status == .unauthorized) }
            }
            let lines = log.lines.filter { $0.message.contains("for an unknown caller from") }
            #expect(lines.count == 1, "\(lines.map(\.message))")
            #expect(!log.lines.contains { $0.message.contains("wrong-token") })
        }
        let budget = LogBudget(intervalMilliseconds: 10_000)
        #expect(budget.admit("10.0.0.1", now: 0) == 0 && budget.admit("10.0.0.1", now: 5_000) == nil && budget.admit("10.0.0.1", now: 9_999) == nil)
        #expect(budget.admit("10.0.0.2", now: 9_999) == 0, "each address has its own budget")
        #expect(budget.admit("10.0.0.1", now: 10_000) == 2, "the next line says how many were held back")
    }

    /// Past guards is an admin's: an operator's `force` is refused before
    /// anything is planned, and the refusal is logged.
    @Test func forcingARollbackNeedsAnAdmin() async throws {
        let log = LogCapture()
        try await routes.withServer(logger: Logger(label: "test", factory: { _ in log })) { repo, client in
            let tip = try repo.tip()
            let body = ByteBuffer(string: #"{"force": true, "reason": "data checked"}"#)
            try await client.execute(uri: "/api/v1/apps/worker/rollback", method: .post, headers: [.authorization: "Bearer \(RoutesTests.aliceToken)"], body: body) { response in
                #expect(response.status == .forbidden)
                #expect(String(buffer: response.body).contains("needs the admin role to force a rollback past its guards; alice is an operator"))
            }
            #expect(try repo.tip() == tip)
            #expect(log.contains("refused POST /api/v1/apps/worker/rollback for alice (operator): 403"))
            try await client.execute(uri: "/api/v1/apps/worker/rollback", method: .post, headers: [.authorization: "Bearer \(RoutesTests.adaToken)"], body: body) { response in
                #expect(response.status == .ok, "\(String(buffer: response.body))")
            }
            let message = try repo.git("log", "-1", "--format=%B")
            #expect(message.contains("Rewind-Forced: worker migration") && message.contains("Rewind-Actor: ada") && !message.contains("Rewind-Break-Glass"), "\(message)")
            try await client.execute(uri: "/api/v1/apps/worker/pin", method: .post, headers: [.authorization: "Bearer \(RoutesTests.adaToken)"],
                                     body: ByteBuffer(string: #"{"force": true}"#)) { #expect($0.status == .badRequest) }
            try await client.execute(uri: "/api/v1/apps/worker/rollback", method: .post, headers: [.authorization: "Bearer \(RoutesTests.adaToken)"],
                                     body: ByteBuffer(string: #"{"force": "yes"}"#)) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("field 'force' must be true or false"))
            }
        }
    }

    /// A break-glass account acts as an admin; its commit says so in a
    /// trailer, and the audit shows the rollback as break-glass.
    @Test func aBreakGlassRollbackIsMarkedInTheCommitAndTheAudit() async throws {
        try await routes.withServer { repo, client in
            let glass: HTTPFields = [.authorization: "Bearer \(RoutesTests.glassToken)"]
            try await client.execute(uri: "/api/v1/apps/api/rollback", method: .post, headers: glass, body: ByteBuffer(string: ##"{"to": "#1", "reason": "pager at 3am"}"##)) { response in
                #expect(response.status == .ok, "\(String(buffer: response.body))")
            }
            let commit = try repo.git("rev-parse", "HEAD")
            let trailers = try repo.git("log", "-1", "--format=%(trailers:key=Rewind-Break-Glass,key=Rewind-Actor,valueonly=false)")
            #expect(trailers.contains("Rewind-Actor: glass") && trailers.contains("Rewind-Break-Glass: yes"), "\(trailers)")
            try await client.execute(uri: "/api/v1/audit?since=2000-01-01", method: .get, headers: glass) { response in
                let audit = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any] ?? [:]
                let rows = audit["rollbacks"] as? [[String: Any]] ?? []
                let row = rows.first { $0["commit"] as? String == commit }
                #expect(row?["breakGlass"] as? Bool == true && row?["actor"] as? String == "glass", "\(rows)")
                #expect(rows.filter { $0["breakGlass"] as? Bool == true }.count == 1)
            }
            let session = try await WebSecurityTests.signIn(client, token: RoutesTests.glassToken)
            try await client.execute(uri: "/audit?since=2000-01-01", method: .get, headers: [.cookie: session.cookie]) { response in
                #expect(String(buffer: response.body).contains("by glass (BREAK-GLASS)"))
            }
        }
    }

    /// The tokens file: a role per token, `operator` when none is given;
    /// a wrong role or a third word is refused with the line, never the token.
    @Test func theTokensFileGivesEachTokenARole() throws {
        let parsed = try Credentials.parse("""
            # name: token [role]
            alice: \(String(repeating: "a", count: 20))
            vera: \(String(repeating: "v", count: 20)) viewer
            glass: \(String(repeating: "g", count: 20)) break-glass
            """, file: "tokens")
        #expect(parsed.lookup(String(repeating: "a", count: 20)) == Identity(name: "alice", role: .operator))
        #expect(parsed.lookup(String(repeating: "v", count: 20)) == Identity(name: "vera", role: .viewer))
        #expect(parsed.lookup(String(repeating: "g", count: 20)) == Identity(name: "glass", role: .admin, breakGlass: true))
        // Written on Windows: CRLF line ends (one Character in Swift) are line ends too.
        let windows = try Credentials.parse("alice: \(String(repeating: "a", count: 20))\r\nvera: \(String(repeating: "v", count: 20)) viewer\r\n", file: "tokens")
        #expect(windows.lookup(String(repeating: "a", count: 20)) == Identity(name: "alice", role: .operator))
        #expect(windows.lookup(String(repeating: "v", count: 20)) == Identity(name: "vera", role: .viewer))
        let secret = String(repeating: "s", count: 20)
        for (text, expected) in [("bob: \(secret) superuser", "tokens:1: unknown role for 'bob'"), ("bob: \(secret) admin extra", "tokens:1: expected 'name: token' or 'name: token role'"),
                                 ("\n\nbob: \(secret) oprator", "tokens:3: unknown role for 'bob'")] {
            #expect {
                _ = try Credentials.parse(text, file: "tokens")
            } throws: { error in
                let described = "\(error)"
                return described.contains(expected) && !described.contains(secret) && !described.contains("superuser")
            }
        }
        do {
            _ = try Credentials.parse("bob: \(secret) oprator", file: "tokens")
        } catch {
            #expect(error.hint?.contains("did you mean 'operator'?") == true, "\(error)")
        }
    }
}
