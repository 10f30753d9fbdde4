import Crypto
import DeployModel
import Synchronization
import SystemSupport
import WebClient

#if canImport(Glibc)
import Glibc
#endif

/// Where artifacts come from and how large they may be.
public struct ArtifactOptions: Sendable {
    /// The content-addressed cache: `blobs/sha256/HEX`, unpacked OCI
    /// artifacts in `oci/HEX` (the manifest's digest), downloads in `url/HEX`.
    public var directory: String
    public var credentials = RegistryCredentials()
    /// Registries (`HOST:PORT`) spoken to over plain HTTP; all others over HTTPS.
    public var plainHTTP: Set<String> = []
    /// Certificate authorities to trust besides the system's.
    public var caFile: String?
    /// The largest blob, download or unpacked artifact.
    public var maxArtifactSize: Int64 = 2 << 30
    /// The longest a registry may take for one manifest or blob.
    public var timeoutMilliseconds: Int64 = 300_000

    public init(directory: String) { self.directory = directory }
}

/// Pulls artifacts into the cache and checks them by digest: an OCI
/// artifact by its manifest's digest and each layer's, a download and a
/// local file by their `sha256`. Nothing half-written is ever used: each
/// entry is written under a temporary name and renamed once verified.
public final class ArtifactStore: Sendable {
    public let options: ArtifactOptions
    private let clients = Mutex<[String: RegistryClient]>([:])
    /// Cache entries checked against their recorded digests by this process.
    private let verified = Mutex<Set<String>>([])

    public init(options: ArtifactOptions) { self.options = options }

    /// The local path of `artifact` (a file, or the directory an OCI
    /// artifact was unpacked into), pulled first when it is not cached.
    /// `root` resolves relative file paths.
    public func fetch(_ artifact: Artifact, root: (String) throws -> String) throws -> String {
        switch artifact.source {
        case .path(let path):
            let resolved = try root(path)
            if let expected = artifact.sha256 { try Self.verify(file: resolved, sha256: expected) }
            return resolved
        case .url(let url):
            return try download(url, sha256: artifact.sha256 ?? "")
        case .oci(let reference):
            return try pull(reference)
        }
    }

    /// The directory of an OCI artifact when it is cached, else nil.
    public func cached(_ reference: OCIReference) -> String? {
        guard let digest = reference.digest else { return nil }
        let hex = String(digest.dropFirst(7))
        return FileIO.exists("\(options.directory)/oci/\(hex).done") ? "\(options.directory)/oci/\(hex)" : nil
    }

    /// True when the registry still has the artifact's manifest.
    public func existsInRegistry(_ reference: OCIReference) throws -> Bool {
        guard let digest = reference.digest else { throw ArtifactError("\(reference) has no digest") }
        return try client(reference.registry).hasManifest(reference.repository, digest: digest)
    }

    // MARK: OCI

    /// Pulls an OCI artifact by digest (its index resolved for this host),
    /// verifies every digest and unpacks its layers in order.
    public func pull(_ reference: OCIReference) throws -> String {
        guard let digest = reference.digest else {
            throw ArtifactError("\(reference) names no digest; Rewind pulls only by digest (append @sha256:…)")
        }
        if let directory = cached(reference) {
            if verifiedOnce(String(digest.dropFirst(7))) {
                touch(directory + ".done")
                return directory
            }
            // Damaged since it was written (a disk error, a hand edit): pulled again.
            evict(String(digest.dropFirst(7)))
        }
        let client = try client(reference.registry)
        var manifest: ManifestDocument.Manifest
        switch try client.manifest(reference.repository, digest: digest) {
        case .manifest(let found): manifest = found
        case .index(let entries):
            let entry = try ManifestDocument.choose(entries)
            guard case .manifest(let found) = try client.manifest(reference.repository, digest: entry.digest) else {
                throw ArtifactError("the index \(digest) of \(reference.repository) points to another index; Rewind follows one level")
            }
            manifest = found
        }
        guard !manifest.layers.isEmpty else { throw ArtifactError("\(reference) has no layers: nothing to run") }
        for layer in manifest.layers { _ = try blob(layer, of: reference, client) }
        return try unpack(manifest, into: String(digest.dropFirst(7)), reference: reference)
    }

    /// The cached blob of a layer, downloaded and verified when absent.
    private func blob(_ layer: ManifestDocument.Descriptor, of reference: OCIReference, _ client: RegistryClient) throws -> String {
        let hex = String(layer.digest.dropFirst(7))
        let path = "\(options.directory)/blobs/sha256/\(hex)"
        if FileIO.exists(path) { return path }
        guard layer.size <= options.maxArtifactSize else {
            throw ArtifactError("layer \(layer.digest) of \(reference.repository) is \(layer.size) bytes, over --max-artifact-size (\(options.maxArtifactSize))")
        }
        try writeVerified(path, digest: layer.digest, size: layer.size, what: "layer \(layer.digest) of \(reference.repository) from \(reference.registry)") { sink in
            try client.blob(reference.repository, digest: layer.digest, limit: options.maxArtifactSize, sink: sink)
        }
        return path
    }

    /// Unpacks the layers into `oci/HEX` through a temporary directory;
    /// the `.done` marker is written last.
    private func unpack(_ manifest: ManifestDocument.Manifest, into hex: String, reference: OCIReference) throws -> String {
        let final = "\(options.directory)/oci/\(hex)"
        let temporary = "\(options.directory)/oci/.\(hex).\(getpid())"
        FileIO.removeTree(temporary)
        FileIO.makeDirectory(temporary)
        defer { FileIO.removeTree(temporary) }
        let root = open(temporary, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0 else { throw ArtifactError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        defer { close(root) }
        let extractor = TarExtractor(root: root, maxBytes: options.maxArtifactSize)
        for layer in manifest.layers {
            let blob = "\(options.directory)/blobs/sha256/\(layer.digest.dropFirst(7))"
            let type = layer.mediaType ?? ""
            if type.contains("tar") || type.isEmpty {
                if type.contains("zstd") { throw ArtifactError("layer \(layer.digest) is zstd-compressed; Rewind unpacks tar and tar+gzip layers") }
                let gunzip = GunzipStream(detect: true)
                try Self.readChunks(blob) { chunk in try extractor.push(try gunzip.push(chunk)) }
                try gunzip.finish()
                try extractor.finish()
            } else if let title = layer.annotations?["org.opencontainers.image.title"] {
                // An artifact pushed as a plain file (oras push): it keeps its title as its name.
                let parts = try TarExtractor.safeComponents(title)
                guard parts.count == 1 else { throw ArtifactError("the layer title '\(title)' is not a plain file name") }
                guard let bytes = FileIO.read(blob), FileIO.writeAtomically("\(temporary)/\(parts[0])", bytes) else {
                    throw ArtifactError("cannot place \(title) from layer \(layer.digest)")
                }
            } else {
                throw ArtifactError("layer \(layer.digest) of \(reference) has the media type '\(type)', which is neither a tar layer nor a titled file")
            }
        }
        FileIO.removeTree(final)
        guard rename(temporary, final) == 0 else { throw ArtifactError("cannot move the unpacked artifact into \(final): \(String(cString: strerror(errno)))") }
        let record = CacheRecord(reference: "\(reference)", layers: manifest.layers.map(\.digest), tree: try CacheRecord.treeDigest(final))
        guard FileIO.writeAtomically("\(final).done", text: record.text) else { throw ArtifactError("cannot mark \(final) complete") }
        verified.withLock { _ = $0.insert(hex) }
        return final
    }

    /// True when the entry `hex` matches what was recorded when it was
    /// written (its layers' digests and its unpacked files), checked once
    /// per process: a restarted reconciler does not trust its cache blindly.
    private func verifiedOnce(_ hex: String) -> Bool {
        if verified.withLock({ $0.contains(hex) }) { return true }
        let directory = "\(options.directory)/oci/\(hex)"
        guard let record = FileIO.readText(directory + ".done").flatMap(CacheRecord.init(text:)),
              (try? CacheRecord.treeDigest(directory)) == record.tree else { return false }
        for layer in record.layers {
            guard (try? Self.digest(file: "\(options.directory)/blobs/sha256/\(layer.dropFirst(7))")) == layer else { return false }
        }
        verified.withLock { _ = $0.insert(hex) }
        return true
    }

    /// Removes a damaged entry: its marker, its files and its layers' blobs.
    private func evict(_ hex: String) {
        let directory = "\(options.directory)/oci/\(hex)"
        let record = FileIO.readText(directory + ".done").flatMap(CacheRecord.init(text:))
        FileIO.removeTree(directory + ".done")
        FileIO.removeTree(directory)
        for layer in record?.layers ?? [] { FileIO.removeTree("\(options.directory)/blobs/sha256/\(layer.dropFirst(7))") }
    }

    static func digest(file: String) throws -> String {
        var hasher = SHA256()
        try readChunks(file) { hasher.update(data: $0) }
        return "sha256:" + hex(hasher.finalize())
    }

    // MARK: Downloads and files

    private func download(_ url: String, sha256: String) throws -> String {
        let path = "\(options.directory)/url/\(sha256)"
        if FileIO.exists(path) {
            // Checked once per process, like an OCI entry; a damaged download is fetched again.
            if verified.withLock({ $0.contains("url:" + sha256) }) || (try? Self.verify(file: path, sha256: sha256)) != nil {
                verified.withLock { _ = $0.insert("url:" + sha256) }
                touch(path)
                return path
            }
            FileIO.removeTree(path)
        }
        let web = try WebClient.shared(caFile: options.caFile)
        try writeVerified(path, digest: "sha256:\(sha256)", size: nil, what: "the download \((WebURL(url)?.description ?? "the URL"))") { sink in
            let answer = try web.stream("GET", url, limit: options.maxArtifactSize, timeoutMilliseconds: options.timeoutMilliseconds) { buffer in
                try sink(Array(buffer.readableBytesView))
            }
            guard answer.status == 200 else { throw ArtifactError("\((WebURL(url)?.description ?? "the URL")) answered \(answer.status)") }
        }
        return path
    }

    /// Fails unless the file's SHA-256 is `sha256`, naming both digests.
    public static func verify(file: String, sha256 expected: String) throws {
        let actual = String(try digest(file: file).dropFirst(7))
        guard actual == expected else {
            throw ArtifactError("the artifact \(file) has sha256 \(actual), but app.yaml expects \(expected); it was changed or is not this version's")
        }
    }

    // MARK: Plumbing

    /// Streams into a temporary file while hashing, checks the digest (and
    /// size), then renames it into place.
    private func writeVerified(_ path: String, digest: String, size: Int64?, what: String,
                               _ fetch: (@escaping @Sendable ([UInt8]) throws -> Void) throws -> Void) throws {
        FileIO.makeParent(path)
        let temporary = "\(path).\(getpid()).partial"
        let writer = try HashingWriter(path: temporary)
        defer { FileIO.removeTree(temporary) }
        try fetch { bytes in try writer.write(bytes) }
        let (actual, count) = try writer.finish()
        guard actual == digest else {
            throw ArtifactError("\(what) has the digest \(actual), not \(digest); it was not used")
        }
        if let size, size != count { throw ArtifactError("\(what) is \(count) bytes, but its manifest says \(size)") }
        guard rename(temporary, path) == 0 else { throw ArtifactError("cannot store \(path): \(String(cString: strerror(errno)))") }
    }

    func client(_ registry: String) throws -> RegistryClient {
        if let known = clients.withLock({ $0[registry] }) { return known }
        let client = try RegistryClient(registry: registry, plainHTTP: options.plainHTTP.contains(registry), credentials: options.credentials,
                                        caFile: options.caFile, timeoutMilliseconds: options.timeoutMilliseconds)
        clients.withLock { $0[registry] = client }
        return client
    }

    static func readChunks(_ path: String, _ body: ([UInt8]) throws -> Void) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ArtifactError("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw ArtifactError("cannot read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { return }
            try body(Array(buffer[0..<n]))
        }
    }

    static func hex(_ digest: SHA256.Digest) -> String { digest.map { String($0, radix: 16).leftPadded(2) }.joined() }
}

/// A file being written while its SHA-256 is computed (written from the
/// HTTP client's event loop, read back by the caller once it is done).
final class HashingWriter: Sendable {
    private struct State {
        var fd: Int32
        var hasher = SHA256()
        var count: Int64 = 0
    }
    private let state: Mutex<State>
    private let path: String

    init(path: String) throws(ArtifactError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ArtifactError("cannot create \(path): \(String(cString: strerror(errno)))") }
        self.path = path
        state = Mutex(State(fd: fd))
    }

    func write(_ bytes: [UInt8]) throws {
        try state.withLock { state throws(ArtifactError) in
            state.hasher.update(data: bytes)
            state.count += Int64(bytes.count)
            guard FileIO.writeAll(state.fd, bytes[...]) else { throw ArtifactError("cannot write \(path): \(String(cString: strerror(errno)))") }
        }
    }

    /// The digest (`sha256:HEX`) and size; the file is flushed and closed.
    func finish() throws -> (String, Int64) {
        try state.withLock { state throws(ArtifactError) in
            guard state.fd >= 0 else { throw ArtifactError("\(path) was finished twice") }
            let synced = fsync(state.fd) == 0
            close(state.fd)
            state.fd = -1
            guard synced else { throw ArtifactError("cannot flush \(path)") }
            return ("sha256:" + ArtifactStore.hex(state.hasher.finalize()), state.count)
        }
    }

    deinit {
        state.withLock { if $0.fd >= 0 { close($0.fd) } }
    }
}

extension ArtifactStore: ArtifactAvailability {
    /// The cache first; else the registry (a manifest HEAD by digest) or
    /// the download's server (a HEAD).
    public func availability(of artifact: Artifact) -> ArtifactCheck {
        switch artifact.source {
        case .path(let path):
            return FileIO.exists(path) ? .published(path) : .missing("\(path) does not exist")
        case .oci(let reference):
            if let directory = cached(reference) { return .cached(directory) }
            let where_ = "it is not in the artifact cache (\(options.directory))"
            do {
                return try existsInRegistry(reference)
                    ? .published("\(reference.registry) has \(reference.repository)@\(reference.digest ?? "")")
                    : .missing("\(where_), and \(reference.registry) has no manifest \(reference.digest ?? "") of \(reference.repository) (deleted, or garbage-collected)")
            } catch {
                return .missing("\(where_), and the registry cannot be asked: \(error)")
            }
        case .url(let url):
            let described = WebURL(url)?.description ?? "the URL"
            if let sha = artifact.sha256, FileIO.exists("\(options.directory)/url/\(sha)") { return .cached("\(options.directory)/url/\(sha)") }
            do {
                let answer = try WebClient.shared(caFile: options.caFile).exchange("HEAD", url, limit: 0, timeoutMilliseconds: min(options.timeoutMilliseconds, 30_000))
                return answer.status == 200 ? .published(described) : .missing("it is not in the artifact cache, and \(described) answered \(answer.status)")
            } catch {
                return .missing("it is not in the artifact cache, and \(described) cannot be asked: \(error)")
            }
        }
    }
}

/// What a cache entry was when it was written: the reference, its layers'
/// digests, and a digest of its unpacked entries (paths, modes, sizes,
/// inodes, change times, link targets). Stored in `oci/HEX.done`, written last.
struct CacheRecord: Equatable {
    var reference: String
    var layers: [String]
    var tree: String

    var text: String { "reference \(reference)\nlayers \(layers.joined(separator: " "))\ntree \(tree)\n" }

    init(reference: String, layers: [String], tree: String) {
        self.reference = reference
        self.layers = layers
        self.tree = tree
    }

    init?(text: String) {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let space = line.firstIndex(of: " ") else { continue }
            fields[String(line[..<space])] = String(line[line.index(after: space)...])
        }
        guard let reference = fields["reference"], let tree = fields["tree"], let layers = fields["layers"] else { return nil }
        self.init(reference: reference, layers: layers.split(separator: " ").map(String.init), tree: tree)
    }

    /// One digest over every entry under `root`, in path order, without
    /// following links: each file's mode, size, inode and change time (as
    /// git's index does), so that any write to a file after it was unpacked
    /// shows, without reading every file again. (The layers' contents are
    /// checked by their digests.)
    static func treeDigest(_ root: String) throws -> String {
        var hasher = SHA256()
        try walk(root, relative: "") { line in hasher.update(data: Array(line.utf8)) }
        return "sha256:" + ArtifactStore.hex(hasher.finalize())
    }

    private static func walk(_ directory: String, relative: String, _ emit: (String) throws -> Void) throws {
        for name in FileIO.list(directory).sorted() {
            let path = directory + "/" + name
            let shown = relative.isEmpty ? name : relative + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else { throw ArtifactError("cannot read \(path)") }
            let mode = String(info.st_mode & 0o7777, radix: 8)
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                try emit("D \(shown) \(mode)\n")
                try walk(path, relative: shown, emit)
            case S_IFLNK:
                var buffer = [CChar](repeating: 0, count: 4_096)
                let count = readlink(path, &buffer, buffer.count - 1)
                let target = count >= 0 ? String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
                try emit("L \(shown) \(target)\n")
            default:
                try emit("F \(shown) \(mode) \(info.st_size) \(info.st_ino) \(info.st_ctim.tv_sec).\(info.st_ctim.tv_nsec)\n")
            }
        }
    }
}
