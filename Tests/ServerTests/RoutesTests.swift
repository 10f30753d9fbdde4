import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import SystemSupport
import Testing
import TestSupport
@testable import Server

/// The HTTP surface through Hummingbird's testing client, on a real fixture repository.
@Suite struct RoutesTests {
    static let token = "test-token-\(UUID().uuidString)"

    static let aliceToken = "alice-\(UUID().uuidString)"
    /// A viewer, an admin and a break-glass account beside alice (an operator, the default role).
    static let veraToken = "vera-\(UUID().uuidString)"
    static let adaToken = "ada-\(UUID().uuidString)"
    static let glassToken = "glass-\(UUID().uuidString)"

    /// A server on a fixture repository; `routes` learns every route it has (method, path).
    func withServer(publicRead: Bool = false, logger: Logger = Logger(label: "test"), routes: (@Sendable ([(method: String, path: String)]) -> Void)? = nil,
                    _ body: @escaping @Sendable (FixtureRepo, any TestClientProtocol) async throws -> Void) async throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("rewind-serve-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try await withFixtureRepoAsync("three-apps") { repo in
            var options = ServeOptions(repoPath: repo.path)
            options.stateDirectory = tmp
            options.artifactRoot = repo.artifactRoot
            options.apiToken = Self.token
            options.hookToken = Self.token
            options.namedTokens = try Credentials.parse("""
                alice: \(Self.aliceToken)
                vera: \(Self.veraToken) viewer
                ada: \(Self.adaToken) admin
                glass: \(Self.glassToken) break-glass

                """, file: "tokens")
            options.publicRead = publicRead
            let metrics = Metrics()
            let desk = try RollbackDesk(options: options, metrics: metrics, logger: Logger(label: "test"))
            // The sign-in throttle's and the refusal log's clocks stand still:
            // their windows never pass however slowly a loaded machine runs the test.
            let frozen = SystemSupport.Clock.wallMilliseconds()
            let router = Routes(options: options, desk: desk, metrics: metrics, readiness: Readiness(), logger: logger,
                                throttle: SignInThrottle(clock: { frozen }), anonymousRefusals: LogBudget(clock: { frozen })).router()
            routes?(router.routes.map { (method: $0.method.rawValue, path: $0.path.description) })
            let app = Application(router: router)
            try await app.test(.router) { client in try await body(repo, client) }
        }
    }

    var auth: HTTPFields { [.authorization: "Bearer \(Self.token)"] }

    @Test func aMissingOrWrongTokenIs401AndWritesNothing() async throws {
        try await withServer { repo, client in
            let before = try repo.snapshot()
            for headers: HTTPFields in [[:], [.authorization: "Bearer nope"], [.authorization: Self.token]] {
                try await client.execute(uri: "/api/v1/apps/api/rollback", method: .post, headers: headers) { #expect($0.status == .unauthorized) }
                try await client.execute(uri: "/hooks/alertmanager", method: .post, headers: headers, body: ByteBuffer(string: "{}")) { #expect($0.status == .unauthorized) }
            }
            #expect(try repo.snapshot() == before)
        }
    }

    /// `POST /hooks/registry`: the hook token, then the envelope; only pushed
    /// tags count. Without an update watch, it says so and does nothing.
    @Test func registryNotificationsNeedTheHookTokenAndAnEnvelope() async throws {
        let push = #"{"events":[{"action":"push","target":{"repository":"team/api","tag":"1.1.0","digest":"sha256:00"}},"#
            + #"{"action":"push","target":{"repository":"team/api","digest":"sha256:01"}},{"action":"pull","target":{"repository":"team/web","tag":"2"}}]}"#
        try await withServer { repo, client in
            let before = try repo.snapshot()
            for headers: HTTPFields in [[:], [.authorization: "Bearer nope"]] {
                try await client.execute(uri: "/hooks/registry", method: .post, headers: headers, body: ByteBuffer(string: push)) { #expect($0.status == .unauthorized) }
            }
            for body in ["", "{", "[]", #"{"events":{}}"#, #"{"events":[{"target":{"tag":1}}]}"#] {
                try await client.execute(uri: "/hooks/registry", method: .post, headers: auth, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .badRequest, "\(body)")
                    #expect(String(buffer: response.body).contains("registry notification"), "\(String(buffer: response.body))")
                }
            }
            try await client.execute(uri: "/hooks/registry", method: .post, headers: auth, body: ByteBuffer(string: push)) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains(#""repositories":["team/api"]"#), "\(String(buffer: response.body))")
            }
            #expect(try repo.snapshot() == before)
        }
    }

    @Test func aTenMegabyteBodyIs413() async throws {
        try await withServer { repo, client in
            let before = try repo.snapshot()
            let big = ByteBuffer(repeating: UInt8(ascii: "x"), count: 10 << 20)
            try await client.execute(uri: "/hooks/alertmanager", method: .post, headers: auth, body: big) { #expect($0.status == .contentTooLarge) }
            #expect(try repo.snapshot() == before)
        }
    }

    @Test func malformedPayloadsAre4xxAndWriteNothing() async throws {
        let valid = #"{"version":"4","groupKey":"g","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"A","app":"api"},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"f"}]}"#
        var corpus = ["", "{", "[]", "null", "{\"version\":\"3\",\"groupKey\":\"g\",\"status\":\"firing\",\"alerts\":[]}",
                      #"{"version":"4","groupKey":"g","status":"firing","alerts":[{"status":"firing"}]}"#,
                      #"{"version":"4","groupKey":1,"status":"firing","alerts":[]}"#, "\u{0}\u{1}\u{2}", String(repeating: "[", count: 10_000)]
        // Every truncation of a valid payload.
        for cut in stride(from: 1, to: valid.utf8.count - 1, by: 7) { corpus.append(String(decoding: Array(valid.utf8).prefix(cut), as: UTF8.self)) }
        let payloads = corpus
        try await withServer { repo, client in
            let before = try repo.snapshot()
            for body in payloads {
                try await client.execute(uri: "/hooks/alertmanager", method: .post, headers: auth, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .badRequest, "\(body.prefix(40))")
                    #expect(String(buffer: response.body).contains("error"))
                }
            }
            try await client.execute(uri: "/api/v1/apps/api/rollback", method: .post, headers: auth, body: ByteBuffer(string: "{nope")) { #expect($0.status == .badRequest) }
            #expect(try repo.snapshot() == before)
        }
    }

    @Test func apiListsReleasesStatusAndRollsBack() async throws {
        try await withServer { repo, client in
            try await client.execute(uri: "/api/v1/apps", method: .get, headers: auth) { response in
                #expect(response.status == .ok)
                let apps = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [[String: Any]] ?? []
                #expect(apps.map { $0["app"] as? String } == ["api", "worker", "web"])
            }
            try await client.execute(uri: "/api/v1/apps/api/releases?limit=0", method: .get, headers: auth) { response in
                let listing = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [[String: Any]] ?? []
                let commits = (listing.first?["releases"] as? [[String: Any]] ?? []).compactMap { $0["commit"] as? String }
                let oracle = try repo.git("log", "--first-parent", "--reverse", "--format=%H", "--", "apps/api").split(separator: "\n").map(String.init)
                #expect(commits == oracle)
            }
            try await client.execute(uri: "/api/v1/apps/nope/releases", method: .get, headers: auth) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/api/v1/status", method: .get, headers: auth) { response in
                let status = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect(status?["branch"] as? String == "main")
            }
            let tip = try repo.tip()
            try await client.execute(uri: "/api/v1/apps/api/rollback", method: .post, headers: auth, body: ByteBuffer(string: ##"{"to":"#1","reason":"from the API"}"##)) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("rolled-back"))
            }
            let message = try repo.git("log", "-1", "--format=%B")
            #expect(message.contains("Rewind-Trigger: api"))
            #expect(message.contains("Rewind-Reason: from the API"))
            #expect(try repo.git("rev-parse", "HEAD~1") == tip)
            try await client.execute(uri: "/api/v1/apps/nope/rollback", method: .post, headers: auth) { #expect($0.status == .notFound) }
        }
    }

    /// `GET /api/v1/audit` is `rewind audit --format json`; `GET
    /// /api/v1/incidents/{commit}` is `rewind incident --format json`.
    @Test func auditAndIncidentsAreServedAsTheCLIPrintsThem() async throws {
        try await withServer { repo, client in
            try await client.execute(uri: "/api/v1/apps/api/rollback", method: .post, headers: auth, body: ByteBuffer(string: ##"{"reason":"audit me"}"##)) {
                #expect($0.status == .ok)
            }
            let rollback = try repo.tip()
            let range = "since=2000-01-01&until=2100-01-01"
            var served: [String: Any] = [:]
            try await client.execute(uri: "/api/v1/audit?\(range)&app=api", method: .get, headers: auth) { response in
                #expect(response.status == .ok)
                served = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any] ?? [:]
            }
            let rows = served["rollbacks"] as? [[String: Any]] ?? []
            #expect(rows.map { $0["commit"] as? String } == [rollback])
            #expect(rows.first?["trigger"] as? String == "api")
            #expect(rows.first?["reason"] as? String == "audit me")
            let cli = try repo.rewind("audit", "api", "--since", "2000-01-01", "--until", "2100-01-01", "--format", "json")
            let printed = try JSONSerialization.jsonObject(with: Data(cli.stdout.utf8)) as? [String: Any] ?? [:]
            #expect(NSDictionary(dictionary: printed) == NSDictionary(dictionary: served), "the API and the CLI agree")
            try await client.execute(uri: "/api/v1/incidents/\(rollback)", method: .get, headers: auth) { response in
                #expect(response.status == .ok)
                let incident = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect((incident?["rollback"] as? [String: Any])?["commit"] as? String == rollback)
                let events = (incident?["timeline"] as? [[String: Any]] ?? []).compactMap { $0["event"] as? String }
                #expect(events == ["committed", "rollback"])
            }
            // Bad input: what is wrong, and no stack of internals.
            for (query, status) in [("since=yesterday-ish", HTTPResponse.Status.badRequest), ("app=nope", .badRequest), ("reworkWindow=soon", .badRequest),
                                    ("since=2030-01-01&until=2020-01-01", .badRequest)] {
                try await client.execute(uri: "/api/v1/audit?\(query)", method: .get, headers: auth) { response in
                    #expect(response.status == status, "\(query)")
                    #expect(String(buffer: response.body).contains("error"), "\(query)")
                }
            }
            try await client.execute(uri: "/api/v1/incidents/HEAD~1", method: .get, headers: auth) { #expect($0.status == .badRequest) }
            try await client.execute(uri: "/api/v1/incidents/\(repo.commits[0])", method: .get, headers: auth) { response in
                #expect(response.status == .notFound)
                #expect(String(buffer: response.body).contains("neither a rollback commit nor a release that a rollback undid"))
            }
        }
    }

    /// `"dryRun": true` returns the plan, the diff and the guards, and writes
    /// nothing; an unknown field or a wrong type is 400 and writes nothing.
    @Test func aDryRunWritesNothingAndUnknownFieldsAre400() async throws {
        try await withServer { repo, client in
            let before = try repo.snapshot()
            try await client.execute(uri: "/api/v1/apps/api/rollback", method: .post, headers: auth, body: ByteBuffer(string: ##"{"dryRun": true, "reason": "look first"}"##)) { response in
                #expect(response.status == .ok)
                let plan = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect(plan?["outcome"] as? String == "planned")
                #expect((plan?["message"] as? String)?.contains("Rewind-Trigger: api") == true)
                let diff = ((plan?["diffs"] as? [[String: Any]])?.first?["diff"] as? String) ?? ""
                #expect(diff.contains("-version: ") && diff.contains("+version: "), "\(diff)")
                let guards = plan?["guardsChecked"] as? [String] ?? []
                #expect(guards.contains("no irreversible migration is crossed"), "\(guards)")
            }
            for (body, words) in [(##"{"dryrun": true}"##, "unknown field 'dryrun'; did you mean 'dryRun'?"), (##"{"dryRun": "yes"}"##, "field 'dryRun' must be true or false"),
                                  (##"{"dryRun": 1}"##, "field 'dryRun' must be true or false"), (##"{"to": 3}"##, "field 'to' must be a string"),
                                  (##"["to"]"##, "must be a JSON object")] {
                try await client.execute(uri: "/api/v1/apps/api/rollback", method: .post, headers: auth, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .badRequest, "\(body)")
                    #expect(String(buffer: response.body).contains(words), "\(body): \(String(buffer: response.body))")
                }
            }
            #expect(try repo.snapshot() == before, "refs, objects and the working tree are as they were")
        }
    }

    /// Pin and unpin through the API write the CLI's commits with
    /// `Rewind-Trigger: api`; a wrong method on a known path is 405.
    @Test func pinUnpinAndWrongMethods() async throws {
        try await withServer { repo, client in
            let before = try repo.snapshot()
            try await client.execute(uri: "/api/v1/apps/api/pin", method: .post, headers: auth, body: ByteBuffer(string: ##"{"dryRun": true}"##)) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"planned\""))
            }
            #expect(try repo.snapshot() == before, "a dry run writes nothing")
            try await client.execute(uri: "/api/v1/apps/api/pin", method: .post) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/v1/apps/api/pin", method: .post, headers: auth, body: ByteBuffer(string: ##"{"reason": "hold for the migration"}"##)) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"pinned\""))
            }
            let pin = try repo.git("log", "-1", "--format=%B")
            #expect(pin.contains("Rewind-Action: pin") && pin.contains("Rewind-Trigger: api") && pin.contains("Rewind-Reason: hold for the migration"), "\(pin)")
            try await client.execute(uri: "/api/v1/apps/api/unpin", method: .post, headers: auth, body: ByteBuffer(string: ##"{"to": "#1"}"##)) { #expect($0.status == .badRequest) }
            try await client.execute(uri: "/api/v1/apps/api/unpin", method: .post, headers: auth) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"unpinned\""))
            }
            #expect(try repo.git("log", "-1", "--format=%B").contains("Rewind-Action: unpin"))
            try await client.execute(uri: "/api/v1/apps/nope/pin", method: .post, headers: auth) { #expect($0.status == .notFound) }
            for (uri, method, allow) in [("/api/v1/apps/api/rollback", HTTPRequest.Method.get, "POST"), ("/api/v1/status", .delete, "GET"),
                                         ("/hooks/alertmanager", .get, "POST"), ("/api/v1/audit", .post, "GET"), ("/api/v1/releases/abcd", .trace, "GET"),
                                         ("/apps/api", .options, "GET")] {
                try await client.execute(uri: uri, method: method, headers: auth) { response in
                    #expect(response.status == .methodNotAllowed, "\(method) \(uri): \(response.status)")
                    #expect(response.headers[.allow] == allow, "\(method) \(uri)")
                }
            }
        }
    }

    /// `GET /api/v1/apps/{app}` is one app of the status; `GET
    /// /api/v1/releases/{commit}` is `rewind show` with the message, the diff
    /// (as the git CLI prints it) and the notes.
    @Test func oneAppAndOneReleaseAreServed() async throws {
        try await withServer { repo, client in
            try await client.execute(uri: "/api/v1/apps/api", method: .get, headers: auth) { response in
                #expect(response.status == .ok)
                let app = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect(app?["app"] as? String == "api")
            }
            try await client.execute(uri: "/api/v1/apps/nope", method: .get, headers: auth) { #expect($0.status == .notFound) }
            let tip = try repo.tip()
            try repo.git("notes", "--ref=rewind", "add", "-m", "healthy app=api time=2026-01-01T00:00:00.000Z host=test", tip)
            try await client.execute(uri: "/api/v1/releases/\(tip)", method: .get, headers: auth) { response in
                #expect(response.status == .ok)
                let release = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect(release?["commit"] as? String == tip)
                #expect(release?["message"] as? String == (try repo.git("log", "-1", "--format=%B")) + "\n")
                #expect((release?["notes"] as? [String]) == ["healthy app=api time=2026-01-01T00:00:00.000Z host=test"])
                let apps = (release?["apps"] as? [[String: Any]] ?? []).compactMap { $0["app"] as? String }
                let diffs = release?["diffs"] as? [[String: Any]] ?? []
                #expect(diffs.compactMap { $0["app"] as? String } == apps)
                for diff in diffs {
                    let app = diff["app"] as? String ?? ""
                    let oracle = try repo.git("diff", "\(tip)~1", tip, "--", "apps/\(app)")
                    let body = (diff["diff"] as? String ?? "").split(separator: "\n").filter { $0.hasPrefix("+") || $0.hasPrefix("-") }
                    #expect(body == oracle.split(separator: "\n").filter { $0.hasPrefix("+") || $0.hasPrefix("-") }, "\(app)")
                }
            }
            try await client.execute(uri: "/api/v1/releases/HEAD", method: .get, headers: auth) { #expect($0.status == .badRequest) }
            try await client.execute(uri: "/api/v1/releases/\(String(repeating: "0", count: 40))", method: .get, headers: auth) { #expect($0.status == .notFound) }
        }
    }

    /// The API's default rollback is idempotent like the CLI's.
    @Test func aRepeatedDefaultAPIRollbackWritesNothing() async throws {
        try await withServer { repo, client in
            try await client.execute(uri: "/api/v1/apps/api/rollback", method: .post, headers: auth) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("rolled-back"))
            }
            let tip = try repo.tip()
            try await client.execute(uri: "/api/v1/apps/api/rollback", method: .post, headers: auth) { response in
                #expect(response.status == .ok)
                let body = String(buffer: response.body)
                #expect(body.contains("already-rolled-back") && body.contains("--to #"), "\(body)")
            }
            #expect(try repo.tip() == tip)
            // A name from the path is not echoed at full length.
            let long = String(repeating: "n", count: 5_000)
            try await client.execute(uri: "/api/v1/apps/\(long)/rollback", method: .post, headers: auth) { response in
                #expect(response.status == .notFound)
                #expect(response.body.readableBytes < 1_000, "\(response.body.readableBytes) bytes")
            }
        }
    }

    @Test func metricsParseAsPrometheusText() async throws {
        try await withServer { _, client in
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .serviceUnavailable) }
            // Every answer counts under its route's label, refusals and errors included.
            try await client.execute(uri: "/api/v1/status", method: .get) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/v1/apps/api/releases?limit=-1", method: .get, headers: auth) { #expect($0.status == .badRequest) }
            try await client.execute(uri: "/api/v1/apps/api/releases", method: .get, headers: auth) { #expect($0.status == .ok) }
            try await client.execute(uri: "/api/v1/apps/api/rollback", method: .post) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/", method: .get) { #expect($0.status == .seeOther) }
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                for line in ["route=\"healthz\",code=\"200\"} 1", "route=\"api/v1/status\",code=\"401\"} 1", "route=\"api/v1/apps/releases\",code=\"400\"} 1",
                             "route=\"api/v1/apps/releases\",code=\"200\"} 1", "route=\"api/v1/apps/rollback\",code=\"401\"} 1", "route=\"ui/overview\",code=\"303\"} 1"] {
                    #expect(text.contains("rewind_http_requests_total{" + line), "\(line) in \(text)")
                }
                let check = try run("/usr/bin/promtool", ["check", "metrics"], stdin: text)
                #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
            }
        }
    }
}

/// The API's writes refuse a tip whose pins file does not parse, like the CLI's.
@Suite struct BrokenPinsRoutesTests {
    @Test func theAPIRefusesWritesOnABrokenPinsFile() async throws {
        let routes = RoutesTests()
        try await routes.withServer { repo, client in
            #expect(try repo.rewind("pin", "api").status == 0)
            try repo.commitChange("break the pins") { path in
                let file = path + "/rewind.pins.yaml"
                try writeFile(file, try String(contentsOfFile: file, encoding: .utf8) + "  worker: [unclosed\n")
            }
            let before = try repo.snapshot()
            for (uri, body) in [("/api/v1/apps/worker/pin", "{}"), ("/api/v1/apps/api/unpin", "{}"), ("/api/v1/apps/worker/rollback", ##"{"to": "#1"}"##)] {
                try await client.execute(uri: uri, method: .post, headers: routes.auth, body: ByteBuffer(string: body)) { response in
                    #expect(response.status.code >= 400, "\(uri)")
                    #expect(String(buffer: response.body).contains("rewind.pins.yaml"), "\(uri): \(String(buffer: response.body))")
                }
            }
            #expect(try repo.snapshot() == before)
        }
    }
}
