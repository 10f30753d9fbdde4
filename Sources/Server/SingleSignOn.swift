import Crypto
import DeployModel
import FoundationEssentials
import JWTKit
import Rollback
import Synchronization
import SystemSupport
import WebClient

/// Single sign-on through an OpenID Connect provider (`serve --oidc-issuer`):
/// the authorization code flow with PKCE (S256), the provider found by
/// discovery, the ID token's signature checked by jwt-kit against the
/// provider's JWKS (fetched again when a token names a key it does not
/// have: key rotation), and `iss`, `aud`, `exp` and the nonce checked. The
/// groups claim maps to a role through the roles file; the person's name
/// becomes `Rewind-Actor`.
public final class SingleSignOn: Sendable {
    public struct Settings: Sendable {
        public var issuer: String
        public var clientID: String
        public var clientSecret: String?
        /// serve's address as the browser reaches it; the callback is `<publicURL>/login/oidc/callback`.
        public var publicURL: String
        /// The claim that lists the person's groups.
        public var groupsClaim = "groups"
        /// Group → role (`--oidc-roles-file`).
        public var roles: [String: Role]
        public var caFile: String?

        public init(issuer: String, clientID: String, clientSecret: String?, publicURL: String, roles: [String: Role], caFile: String?) {
            (self.issuer, self.clientID, self.clientSecret, self.publicURL, self.roles, self.caFile) = (issuer, clientID, clientSecret, publicURL, roles, caFile)
        }

        var redirectURI: String { (publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL) + "/login/oidc/callback" }
    }

    /// What discovery found (`/.well-known/openid-configuration`).
    struct Provider: Sendable {
        let issuer: String
        let authorizationEndpoint: String
        let tokenEndpoint: WebURL
        let jwksURI: WebURL
    }

    /// A sign-in under way: what the callback must match.
    struct Pending: Sendable {
        let verifier: String
        let nonce: String
        let next: String
        let expires: Int64
    }

    let settings: Settings
    let provider: Provider
    let keys = JWTKeyCollection()
    private let pending = Mutex<[String: Pending]>([:])
    /// When the JWKS was last fetched (wall ms): a token with an unknown key fetches it again at most every `refetchAfter` ms.
    private let fetchedAt = Mutex<Int64>(0)
    let refetchAfter: Int64
    private let client: WebClient

    init(settings: Settings, provider: Provider, client: WebClient, refetchAfter: Int64 = 10_000) {
        self.settings = settings
        self.provider = provider
        self.client = client
        self.refetchAfter = refetchAfter
    }

    /// Discovers the provider and fetches its keys; an error names the
    /// issuer and what failed (serve does not start without them).
    public static func start(_ settings: Settings) async throws(RewindError) -> SingleSignOn {
        let place = "--oidc-issuer \(settings.issuer)"
        guard let issuerURL = WebURL(settings.issuer) else {
            throw RewindError(.usage, "\(place) is not an http:// or https:// URL with a host", hint: "the issuer as the provider names it, e.g. https://login.example.com/realms/ops")
        }
        let client: WebClient
        do { client = try WebClient.shared(caFile: settings.caFile) } catch { throw RewindError(.usage, "\(place): \(error)") }
        struct Discovery: Decodable {
            let issuer: String?
            let authorization_endpoint: String?
            let token_endpoint: String?
            let jwks_uri: String?
        }
        let document: Discovery
        do {
            let answer = try await client.send("GET", WebURL(issuerURL.appending("/.well-known/openid-configuration")) ?? issuerURL, timeoutMilliseconds: 10_000)
            guard answer.status == 200 else { throw WebError("answered \(answer.status) without a discovery document") }
            document = try JSONDecoder().decode(Discovery.self, from: Data(answer.body))
        } catch {
            throw RewindError(.usage, "\(place): discovery failed: \(error)", hint: "check the issuer URL, that the provider is up, and --ca-file for a private authority")
        }
        guard let issuer = document.issuer, let authorization = document.authorization_endpoint,
              let token = document.token_endpoint.flatMap(WebURL.init), let jwks = document.jwks_uri.flatMap(WebURL.init),
              authorization.hasPrefix("https://") || authorization.hasPrefix("http://") else {
            throw RewindError(.usage, "\(place): the discovery document lacks issuer, authorization_endpoint, token_endpoint or jwks_uri")
        }
        guard issuer == settings.issuer || issuer == settings.issuer + "/" || issuer + "/" == settings.issuer else {
            throw RewindError(.usage, "\(place): the provider calls itself \(issuer)", hint: "give --oidc-issuer exactly as the provider's issuer")
        }
        let sso = SingleSignOn(settings: settings, provider: Provider(issuer: issuer, authorizationEndpoint: authorization, tokenEndpoint: token, jwksURI: jwks), client: client)
        do { try await sso.fetchKeys() } catch { throw RewindError(.usage, "\(place): cannot read its keys (jwks_uri): \(error)") }
        return sso
    }

    /// The key ids of the JWKS as last fetched.
    private let knownKeys = Mutex<Set<String>>([])

    /// Fetches the provider's JWKS into the key collection.
    func fetchKeys() async throws {
        struct KeySet: Decodable {
            struct Key: Decodable { let kid: String? }
            let keys: [Key]
        }
        let answer = try await client.send("GET", provider.jwksURI, timeoutMilliseconds: 10_000)
        guard answer.status == 200 else { throw WebError("jwks_uri answered \(answer.status)") }
        let ids = try JSONDecoder().decode(KeySet.self, from: Data(answer.body)).keys.compactMap(\.kid)
        _ = try await keys.add(jwksJSON: String(decoding: answer.body, as: UTF8.self))
        knownKeys.withLock { $0.formUnion(ids) }
        fetchedAt.withLock { $0 = Clock.wallMilliseconds() }
    }

    /// The provider's sign-in page for a new sign-in that returns to `next`:
    /// a one-time state, a nonce, and the PKCE challenge of a fresh verifier.
    func authorizationURL(next: String, now: Int64 = Clock.wallMilliseconds()) -> (url: String, state: String) {
        let state = Sessions.randomToken(), nonce = Sessions.randomToken(), verifier = Sessions.randomToken() + Sessions.randomToken()
        pending.withLock { all in
            all = all.filter { $0.value.expires > now }
            if all.count >= 10_000, let oldest = all.min(by: { $0.value.expires < $1.value.expires }) { all[oldest.key] = nil }
            all[state] = Pending(verifier: verifier, nonce: nonce, next: next, expires: now + 10 * 60_000)
        }
        let challenge = Self.base64URL(Array(SHA256.hash(data: Array(verifier.utf8))))
        let query = [("response_type", "code"), ("client_id", settings.clientID), ("redirect_uri", settings.redirectURI), ("scope", "openid profile email"),
                     ("state", state), ("nonce", nonce), ("code_challenge", challenge), ("code_challenge_method", "S256")]
        let separator = provider.authorizationEndpoint.contains("?") ? "&" : "?"
        return (provider.authorizationEndpoint + separator + query.map { "\($0)=\(HTTPEndpoint.encode($1))" }.joined(separator: "&"), state)
    }

    /// Why a sign-in failed: for the log, never for the browser.
    struct Failure: Error, CustomStringConvertible, Sendable {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// The callback: the state must be one this server gave out (once), the
    /// code is exchanged with the verifier, and the ID token checked.
    /// Who signed in, the page to return to, and when the session ends.
    func complete(code: String?, state: String?, error: String?, now: Int64 = Clock.wallMilliseconds()) async throws(Failure) -> (Identity, next: String, expires: Int64) {
        guard let state, let sign = pending.withLock({ $0.removeValue(forKey: state) }), sign.expires > now else {
            throw Failure("unknown, used or expired state (a sign-in is good for 10 minutes, once)")
        }
        if let error { throw Failure("the provider refused: \(Bounded.text(error, limit: 200))") }
        guard let code, !code.isEmpty else { throw Failure("the provider sent no code") }
        var form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", settings.redirectURI), ("client_id", settings.clientID),
                    ("code_verifier", sign.verifier)]
        if let secret = settings.clientSecret { form.append(("client_secret", secret)) }
        let body = form.map { "\($0)=\(HTTPEndpoint.encode($1))" }.joined(separator: "&")
        let answer: (status: Int, body: [UInt8])
        do {
            answer = try await client.send("POST", provider.tokenEndpoint, body: Array(body.utf8), contentType: "application/x-www-form-urlencoded", timeoutMilliseconds: 10_000)
        } catch {
            throw Failure("the token request failed: \(error)")
        }
        struct Tokens: Decodable { let id_token: String? }
        guard answer.status == 200, let idToken = (try? JSONDecoder().decode(Tokens.self, from: Data(answer.body)))?.id_token else {
            throw Failure("the token endpoint answered \(answer.status) without an id_token")
        }
        let (identity, expires) = try await verify(idToken, nonce: sign.nonce, now: now)
        return (identity, sign.next, expires)
    }

    /// The ID token's payload as Rewind reads it.
    struct IDToken: JWTIdentityToken {
        var iss: IssuerClaim
        var sub: SubjectClaim
        var aud: AudienceClaim
        var exp: ExpirationClaim
        var nonce: String?
        var preferred_username: String?
        var email: String?
        var audience: AudienceClaim { aud }

        func verify(using algorithm: some JWTAlgorithm) async throws {
            try exp.verifyNotExpired()
        }
    }

    /// Checks an ID token: signature (the JWKS fetched again once when the
    /// key is unknown), audience, expiry, issuer and nonce; then maps its
    /// groups to a role. Who it is, and when it expires (wall ms).
    func verify(_ token: String, nonce: String, now: Int64) async throws(Failure) -> (Identity, Int64) {
        let payload: IDToken
        do {
            payload = try await verifySignature(token)
        } catch let error as Failure {
            throw error
        } catch {
            throw Failure("the ID token does not verify: \(error)")
        }
        guard payload.iss.value == provider.issuer else { throw Failure("the ID token's issuer is \(Bounded.text(payload.iss.value, limit: 200)), not \(provider.issuer)") }
        guard let given = payload.nonce, constantTimeEqual(Array(given.utf8), Array(nonce.utf8)) else { throw Failure("the ID token's nonce is not this sign-in's") }
        let name = Self.actorName(payload.preferred_username ?? payload.email ?? payload.sub.value)
        let groups = Self.claim(settings.groupsClaim, of: token)
        guard let role = groups.compactMap({ settings.roles[$0] }).max() else {
            throw Failure("\(name) is in no group the roles file maps to a role (groups: \(groups.prefix(20).joined(separator: ", ")))")
        }
        let expires = Int64(payload.exp.value.timeIntervalSince1970 * 1000)
        return (Identity(name: name, role: role), expires)
    }

    private func verifySignature(_ token: String) async throws -> IDToken {
        if let kid = Self.keyID(of: token), !knownKeys.withLock({ $0.contains(kid) }) {
            // Key rotation: the provider signs with a key published after the last fetch.
            if Clock.wallMilliseconds() - fetchedAt.withLock({ $0 }) >= refetchAfter { try await fetchKeys() }
            guard knownKeys.withLock({ $0.contains(kid) }) else { throw Failure("the ID token's key \(Bounded.text(kid, limit: 64)) is not among the provider's keys") }
        }
        return try await keys.verify(token, as: IDToken.self, expectedAudience: settings.clientID)
    }

    /// The `kid` of a token's header, when it has one.
    static func keyID(of token: String) -> String? {
        struct Header: Decodable { let kid: String? }
        guard let part = token.split(separator: ".").first, let bytes = base64URLDecode(String(part)) else { return nil }
        return (try? JSONDecoder().decode(Header.self, from: Data(bytes)))?.kid
    }

    /// A claim's list of text values (a lone text is a list of one), read
    /// from a token whose signature was checked.
    static func claim(_ name: String, of token: String) -> [String] {
        let parts = token.split(separator: ".")
        guard parts.count == 3, let bytes = base64URLDecode(String(parts[1])),
              let payload = try? JSONDecoder().decode([String: ClaimValue].self, from: Data(bytes)) else { return [] }
        switch payload[name] {
        case .text(let one): return [one]
        case .list(let many): return many
        case .other, nil: return []
        }
    }

    /// A claim as far as a groups claim goes: a text, a list of texts, or anything else.
    enum ClaimValue: Decodable {
        case text(String), list([String]), other

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(String.self) { self = .text(text) } else if let list = try? container.decode([String].self) { self = .list(list) } else { self = .other }
        }
    }

    /// A name fit for `Rewind-Actor`: letters, digits and `. _ @ -`, at most 64.
    static func actorName(_ text: String) -> String {
        let kept = String(text.unicodeScalars.map { Credentials.isNameCharacter($0) ? Character($0) : "-" }.prefix(64))
        return kept.isEmpty ? "sso-user" : kept
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func base64URLDecode(_ text: String) -> [UInt8]? {
        var standard = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while standard.count % 4 != 0 { standard += "=" }
        return Data(base64Encoded: standard).map(Array.init)
    }
}

/// The roles file of single sign-on: `group: role` per line (`#` comments).
public enum GroupRoles {
    public static func parse(_ text: String, file: String) throws(RewindError) -> [String: Role] {
        var roles: [String: Role] = [:]
        for (index, raw) in text.lines.enumerated() {
            let line = raw.trimmingCharacters()
            if line.isEmpty || line.hasPrefix("#") { continue }
            let place = "\(file):\(index + 1)"
            guard let colon = line.lastIndex(of: ":") else { throw RewindError(.usage, "\(place): expected 'group: role'", hint: "e.g. platform-admins: admin") }
            let group = String(line[..<colon]).trimmingCharacters(), word = String(line[line.index(after: colon)...]).trimmingCharacters()
            guard !group.isEmpty else { throw RewindError(.usage, "\(place): the group is empty", hint: "e.g. platform-admins: admin") }
            guard let role = Role(name: word) else {
                let near = Spelling.nearest(word, in: Role.allCases.map(\.name)).map { "did you mean '\($0)'? " } ?? ""
                throw RewindError(.usage, "\(place): unknown role '\(Bounded.printable(word))' for group '\(Bounded.printable(group))'", hint: "\(near)the roles are viewer, operator, admin")
            }
            guard roles[group] == nil else { throw RewindError(.usage, "\(place): group '\(Bounded.printable(group))' is mapped twice", hint: "keep one line per group") }
            roles[group] = role
        }
        guard !roles.isEmpty else { throw RewindError(.usage, "\(file) maps no group to a role", hint: "add lines such as 'oncall: operator'") }
        return roles
    }

    public static func load(file: String) throws(RewindError) -> [String: Role] {
        guard let text = FileIO.readText(file) else { throw RewindError(.usage, "cannot read the roles file \(file)", hint: "check that it exists and is readable by Rewind") }
        return try parse(text, file: file)
    }
}
