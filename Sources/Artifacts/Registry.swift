import Crypto
import DeployModel
import FoundationEssentials
import Synchronization
import SystemSupport
import WebClient

/// Credentials for registries, from a docker-style `config.json`:
/// `{"auths": {"HOST[:PORT]": {"auth": base64("USER:PASSWORD")}}}` (or
/// `username` and `password`). Never printed.
public struct RegistryCredentials: Sendable, CustomStringConvertible {
    fileprivate let byRegistry: [String: String]

    public init() { byRegistry = [:] }

    /// Reads `file`; a malformed file is an error naming the file and the
    /// registry entry, never a secret.
    public static func load(_ file: String) throws(ArtifactError) -> RegistryCredentials {
        guard let bytes = FileIO.read(file) else { throw ArtifactError("cannot read the registry credentials file \(file)") }
        struct Entry: Decodable { var auth: String?; var username: String?; var password: String? }
        struct Config: Decodable { var auths: [String: Entry]? }
        guard let config = try? JSONDecoder().decode(Config.self, from: Data(bytes)) else {
            throw ArtifactError("\(file) is not a docker config.json (expected {\"auths\": {\"REGISTRY\": {\"auth\": \"…\"}}})")
        }
        var byRegistry: [String: String] = [:]
        for (registry, entry) in config.auths ?? [:] {
            var host = registry
            for prefix in ["https://", "http://"] where host.hasPrefix(prefix) { host = String(host.dropFirst(prefix.count)) }
            host = String(host.prefix { $0 != "/" })
            if let auth = entry.auth, !auth.isEmpty {
                guard let decoded = Data(base64Encoded: auth), decoded.contains(UInt8(ascii: ":")) else {
                    throw ArtifactError("\(file): the auth of \(registry) is not base64 of USER:PASSWORD")
                }
                byRegistry[host] = auth
            } else if let user = entry.username, let password = entry.password {
                byRegistry[host] = Data("\(user):\(password)".utf8).base64EncodedString()
            }
        }
        return RegistryCredentials(byRegistry: byRegistry)
    }

    private init(byRegistry: [String: String]) { self.byRegistry = byRegistry }

    func basic(for registry: String) -> String? { byRegistry[registry].map { "Basic \($0)" } }

    /// The Docker Engine API's `X-Registry-Auth` for `registry`: base64url
    /// of `{"username", "password", "serveraddress"}`; nil without credentials.
    public func engineAuth(for registry: String) -> String? {
        guard let encoded = byRegistry[registry], let decoded = Data(base64Encoded: encoded),
              let colon = decoded.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        let user = String(decoding: decoded[..<colon], as: UTF8.self)
        let password = String(decoding: decoded[decoded.index(after: colon)...], as: UTF8.self)
        let json = JSON.object([("username", .string(user)), ("password", .string(password)), ("serveraddress", .string(registry))]).bytes(indent: nil)
        return Data(json).base64EncodedString().replacing("+", with: "-").replacing("/", with: "_")
    }

    public var description: String { "RegistryCredentials(\(byRegistry.keys.sorted().joined(separator: ", ")))" }
}

/// Talks the OCI distribution API to one registry: manifests by digest,
/// blobs streamed to disk, with basic auth or the bearer-token flow of
/// `WWW-Authenticate`. Plain HTTP only for the registries named in
/// `plainHTTP`; everything else is HTTPS (system trust store plus `caFile`).
final class RegistryClient: Sendable {
    let registry: String
    private let base: String
    private let web: WebClient
    private let credentials: RegistryCredentials
    private let timeout: Int64
    /// Bearer tokens by scope.
    private let tokens = Mutex<[String: String]>([:])

    init(registry: String, plainHTTP: Bool, credentials: RegistryCredentials, caFile: String?, timeoutMilliseconds: Int64) throws(ArtifactError) {
        self.registry = registry
        base = "\(plainHTTP ? "http" : "https")://\(registry)"
        do { web = try WebClient.shared(caFile: caFile) } catch { throw ArtifactError("\(error)") }
        self.credentials = credentials
        timeout = timeoutMilliseconds
    }

    /// The manifest (or index) `digest` of `repository`, verified against its digest.
    func manifest(_ repository: String, digest: String) throws(ArtifactError) -> ManifestDocument {
        let answer = try send("GET", "/v2/\(repository)/manifests/\(digest)", repository: repository,
                              accept: ManifestDocument.accept, limit: Int64(ManifestDocument.maxBytes))
        guard answer.status == 200 else { throw refusal(answer, what: "manifest \(digest) of \(repository)") }
        let actual = Self.digest(of: answer.body)
        guard actual == digest else {
            throw ArtifactError("the manifest \(repository)@\(digest) from \(registry) has the digest \(actual): it is not what was asked for; nothing was used")
        }
        return try ManifestDocument.parse(answer.body, contentType: answer.header("Content-Type"))
    }

    /// True when the registry has the manifest (`HEAD`), false on 404.
    func hasManifest(_ repository: String, digest: String) throws(ArtifactError) -> Bool {
        let answer = try send("HEAD", "/v2/\(repository)/manifests/\(digest)", repository: repository, accept: ManifestDocument.accept, limit: 0)
        if answer.status == 200 { return true }
        if answer.status == 404 { return false }
        throw refusal(answer, what: "manifest \(digest) of \(repository)")
    }

    /// Every tag of `repository` (`/v2/<name>/tags/list`, following the
    /// `Link` header's pages, at most 100 pages).
    func tags(_ repository: String) throws(ArtifactError) -> [String] {
        struct Page: Decodable { var tags: [String]? }
        var path: String? = "/v2/\(repository)/tags/list?n=1000"
        var all: [String] = []
        for _ in 0..<100 {
            guard let next = path else { break }
            let answer = try send("GET", next, repository: repository, accept: "application/json", limit: 4 << 20)
            guard answer.status == 200 else { throw refusal(answer, what: "tag list of \(repository)") }
            guard let page = try? JSONDecoder().decode(Page.self, from: Data(answer.body)) else {
                throw ArtifactError("\(registry) answered the tag list of \(repository) with something that is not one")
            }
            all += page.tags ?? []
            path = answer.header("Link").flatMap(Self.nextPage)
        }
        return all
    }

    /// The digest a tag names now (`HEAD` of its manifest; the registry's
    /// `Docker-Content-Digest`, else the manifest fetched and hashed).
    func digest(_ repository: String, tag: String) throws(ArtifactError) -> String {
        let answer = try send("HEAD", "/v2/\(repository)/manifests/\(tag)", repository: repository, accept: ManifestDocument.accept, limit: 0)
        guard answer.status == 200 else { throw refusal(answer, what: "manifest \(tag) of \(repository)") }
        if let digest = answer.header("Docker-Content-Digest"), ManifestDocument.isDigest(digest) { return digest }
        let full = try send("GET", "/v2/\(repository)/manifests/\(tag)", repository: repository, accept: ManifestDocument.accept, limit: Int64(ManifestDocument.maxBytes))
        guard full.status == 200 else { throw refusal(full, what: "manifest \(tag) of \(repository)") }
        return Self.digest(of: full.body)
    }

    /// `</v2/…?last=x&n=1000>; rel="next"` → the path.
    static func nextPage(_ link: String) -> String? {
        guard link.contains("rel=\"next\""), let open = link.firstIndex(of: "<"), let close = link.firstIndex(of: ">"), open < close else { return nil }
        let target = String(link[link.index(after: open)..<close])
        guard target.hasPrefix("/v2/") else { return nil }
        return target
    }

    /// Streams blob `digest` into `sink`; the status is checked first.
    func blob(_ repository: String, digest: String, limit: Int64, sink: @escaping @Sendable ([UInt8]) throws -> Void) throws(ArtifactError) {
        let answer = try send("GET", "/v2/\(repository)/blobs/\(digest)", repository: repository, accept: "*/*", limit: limit, sink: sink)
        guard answer.status == 200 else { throw refusal(answer, what: "blob \(digest) of \(repository)") }
    }

    /// One request, authenticated as the registry asks (once per scope).
    private func send(_ method: String, _ path: String, repository: String, accept: String, limit: Int64,
                      sink: (@Sendable ([UInt8]) throws -> Void)? = nil) throws(ArtifactError) -> WebAnswer {
        let scope = "repository:\(repository):pull"
        var authorization = tokens.withLock { $0[scope] }.map { "Bearer \($0)" }
        for attempt in 0..<2 {
            var headers = [("Accept", accept)]
            if let authorization { headers.append(("Authorization", authorization)) }
            let answer = try exchange(method, base + path, headers: headers, limit: limit, sink: sink)
            guard answer.status == 401, attempt == 0, let challenge = answer.header("WWW-Authenticate") else { return answer }
            authorization = try authenticate(challenge, scope: scope)
        }
        throw ArtifactError("\(registry) refused the credentials (401)")
    }

    private func exchange(_ method: String, _ url: String, headers: [(String, String)], limit: Int64,
                          sink: (@Sendable ([UInt8]) throws -> Void)?) throws(ArtifactError) -> WebAnswer {
        do {
            if let sink {
                return try web.stream(method, url, headers: headers, limit: limit, timeoutMilliseconds: timeout) { buffer in
                    try sink(Array(buffer.readableBytesView))
                }
            }
            return try web.exchange(method, url, headers: headers, limit: Int(max(limit, 65_536)), timeoutMilliseconds: timeout)
        } catch let error as ArtifactError {
            throw error
        } catch {
            throw ArtifactError("registry \(registry): \(error)")
        }
    }

    /// Answers a 401's challenge: Basic with the stored credentials, or a
    /// bearer token from the realm it names.
    private func authenticate(_ challenge: String, scope: String) throws(ArtifactError) -> String {
        let (scheme, parameters) = Self.parseChallenge(challenge)
        let basic = credentials.basic(for: registry)
        if scheme == "basic" {
            guard let basic else { throw ArtifactError("\(registry) needs credentials (401); pass a docker config.json with --registry-auth") }
            return basic
        }
        guard scheme == "bearer", let realm = parameters["realm"], realm.hasPrefix("https://") || realm.hasPrefix("http://") else {
            throw ArtifactError("\(registry) asks for an authentication Rewind does not speak (\(scheme))")
        }
        var query = ["scope=\(HTTPEndpoint.encode(parameters["scope"] ?? scope))"]
        if let service = parameters["service"] { query.insert("service=\(HTTPEndpoint.encode(service))", at: 0) }
        let url = realm + (realm.contains("?") ? "&" : "?") + query.joined(separator: "&")
        let answer = try exchange("GET", url, headers: basic.map { [("Authorization", $0)] } ?? [], limit: 1 << 20, sink: nil)
        guard answer.status == 200 else {
            throw ArtifactError("\(registry)'s token service refused (\(answer.status))" + (basic == nil ? "; pass a docker config.json with --registry-auth" : ": check the credentials"))
        }
        struct Token: Decodable { var token: String?; var access_token: String? }
        guard let decoded = try? JSONDecoder().decode(Token.self, from: Data(answer.body)), let token = decoded.token ?? decoded.access_token, !token.isEmpty else {
            throw ArtifactError("\(registry)'s token service answered without a token")
        }
        tokens.withLock { $0[parameters["scope"] ?? scope] = token }
        return "Bearer \(token)"
    }

    private func refusal(_ answer: WebAnswer, what: String) -> ArtifactError {
        switch answer.status {
        case 401: return ArtifactError("\(registry) refused to give the \(what): 401 (pass a docker config.json with --registry-auth, or check it)")
        case 403: return ArtifactError("\(registry) refused to give the \(what): 403 (the credentials may not pull this repository)")
        case 404: return ArtifactError("\(registry) has no \(what) (404: deleted, or garbage-collected)")
        default: return ArtifactError("\(registry) answered \(answer.status) for the \(what)")
        }
    }

    /// `Bearer realm="…",service="…"` → ("bearer", [realm: …, service: …]).
    static func parseChallenge(_ header: String) -> (String, [String: String]) {
        let trimmed = header.drop { $0 == " " }
        let scheme = trimmed.prefix { $0 != " " }.lowercased()
        var parameters: [String: String] = [:]
        var rest = trimmed.dropFirst(scheme.count)
        while !rest.isEmpty {
            rest = rest.drop { $0 == " " || $0 == "," }
            guard let equals = rest.firstIndex(of: "=") else { break }
            let key = rest[..<equals].trimmingCharacters().lowercased()
            rest = rest[rest.index(after: equals)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                while let character = rest.first, character != "\"" {
                    if character == "\\" { rest = rest.dropFirst() }
                    if let next = rest.first { value.append(next) }
                    rest = rest.dropFirst()
                }
                rest = rest.dropFirst()
            } else {
                value = String(rest.prefix { $0 != "," })
                rest = rest.dropFirst(value.count)
            }
            parameters[key] = value
        }
        return (scheme, parameters)
    }

    static func digest(of bytes: [UInt8]) -> String {
        "sha256:" + ArtifactStore.hex(SHA256.hash(data: bytes))
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
