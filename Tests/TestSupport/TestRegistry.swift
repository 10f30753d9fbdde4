import Foundation
import SystemSupport

/// Debian's `docker-registry` (CNCF distribution 2.8) on a free loopback
/// port, deletes enabled: plain HTTP, or HTTPS with a certificate from a
/// test CA (`caFile`), optionally with htpasswd basic authentication.
/// Artifacts are published with Debian's `skopeo` from OCI layouts the
/// tests build. `close()` stops it and deletes its files.
public final class TestRegistry {
    public let root: String
    public private(set) var port = 0
    private var pid: pid_t?
    public let tls: Bool
    /// The user and password htpasswd (or, with `tokens`, the token service) lets in.
    public let user: (name: String, password: String)?
    /// Bearer tokens from a token service (fixtures/registry-token-service.py) instead of htpasswd.
    public let tokens: Bool
    private var tokenService: pid_t?
    /// The test CA that signed the HTTPS certificate.
    public var caFile: String { root + "/ca.pem" }

    public init(tls: Bool = false, user: (name: String, password: String)? = nil, tokens: Bool = false) throws {
        self.tls = tls
        self.user = user
        self.tokens = tokens
        root = FileManager.default.temporaryDirectory.appendingPathComponent("rewind-registry-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        if tls { try makeTestCertificates(in: root) }
        if tokens, let user {
            try startTokenService(user)
        } else if let user {
            // bcrypt, as the registry requires (glibc's crypt through Debian's Python).
            let hash = try run("/usr/bin/python3", ["-W", "ignore", "-c", "import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))", user.password])
            guard hash.status == 0, hash.stdout.hasPrefix("$2") else { throw TestFailure("bcrypt: \(hash.stderr)") }
            try writeFile(root + "/htpasswd", "\(user.name):\(hash.stdout.trimmingCharacters(in: .whitespacesAndNewlines))\n")
        }
        try start()
    }

    /// Credentials for skopeo and curl.
    private var credentialArguments: (skopeo: [String], curl: [String]) {
        guard let user else { return ([], []) }
        return (["--dest-creds", "\(user.name):\(user.password)"], ["-u", "\(user.name):\(user.password)"])
    }

    /// `127.0.0.1:PORT`, as a reference's registry.
    public var host: String { "127.0.0.1:\(port)" }

    /// Starts it (again, on the same port and storage after `stop()`).
    public func start() throws {
        // The same port again after `stop()`; a fresh one when that is taken (or on the first start).
        if port != 0, try launch(port) { return }
        for _ in 0..<5 {
            guard let free = Loopback.freeAppPort() else { throw TestFailure("no free port") }
            port = free
            if try launch(port) { return }
        }
        throw TestFailure("docker-registry did not start:\n\(log)")
    }

    /// True once it answers on `port`; false when it exited (the port was taken meanwhile).
    private func launch(_ port: Int) throws -> Bool {
        try writeFile(root + "/config.yml", """
            version: 0.1
            log:
              level: info
            storage:
              filesystem:
                rootdirectory: \(root)/data
              delete:
                enabled: true
            http:
              addr: 127.0.0.1:\(port)
            """ + (tls ? "\n  tls:\n    certificate: \(root)/server.pem\n    key: \(root)/server.key" : "")
            + authSection + notificationsSection + "\n")
        let started = try Spawn.start(SpawnOptions(program: "/usr/bin/docker-registry", arguments: ["serve", root + "/config.yml"],
                                                   environment: ProcessInfo.processInfo.environment, outputFile: root + "/registry.log"))
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if tls || user != nil ? Loopback.canConnect(port: port) : (try? Loopback.get(port: port, path: "/v2/", timeoutMilliseconds: 1_000))?.status == 200 {
                pid = started
                return true
            }
            if let _ = Spawn.poll(started) { return false }
            Thread.sleep(forTimeInterval: 0.05)
        }
        Spawn.stop(started, graceMilliseconds: 1_000)
        throw TestFailure("docker-registry did not answer on \(port):\n\(log)")
    }

    /// The registry's `auth:` section: htpasswd, token, or none.
    private var authSection: String {
        guard user != nil else { return "" }
        guard tokens else { return "\nauth:\n  htpasswd:\n    realm: rewind-test\n    path: \(root)/htpasswd" }
        return "\nauth:\n  token:\n    realm: http://127.0.0.1:\(tokenPort)/token\n    service: rewind-test-registry\n    issuer: rewind-test-issuer\n    rootcertbundle: \(root)/token.pem"
    }

    private var tokenPort = 0

    /// Where push notifications go (`rewind serve`'s /hooks/registry) and the bearer token they carry.
    public private(set) var notifications: (url: String, token: String)?

    /// Sends the registry's notifications to `url` from now on (restarts it on the same port and storage).
    public func sendNotifications(to url: String, token: String) throws {
        notifications = (url, token)
        stop()
        try start()
    }

    private var notificationsSection: String {
        guard let notifications else { return "" }
        return """

            notifications:
              endpoints:
                - name: rewind
                  url: \(notifications.url)
                  headers:
                    Authorization: [Bearer \(notifications.token)]
                  timeout: 2s
                  threshold: 5
                  backoff: 200ms
            """
    }

    /// A signing key and its self-signed certificate (the registry's
    /// rootcertbundle), and the token service on a free port.
    private func startTokenService(_ user: (name: String, password: String)) throws {
        let made = try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "token.key", "-out", "token.pem", "-days", "2",
                                                "-subj", "/CN=rewind-test-issuer"], in: root)
        guard made.status == 0 else { throw TestFailure("openssl: \(made.stderr)") }
        guard let free = Loopback.freeAppPort() else { throw TestFailure("no free port") }
        tokenPort = free
        tokenService = try Spawn.start(SpawnOptions(program: "/usr/bin/python3",
                                                    arguments: [packageRoot + "/fixtures/registry-token-service.py", String(free), root + "/token.key", root + "/token.pem",
                                                                "rewind-test-issuer", user.name, user.password],
                                                    environment: ProcessInfo.processInfo.environment, outputFile: root + "/token-service.log"))
        let deadline = Date().addingTimeInterval(20)
        while !Loopback.canConnect(port: free) {
            guard Date() < deadline else { throw TestFailure("the token service did not start:\n\((try? String(contentsOfFile: root + "/token-service.log", encoding: .utf8)) ?? "")") }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    public var log: String { (try? String(contentsOfFile: root + "/registry.log", encoding: .utf8)) ?? "" }

    /// Stops it; its storage stays for `start()`.
    public func stop() {
        if let pid { Spawn.stop(pid, graceMilliseconds: 2_000) }
        pid = nil
    }

    public func close() {
        stop()
        if let tokenService { Spawn.stop(tokenService, graceMilliseconds: 1_000) }
        tokenService = nil
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Publishes `files` (path → (text, executable)) as one tar+gzip layer
    /// of an OCI image `repository:tag`; returns the manifest's digest.
    @discardableResult
    public func publish(_ repository: String, tag: String, files: [String: (text: String, executable: Bool)]) throws -> String {
        let work = root + "/build-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: work) }
        for (path, file) in files { try writeFile(work + "/tree/" + path, file.text, executable: file.executable) }
        try FileManager.default.createDirectory(atPath: work + "/tree", withIntermediateDirectories: true)
        let tar = try run("/usr/bin/tar", ["--owner=0", "--group=0", "--numeric-owner", "-czf", work + "/layer.tar.gz", "-C", work + "/tree", "."])
        guard tar.status == 0 else { throw TestFailure("tar: \(tar.stderr)") }
        return try publishLayout(repository, tag: tag, layer: work + "/layer.tar.gz", mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", work: work)
    }

    /// Publishes a prepared layer file (any media type) as an OCI image.
    /// With `diffID`, the config lists the (uncompressed) layer's digest as its diff id, as engines that run the image check.
    public func publishLayout(_ repository: String, tag: String, layer: String, mediaType: String, work: String, diffID: Bool = false) throws -> String {
        let layout = work + "/layout"
        try FileManager.default.createDirectory(atPath: layout + "/blobs/sha256", withIntermediateDirectories: true)
        func store(_ data: Data) throws -> (digest: String, size: Int) {
            let digest = try sha256(data)
            try data.write(to: URL(fileURLWithPath: layout + "/blobs/sha256/" + digest))
            return ("sha256:" + digest, data.count)
        }
        let layerBlob = try store(Data(contentsOf: URL(fileURLWithPath: layer)))
        let diffIDs = diffID ? "\"\(layerBlob.digest)\"" : ""
        let config = try store(Data("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\(diffIDs)]}}".utf8))
        let manifest = try store(Data("""
            {"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",\
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\(config.digest)","size":\(config.size)},\
            "layers":[{"mediaType":"\(mediaType)","digest":"\(layerBlob.digest)","size":\(layerBlob.size)}]}
            """.utf8))
        try writeFile(layout + "/oci-layout", #"{"imageLayoutVersion":"1.0.0"}"#)
        try writeFile(layout + "/index.json", """
            {"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\(manifest.digest)",\
            "size":\(manifest.size),"annotations":{"org.opencontainers.image.ref.name":"\(tag)"}}]}
            """)
        let copy = try run("/usr/bin/skopeo", ["copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false"] + credentialArguments.skopeo
                           + ["oci:\(layout):\(tag)", "docker://\(host)/\(repository):\(tag)"])
        guard copy.status == 0 else { throw TestFailure("skopeo copy: \(copy.stderr)") }
        return manifest.digest
    }

    /// Pushes the manifest `repository:source` again under `tag` (the same digest: a re-push of the same image).
    public func push(_ repository: String, tag: String, from source: String) throws {
        let tlsArguments = ["--src-tls-verify=false", "--dest-tls-verify=false"]
        let credentials = user.map { ["--src-creds", "\($0.name):\($0.password)"] } ?? []
        let copy = try run("/usr/bin/skopeo", ["copy", "--quiet", "--preserve-digests"] + tlsArguments + credentials + credentialArguments.skopeo
                           + ["docker://\(host)/\(repository):\(source)", "docker://\(host)/\(repository):\(tag)"])
        guard copy.status == 0 else { throw TestFailure("skopeo copy: \(copy.stderr)") }
    }

    /// Deletes a manifest, as garbage collection after a retention policy would.
    public func delete(_ repository: String, digest: String) throws {
        let result = try run("/usr/bin/curl", ["-sS", "-k", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE"] + credentialArguments.curl
                             + ["\(tls ? "https" : "http")://\(host)/v2/\(repository)/manifests/\(digest)"])
        guard result.stdout == "202" else { throw TestFailure("DELETE \(digest): \(result.stdout) \(result.stderr)") }
    }

    private func sha256(_ data: Data) throws -> String {
        let file = root + "/hash-\(UUID().uuidString.prefix(8))"
        try data.write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try run("/usr/bin/sha256sum", [file])
        guard let hex = result.stdout.split(separator: " ").first, hex.count == 64 else { throw TestFailure("sha256sum: \(result.stderr)") }
        return String(hex)
    }
}
