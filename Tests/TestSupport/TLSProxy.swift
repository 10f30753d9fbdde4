import Foundation
import SystemSupport

/// nginx with TLS on a free loopback port, its certificate for `localhost`
/// and 127.0.0.1 signed by a certificate authority made for the test
/// (`caFile`, which the system does not trust). `/ok` answers 200 `fine`,
/// `/redirect` redirects to `/ok`; everything else is proxied to `upstream`
/// (http://127.0.0.1:PORT), or 404 without one.
public final class TLSProxy {
    public let directory: String
    public let port: Int
    public let caFile: String
    private var nginx: pid_t?

    public init(directory: String, upstream: Int? = nil) throws {
        self.directory = directory
        guard let free = Loopback.freeAppPort() else { throw TestFailure("no free port") }
        port = free
        caFile = directory + "/ca.pem"
        try FileManager.default.createDirectory(atPath: directory + "/tmp", withIntermediateDirectories: true)
        try makeTestCertificates(in: directory)
        let rest = upstream.map { "location / { proxy_pass http://127.0.0.1:\($0); }" } ?? "location / { return 404; }"
        nginx = try startNginx(directory: directory, port: port, http: """
            access_log \(directory)/access.log;
            server {
                listen 127.0.0.1:\(port) ssl;
                ssl_certificate \(directory)/server.pem;
                ssl_certificate_key \(directory)/server.key;
                location = /ok { return 200 "fine"; }
                location = /redirect { return 302 https://localhost:\(port)/ok; }
                \(rest)
            }
            """)
    }

    /// https://localhost:PORT + path.
    public func url(_ path: String) -> String { "https://localhost:\(port)\(path)" }

    /// nginx's access log so far.
    public var accessLog: String { (try? String(contentsOfFile: directory + "/access.log", encoding: .utf8)) ?? "" }

    public func stop() {
        if let nginx { Spawn.stop(nginx, graceMilliseconds: 2_000) }
        nginx = nil
    }

    deinit { stop() }
}

/// A certificate authority made for a test (`ca.pem`, which the system does
/// not trust) and a server certificate for `localhost` and 127.0.0.1 signed
/// by it (`server.pem`, `server.key`), in `directory`.
public func makeTestCertificates(in directory: String) throws {
    func openssl(_ arguments: [String]) throws {
        let result = try run("/usr/bin/openssl", arguments, in: directory)
        guard result.status == 0 else { throw TestFailure("openssl \(arguments.first ?? "") failed: \(result.stderr)") }
    }
    try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Rewind test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"])
    try writeFile(directory + "/server.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    try openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext"])
}
