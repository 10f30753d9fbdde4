import DeployModel
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Keeping the artifact cache under its bound: what rollback needs stays,
/// the rest goes least-recently-used first.
extension ArtifactStore {
    /// What a prune did.
    public struct PruneReport: Sendable, Equatable {
        /// The cache keys evicted (`oci:HEX`, `url:HEX`), oldest use first.
        public var evicted: [String] = []
        /// The cache's size afterwards, in bytes.
        public var bytes: Int64 = 0
        /// What must be kept is alone over the limit: nothing more could go.
        public var keptOverLimit = false
    }

    /// The key of an artifact in the cache (`oci:HEX` of its manifest's
    /// digest, `url:HEX` of its sha256); nil for files on the host.
    public static func cacheKey(_ artifact: Artifact) -> String? {
        switch artifact.source {
        case .oci(let reference): return reference.digest.map { "oci:" + $0.dropFirst(7) }
        case .url: return artifact.sha256.map { "url:" + $0 }
        case .path: return nil
        }
    }

    /// Evicts entries not in `keep`, least recently used first, until the
    /// cache is at most `limit` bytes. A layer shared with an entry that
    /// stays is kept.
    public func prune(keep: Set<String>, limit: Int64) -> PruneReport {
        var entries = cacheEntries()
        var report = PruneReport(bytes: entries.reduce(0) { $0 + $1.bytes })
        guard report.bytes > limit else { return report }
        entries.sort { ($0.lastUse, $0.key) < ($1.lastUse, $1.key) }
        for entry in entries where report.bytes > limit && !keep.contains(entry.key) {
            let shared = Set(entries.filter { $0.key != entry.key && !report.evicted.contains($0.key) }.flatMap(\.blobs))
            for path in entry.paths { FileIO.removeTree(path) }
            for blob in entry.blobs where !shared.contains(blob) { FileIO.removeTree(blob) }
            report.evicted.append(entry.key)
            report.bytes -= entry.bytes
        }
        report.keptOverLimit = report.bytes > limit
        return report
    }

    /// Marks an entry used now (its marker's modification time).
    func touch(_ path: String) {
        _ = utimensat(AT_FDCWD, path, nil, 0)
    }

    private struct CacheEntry {
        let key: String
        /// Removed on eviction (the marker first, so that a half-removed entry is never used).
        let paths: [String]
        let blobs: [String]
        let bytes: Int64
        let lastUse: Int64
    }

    private func cacheEntries() -> [CacheEntry] {
        var entries: [CacheEntry] = []
        let oci = options.directory + "/oci"
        for name in FileIO.list(oci) where name.hasSuffix(".done") {
            let hex = String(name.dropLast(5))
            let record = FileIO.readText("\(oci)/\(name)").flatMap(CacheRecord.init(text:))
            let blobs = (record?.layers ?? []).map { "\(options.directory)/blobs/sha256/\($0.dropFirst(7))" }
            let bytes = Self.bytes(under: "\(oci)/\(hex)") + blobs.reduce(0) { $0 + Self.bytes(under: $1) }
            entries.append(CacheEntry(key: "oci:" + hex, paths: ["\(oci)/\(name)", "\(oci)/\(hex)"], blobs: blobs, bytes: bytes, lastUse: Self.modified("\(oci)/\(name)")))
        }
        let downloads = options.directory + "/url"
        for name in FileIO.list(downloads) where Artifact.isSHA256(name) {
            let path = "\(downloads)/\(name)"
            entries.append(CacheEntry(key: "url:" + name, paths: [path], blobs: [], bytes: Self.bytes(under: path), lastUse: Self.modified(path)))
        }
        return entries
    }

    /// Bytes of a file, or of everything under a directory (links not followed).
    static func bytes(under path: String) -> Int64 {
        var info = stat()
        guard lstat(path, &info) == 0 else { return 0 }
        guard (info.st_mode & S_IFMT) == S_IFDIR else { return Int64(info.st_size) }
        return FileIO.list(path).reduce(0) { $0 + bytes(under: path + "/" + $1) }
    }

    /// Modification time in nanoseconds (0 when absent).
    static func modified(_ path: String) -> Int64 {
        var info = stat()
        guard lstat(path, &info) == 0 else { return 0 }
        return Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
    }
}

extension ArtifactStore {
    /// True when the entry with this cache key is in the cache.
    public func isCached(_ key: String) -> Bool {
        if key.hasPrefix("oci:") { return FileIO.exists("\(options.directory)/oci/\(key.dropFirst(4)).done") }
        if key.hasPrefix("url:") { return FileIO.exists("\(options.directory)/url/\(key.dropFirst(4))") }
        return false
    }
}

extension ArtifactStore {
    /// The newest tag of `policy.repository` that its tag policy accepts,
    /// and the digest it names now. A policy that matches no tag is an
    /// error naming the repository, the policy and a few of the tags.
    public func newest(_ policy: UpdatePolicy) throws -> (tag: String, digest: String) {
        let reference = policy.repository
        let client = try client(reference.registry)
        let tags = try client.tags(reference.repository)
        guard let tag = policy.tags.newest(tags) else {
            let rule: String
            switch policy.tags {
            case .semver(let range): rule = "semver \"\(range.text)\""
            case .regex(let pattern): rule = "regex \"\(pattern)\""
            }
            let sample = tags.prefix(5).joined(separator: ", ")
            throw ArtifactError("none of the \(tags.count) tags of \(reference.registry)/\(reference.repository) matches \(rule)"
                                + (tags.isEmpty ? "" : " (tags include \(sample)\(tags.count > 5 ? ", …" : ""))"))
        }
        return (tag, try client.digest(reference.repository, tag: tag))
    }
}
