import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// An http:// or https:// URL Rewind sends requests to (Prometheus,
/// notification webhooks). Host names are resolved by the system resolver.
/// Its `description` is `scheme://host:port` only: the path of a webhook
/// URL often is its secret.
public struct WebURL: Sendable, Equatable, CustomStringConvertible {
    public let text: String
    public let secure: Bool
    public let host: String
    public let port: Int

    /// Nil for anything but http(s) with a host, or a URL with credentials in it.
    public init?(_ text: String) {
        let secure: Bool
        if text.hasPrefix("https://") { secure = true } else if text.hasPrefix("http://") { secure = false } else { return nil }
        let rest = text.dropFirst(secure ? 8 : 7)
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        var host = Substring(authority)
        var port = secure ? 443 : 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { guard let p = Int(after.dropFirst()) else { return nil }; port = p } else if !after.isEmpty { return nil }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let p = Int(authority[authority.index(after: colon)...]) else { return nil }
            port = p
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
        self.text = text
        self.secure = secure
        self.host = String(host)
        self.port = port
    }

    public var description: String { "\(secure ? "https" : "http")://\(host):\(port)" }

    /// This URL with `suffix` (a path and query) added to its path.
    public func appending(_ suffix: String) -> String {
        var base = text
        while base.hasSuffix("/") { base.removeLast() }
        return base + suffix
    }
}

/// A failed request, described without the URL's path.
public struct WebError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Rewind's HTTP client: HTTP/1.1 and HTTPS (the system's certificate
/// authorities, plus `--ca-file`), host names, redirects (at most 5),
/// connect and read timeouts. Synchronous: the reconciler's thread and the
/// notifier's wait for the answer. One client per CA file lives as long as
/// the process.
public final class WebClient: Sendable {
    let client: HTTPClient

    private static let clients = Mutex<[String: WebClient]>([:])

    /// The client that trusts the system's authorities and those in `caFile`.
    /// `quiet`: no read timeout (only each request's deadline), for answers
    /// that may say nothing for minutes: a container engine's events, logs,
    /// `wait` and `stop`; and up to 1,024 connections to one host instead of
    /// 8, since each running container holds one open for its log stream.
    public static func shared(caFile: String? = nil, quiet: Bool = false) throws -> WebClient {
        try clients.withLock { clients in
            let key = (quiet ? "quiet:" : "") + (caFile ?? "")
            if let known = clients[key] { return known }
            let client = try WebClient(caFile: caFile, readTimeout: quiet ? nil : .seconds(30))
            clients[key] = client
            return client
        }
    }

    private init(caFile: String?, readTimeout: TimeAmount?) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile {
            do {
                let certificates = try NIOSSLCertificate.fromPEMFile(caFile)
                tls.additionalTrustRoots = [.certificates(certificates)]
            } catch {
                throw WebError("cannot read the certificate authorities in \(caFile): \(error) (a PEM file of CA certificates)")
            }
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls, redirectConfiguration: .follow(max: 5, allowCycles: false),
                                                     timeout: .init(connect: .seconds(5), read: readTimeout))
        configuration.decompression = .disabled
        if readTimeout == nil {
            configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 1_024)
        }
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Sends a request and waits at most `timeoutMilliseconds` for the whole
    /// answer. The body read is bounded (4 MiB).
    public func request(_ method: String, _ url: WebURL, path: String? = nil, body: [UInt8]? = nil, contentType: String = "application/json",
                        timeoutMilliseconds: Int64) throws -> (status: Int, body: [UInt8]) {
        let request = try Self.make(method, url, target: path.map(url.appending) ?? url.text, body: body, contentType: contentType, accept: false)
        do {
            return Self.answer(try client.execute(request: request, deadline: .now() + .milliseconds(timeoutMilliseconds)).wait())
        } catch {
            throw WebError("\(method) \(url): \(Self.describe(error, timeout: timeoutMilliseconds, url: url))")
        }
    }

    /// `request`, awaited instead of waited for (for a caller on Swift's
    /// cooperative pool, such as a route of the web server).
    public func send(_ method: String, _ url: WebURL, body: [UInt8]? = nil, contentType: String = "application/json",
                     timeoutMilliseconds: Int64) async throws -> (status: Int, body: [UInt8]) {
        let request = try Self.make(method, url, target: url.text, body: body, contentType: contentType, accept: true)
        do {
            return Self.answer(try await client.execute(request: request, deadline: .now() + .milliseconds(timeoutMilliseconds)).get())
        } catch {
            throw WebError("\(method) \(url): \(Self.describe(error, timeout: timeoutMilliseconds, url: url))")
        }
    }

    /// The request both `request` and `send` make (`accept`: ask for JSON).
    private static func make(_ method: String, _ url: WebURL, target: String, body: [UInt8]?, contentType: String, accept: Bool) throws -> HTTPClient.Request {
        do {
            var headers = HTTPHeaders()
            headers.add(name: "User-Agent", value: "rewind")
            if accept { headers.add(name: "Accept", value: "application/json") }
            if body != nil { headers.add(name: "Content-Type", value: contentType) }
            return try HTTPClient.Request(url: target, method: HTTPMethod(rawValue: method), headers: headers, body: body.map { .bytes($0) })
        } catch {
            throw WebError("\(method) \(url): not a URL Rewind can send to")
        }
    }

    /// The status and the body, the body read bounded (4 MiB).
    private static func answer(_ response: HTTPClient.Response) -> (status: Int, body: [UInt8]) {
        (Int(response.status.code), response.body.map { Array($0.readableBytesView.prefix(4 << 20)) } ?? [])
    }

    /// What went wrong, in words a user can act on.
    static func describe(_ error: any Error, timeout: Int64, url: WebURL) -> String {
        if let error = error as? HTTPClientError {
            if error == .deadlineExceeded || error == .readTimeout { return "no answer within \(timeout) ms (timed out)" }
            if error == .connectTimeout { return "could not connect within 5 s (timed out)" }
            if error == .redirectLimitReached || error == .redirectCycleDetected { return "too many redirects" }
            return "\(error)"
        }
        if let error = error as? NIOSSLError {
            return "TLS failed: \(error); if \(url.host) uses a private certificate authority, pass its certificate with --ca-file"
        }
        if let error = error as? BoringSSLError {
            return "TLS failed: \(error); if \(url.host) uses a private certificate authority, pass its certificate with --ca-file"
        }
        let text = "\(error)"
        if text.contains("certificate") || text.contains("handshake") {
            return "TLS failed: \(text); if \(url.host) uses a private certificate authority, pass its certificate with --ca-file"
        }
        return text
    }
}
