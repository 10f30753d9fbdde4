import Foundation
import JWTKit
import Testing
import TestSupport
import SystemSupport
import WebClient
@testable import Server

/// The ID token checks of single sign-on, with keys made here: a token
/// signed by the provider's key passes; expired, signed by another key,
/// for another audience, from another issuer or with another nonce does
/// not; a key published after the last fetch (rotation) is fetched.
@Suite struct IDTokenTests {
    struct Claims: JWTPayload {
        var iss: IssuerClaim
        var sub: SubjectClaim
        var aud: AudienceClaim
        var exp: ExpirationClaim
        var nonce: String
        var preferred_username: String
        var groups: [String]
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    /// An RSA key made by openssl, and its public half as a JWK.
    static func key(_ dir: String, _ kid: String) throws -> (Insecure.RSA.PrivateKey, jwk: String) {
        let result = try run("/usr/bin/openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "\(dir)/\(kid).pem"])
        guard result.status == 0 else { throw TestFailure("openssl: \(result.stderr)") }
        let key = try Insecure.RSA.PrivateKey(pem: try String(contentsOfFile: "\(dir)/\(kid).pem", encoding: .utf8))
        let (n, e) = try key.publicKey.getKeyPrimitives()
        func url(_ data: Data) -> String { data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "") }
        return (key, #"{"kty":"RSA","alg":"RS256","use":"sig","kid":"\#(kid)","n":"\#(url(n))","e":"\#(url(e))"}"#)
    }

    static func sign(_ key: Insecure.RSA.PrivateKey, kid: String, iss: String = "https://idp.test", aud: String = "rewind", expiresIn: TimeInterval = 300,
                     nonce: String = "n0nce", groups: [String] = ["ops"]) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(rsa: key, digestAlgorithm: .sha256, kid: JWKIdentifier(string: kid))
        return try await keys.sign(Claims(iss: .init(value: iss), sub: .init(value: "alice"), aud: .init(value: [aud]), exp: .init(value: Date().addingTimeInterval(expiresIn)),
                                          nonce: nonce, preferred_username: "alice", groups: groups), kid: JWKIdentifier(string: kid))
    }

    @Test func onlyATokenOfTheProvidersKeyForThisClientNowAndThisSignInPasses() async throws {
        guard let port = Loopback.freeAppPort() else { throw TestFailure("no port") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rewind-idtoken-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/www", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (a, jwkA) = try Self.key(dir, "a"), (b, jwkB) = try Self.key(dir, "b"), (other, _) = try Self.key(dir, "c")
        try writeFile(dir + "/www/jwks", #"{"keys":[\#(jwkA)]}"#)
        let server = try Spawn.start(SpawnOptions(program: "/usr/bin/env", arguments: ["python3", "-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", dir + "/www"],
                                                  environment: ProcessInfo.processInfo.environment))
        defer { Spawn.stop(server, graceMilliseconds: 1_000) }
        try waitFor("the JWKS is served", timeout: 20) { Loopback.canConnect(port: port) }

        let settings = SingleSignOn.Settings(issuer: "https://idp.test", clientID: "rewind", clientSecret: nil, publicURL: "http://127.0.0.1:1",
                                             roles: ["ops": .operator, "everyone": .viewer], caFile: nil)
        let provider = SingleSignOn.Provider(issuer: "https://idp.test", authorizationEndpoint: "https://idp.test/authorize", tokenEndpoint: WebURL("https://idp.test/token")!,
                                             jwksURI: WebURL("http://127.0.0.1:\(port)/jwks")!)
        let sso = SingleSignOn(settings: settings, provider: provider, client: try WebClient.shared(), refetchAfter: 0)
        try await sso.fetchKeys()
        let now = Clock.wallMilliseconds()
        func failure(_ token: String, nonce: String = "n0nce") async -> String? {
            do { _ = try await sso.verify(token, nonce: nonce, now: now); return nil } catch { return "\(error)" }
        }

        let (identity, expires) = try await sso.verify(try await Self.sign(a, kid: "a", groups: ["everyone", "ops"]), nonce: "n0nce", now: now)
        #expect(identity == Identity(name: "alice", role: .operator) && expires > now + 200_000, "the highest role of the person's groups")
        #expect(await failure(try await Self.sign(a, kid: "a", expiresIn: -60))?.contains("expired") == true)
        #expect(await failure(try await Self.sign(other, kid: "a")) != nil, "signed by a key the provider does not publish")
        #expect(await failure(try await Self.sign(other, kid: "c")) != nil, "a key id the provider does not have")
        #expect(await failure(try await Self.sign(a, kid: "a", aud: "someone-else")) != nil, "another client's token")
        #expect(await failure(try await Self.sign(a, kid: "a", iss: "https://evil.test"))?.contains("issuer") == true)
        #expect(await failure(try await Self.sign(a, kid: "a"), nonce: "another")?.contains("nonce") == true, "a token of another sign-in")
        #expect(await failure(try await Self.sign(a, kid: "a", groups: ["contractors"]))?.contains("in no group the roles file maps to a role") == true)
        #expect(await failure("not.a.token") != nil)

        // Key rotation: the provider starts signing with b and publishes it; the next token fetches the keys again.
        let rotated = try await Self.sign(b, kid: "b")
        let before = await failure(rotated)
        #expect(before != nil, "b is not published yet")
        try writeFile(dir + "/www/jwks", #"{"keys":[\#(jwkA),\#(jwkB)]}"#)
        let after = await failure(rotated)
        #expect(after == nil, "b is fetched when a token names it: \(before ?? "") / \(after ?? "")")
    }

    /// A session of single sign-on ends when its ID token does (or after the usual 12 hours, if sooner).
    @Test func aSessionEndsWithItsToken() {
        let sessions = Sessions()
        let started = sessions.start(Identity(name: "alice", role: .operator), expires: 5_000, now: 1_000)
        #expect(sessions.session(started.id, now: 4_999)?.name == "alice")
        #expect(sessions.session(started.id, now: 5_000) == nil, "expired with the token")
        let long = sessions.start(Identity(name: "bob", role: .viewer), expires: .max, now: 0)
        #expect(long.session.expires == sessions.lifetimeMilliseconds)
    }

    @Test func theRolesFileNamesTheLineOfAMistake() throws {
        #expect(try GroupRoles.parse("# g: r\nops: operator\nall: viewer\n", file: "roles") == ["ops": .operator, "all": .viewer])
        // Written on Windows: CRLF line ends (one Character in Swift) are line ends too.
        #expect(try GroupRoles.parse("# g: r\r\nops: operator\r\nall: viewer\r\n", file: "roles") == ["ops": .operator, "all": .viewer])
        #expect { _ = try GroupRoles.parse("ops: admin\r\nall: root\r\n", file: "roles") } throws: { "\($0)".contains("roles:2: unknown role 'root'") }
        for (text, expected) in [("ops operator\n", "roles:1: expected 'group: role'"), ("\nops: root\n", "roles:2: unknown role 'root' for group 'ops'"),
                                 ("ops: admin\nops: viewer\n", "roles:2: group 'ops' is mapped twice"), ("# nothing\n", "roles maps no group to a role"),
                                 (": admin\n", "roles:1: the group is empty")] {
            #expect { _ = try GroupRoles.parse(text, file: "roles") } throws: { "\($0)".contains(expected) }
        }
    }
}
