import Foundation
import Testing
import TestSupport
import SystemSupport

/// Single sign-on end to end: `rewind serve --oidc-issuer` against a real
/// OpenID provider on loopback (oidc-provider-mock from PyPI), the browser's
/// redirects followed by curl, groups mapped to roles by the roles file.
@Suite(.serialized) struct SingleSignOnTests {
    /// One HTTP request by curl: status, headers (lower-cased names) and body.
    struct Answer {
        let status: Int
        let headers: [String: String]
        let body: String
        var location: String { headers["location"] ?? "" }
        /// `name=value` of the cookie `name` this answer sets.
        func cookie(_ name: String) -> String {
            (headers["set-cookie"] ?? "").split(separator: "\n").first { $0.hasPrefix(name + "=") }.map { String($0.split(separator: ";").first ?? "") } ?? ""
        }
    }

    static func curl(_ url: String, method: String = "GET", form: String? = nil, cookie: String? = nil) throws -> Answer {
        var arguments = ["-s", "-i", "-X", method, url]
        if let form { arguments += ["-H", "Content-Type: application/x-www-form-urlencoded", "--data-binary", form] }
        if let cookie { arguments += ["-H", "Cookie: \(cookie)"] }
        let result = try run("/usr/bin/curl", arguments)
        let text = result.stdout.replacingOccurrences(of: "\r\n", with: "\n")
        let parts = text.components(separatedBy: "\n\n")
        let head = parts.first?.split(separator: "\n") ?? []
        let status = head.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased(), value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            // Several Set-Cookie headers: one per line.
            headers[name] = headers[name].map { $0 + "\n" + value } ?? value
        }
        return Answer(status: status, headers: headers, body: parts.dropFirst().joined(separator: "\n\n"))
    }

    /// Follows a sign-in as `sub` through the provider; the callback's
    /// answer, the callback's URL and the state cookie the browser had.
    static func signIn(serve: String, as sub: String) throws -> (answer: Answer, callback: String, stateCookie: String) {
        let start = try curl("http://\(serve)/login/oidc?next=%2Fapps%2Fapi")
        #expect(start.status == 303 && start.location.contains("code_challenge_method=S256") && start.location.contains("nonce="), "\(start.location)")
        let stateCookie = start.cookie("rewind_oidc_state")
        #expect(stateCookie.hasPrefix("rewind_oidc_state=") && start.headers["set-cookie"]?.contains("HttpOnly; SameSite=Lax") == true)
        let authorized = try curl(start.location, method: "POST", form: "sub=\(sub)")
        #expect(authorized.status == 302 || authorized.status == 303, "\(authorized.status) \(authorized.body.prefix(300))")
        return (try curl(authorized.location, cookie: stateCookie), authorized.location, stateCookie)
    }

    @Test func groupsMapToRolesAndAFailedSignInSaysOnlyThatItFailed() throws {
        guard let providerPort = Loopback.freeAppPort(), let servePort = Loopback.freeAppPort() else { throw TestFailure("no port") }
        let users = [#"{"sub":"alice","preferred_username":"alice","groups":["ops","everyone"]}"#, #"{"sub":"bob","preferred_username":"bob","groups":["everyone"]}"#,
                     #"{"sub":"carol","preferred_username":"carol","groups":["contractors"]}"#]
        let provider = try Spawn.start(SpawnOptions(program: "/usr/bin/env", arguments: ["python3", "-m", "oidc_provider_mock", "-p", String(providerPort), "--require-nonce", "true"]
                                                    + users.flatMap { ["--user-claims", $0] }, environment: ProcessInfo.processInfo.environment))
        defer { Spawn.stop(provider, graceMilliseconds: 1_000) }
        try waitFor("the provider listens", timeout: 30) { Loopback.canConnect(port: providerPort) }
        let apps = [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]
        try withReconciler(apps: apps) { h in
            try writeFile(h.root + "/roles", "# group: role\nops: operator\neveryone: viewer\n")
            try writeFile(h.root + "/client-secret", "s3cret-\(UUID().uuidString)\n")
            _ = try h.startServe(["--port", String(servePort), "--public-url", "http://127.0.0.1:\(servePort)", "--oidc-issuer", "http://127.0.0.1:\(providerPort)",
                                  "--oidc-client-id", "rewind", "--oidc-client-secret-file", h.root + "/client-secret", "--oidc-roles-file", h.root + "/roles"])
            try h.waitHealthy("api", "1.0.0")
            let serve = "127.0.0.1:\(servePort)"
            #expect(try Self.curl("http://\(serve)/login").body.contains("Sign in with single sign-on"))

            // alice (ops, everyone): an operator, the highest of her groups' roles.
            let (alice, aliceCallback, aliceState) = try Self.signIn(serve: serve, as: "alice")
            #expect(alice.status == 303 && alice.location == "/apps/api", "\(alice.status) \(h.log.suffix(1500))")
            let cookie = alice.cookie("rewind_session")
            #expect(cookie.hasPrefix("rewind_session=") && alice.headers["set-cookie"]?.contains("HttpOnly") == true)
            let page = try Self.curl("http://\(serve)/apps/api", cookie: cookie)
            #expect(page.status == 200 && page.body.contains("alice</strong> <span class=\"role\">(operator)") && page.body.contains("/apps/api/rollback"), "\(page.body.prefix(2000))")

            // bob (everyone): a viewer, without the rollback button.
            let bob = try Self.signIn(serve: serve, as: "bob").answer
            let bobCookie = bob.cookie("rewind_session")
            let bobPage = try Self.curl("http://\(serve)/apps/api", cookie: bobCookie)
            #expect(bobPage.body.contains("bob</strong> <span class=\"role\">(viewer)") && !bobPage.body.contains("/apps/api/rollback"), "\(bobPage.body.prefix(2000))")

            // carol (contractors): no group maps to a role. The browser learns only that it failed; the log says why.
            let carol = try Self.signIn(serve: serve, as: "carol").answer
            #expect(carol.status == 401 && carol.body.contains("Sign-in failed") && !carol.body.contains("contractors") && carol.cookie("rewind_session").isEmpty)
            try h.waitUntil("the log says why") { h.log.contains("carol is in no group the roles file maps to a role") }

            // A callback replayed (its state used already) is refused.
            let again = try Self.curl(aliceCallback, cookie: aliceState)
            #expect(again.status == 401 && again.body.contains("Sign-in failed") && again.cookie("rewind_session").isEmpty)
            #expect(h.log.contains("unknown, used or expired state"))
            // A callback link of a sign-in another browser started (login CSRF): refused, the code never used.
            let stranger = try Self.curl("http://\(serve)/login/oidc?next=%2F")
            let foreign = try Self.curl(try Self.curl(stranger.location, method: "POST", form: "sub=alice").location)
            #expect(foreign.status == 401 && foreign.cookie("rewind_session").isEmpty)
            #expect(h.log.contains("the callback's state is not the one this browser was given"))
            #expect(h.log.contains("alice (operator) signed in through single sign-on") && h.log.contains("bob (viewer) signed in through single sign-on"))

            // In a browser: headless Chromium follows the same redirects and lands on the page it asked for, signed in.
            for (user, role, links) in [("alice", "operator", true), ("bob", "viewer", false)] {
                let browser = try run("/usr/bin/env", ["python3", packageRoot + "/scripts/check-sso.py", "http://\(serve)", user])
                let seen = (try? JSONSerialization.jsonObject(with: Data(browser.stdout.utf8)) as? [String: Any]) ?? [:]
                #expect(browser.status == 0 && (seen["url"] as? String)?.hasSuffix("/apps/api") == true, "\(browser.stdout)\(browser.stderr.suffix(500))")
                #expect((seen["who"] as? String)?.contains("\(user) (\(role))") == true, "\(seen)")
                #expect(((seen["rollbackLinks"] as? NSNumber)?.intValue ?? 0 > 0) == links, "\(user): \(seen)")
            }
        }
    }

    @Test func anIssuerWhoseDiscoveryFailsStopsServeNamingIt() throws {
        guard let nobody = Loopback.freeAppPort() else { throw TestFailure("no port") }
        try withReconciler(apps: [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0"))]) { h in
            try writeFile(h.root + "/roles", "ops: operater\n")
            let badRoles = try rewind(["serve", "--repo", h.repo, "--port", "1", "--oidc-issuer", "http://127.0.0.1:\(nobody)", "--oidc-client-id", "rewind",
                                       "--oidc-roles-file", h.root + "/roles", "--state-dir", h.root + "/state2"])
            #expect(badRoles.status == 64 && badRoles.stderr.contains("\(h.root)/roles:1: unknown role 'operater' for group 'ops'") && badRoles.stderr.contains("did you mean 'operator'?"),
                    "\(badRoles.stderr)")
            try writeFile(h.root + "/roles", "ops: operator\n")
            let down = try rewind(["serve", "--repo", h.repo, "--port", "1", "--oidc-issuer", "http://127.0.0.1:\(nobody)", "--oidc-client-id", "rewind",
                                   "--oidc-roles-file", h.root + "/roles", "--state-dir", h.root + "/state2"])
            #expect(down.status == 64 && down.stderr.contains("--oidc-issuer http://127.0.0.1:\(nobody): discovery failed"), "\(down.stderr)")
            let half = try rewind(["serve", "--repo", h.repo, "--oidc-issuer", "http://127.0.0.1:\(nobody)"])
            #expect(half.status == 64 && half.stderr.contains("--oidc-issuer needs --oidc-client-id and --oidc-roles-file"), "\(half.stderr)")
        }
    }
}
