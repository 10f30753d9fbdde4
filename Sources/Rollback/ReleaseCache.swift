import GitKit

#if canImport(Glibc)
import Glibc
#endif

/// A persistent index of release records for one branch and one set of app
/// paths, kept in `<git dir>/rewind/`. Safe to delete; rebuilt when stale.
///
/// Binary layout (little-endian): magic, key, tip, records of fixed size,
/// app.yaml versions by tree, then one string table holding each record's
/// author, email and summary (NUL-separated). Strings are decoded only for the
/// releases that are shown, so loading 100,000 records stays cheap.
struct ReleaseCache {
    static let magic = Array("REWIND-RELEASES-3\n".utf8)
    static let recordSize = 100

    var key: String
    var tip: OID?
    var records: [ReleaseRecord] = []
    /// app.yaml `version` of app trees, keyed by tree id.
    var versions: [OID: String] = [:]
    /// author\0email\0summary\0 for every record, addressed by `stringOffset`.
    var strings: [UInt8] = []

    init(key: String) { self.key = key }

    static func path(gitDirectory: String, key: String) -> String {
        var hash: UInt64 = 0xcbf29ce484222325
        for byte in key.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
        return gitDirectory + "rewind/releases-" + String(hash, radix: 16) + ".cache"
    }

    /// Appends a record's strings to the table and returns their offset.
    mutating func addStrings(author: String, email: String, summary: String) -> Int {
        let offset = strings.count
        for text in [author, email, summary] {
            strings += text.utf8.map { $0 == 0 ? 32 : $0 }
            strings.append(0)
        }
        return offset
    }

    /// The author, email and summary stored at `offset`.
    func decodeStrings(at offset: Int) -> (String, String, String) {
        var parts: [String] = []
        var start = offset
        while parts.count < 3 && start < strings.count {
            var end = start
            while end < strings.count && strings[end] != 0 { end += 1 }
            parts.append(String(decoding: strings[start..<end], as: UTF8.self))
            start = end + 1
        }
        while parts.count < 3 { parts.append("") }
        return (parts[0], parts[1], parts[2])
    }

    /// Reads the cache; nil when absent, for another key, or damaged.
    static func load(from path: String, key: String, apps: [String]) -> ReleaseCache? {
        guard let bytes = FileIO.read(path) else { return nil }
        return bytes.withUnsafeBytes { buffer in parse(ByteReader(buffer: buffer), key: key, apps: apps.count) }
    }

    private static func parse(_ start: ByteReader, key: String, apps: Int) -> ReleaseCache? {
        var reader = start
        guard reader.matches(magic), let keyLength = reader.u32(), let keyBytes = reader.take(Int(keyLength)),
              keyBytes.elementsEqual(key.utf8), let tip = reader.oid() ?? nil, let count = reader.u32(),
              reader.remaining >= Int(count) * recordSize else { return nil }
        var cache = ReleaseCache(key: key)
        cache.tip = tip
        cache.records.reserveCapacity(Int(count))
        let kinds = ReleaseKind.allCases
        for _ in 0..<count {
            guard let commit = reader.oid() ?? nil, let before = reader.oid(), let after = reader.oid(), let target = reader.oid(),
                  let app = reader.u16(), let kindByte = reader.u8(), let flags = reader.u8(), let time = reader.i64(),
                  let offset = reader.i32(), let stringOffset = reader.u32(), Int(app) < apps, Int(kindByte) < kinds.count else { return nil }
            cache.records.append(ReleaseRecord(
                commit: commit, app: Int(app), before: flags & 2 != 0 ? before : nil, after: flags & 4 != 0 ? after : nil,
                kind: kinds[Int(kindByte)], target: flags & 8 != 0 ? target : nil, revertsExactly: flags & 1 != 0,
                time: time, offset: offset, stringOffset: Int(stringOffset)))
        }
        guard let versionCount = reader.u32() else { return nil }
        for _ in 0..<versionCount {
            guard let tree = reader.oid() ?? nil, let length = reader.u16(), let text = reader.take(Int(length)) else { return nil }
            cache.versions[tree] = String(decoding: text, as: UTF8.self)
        }
        guard let stringLength = reader.u32(), let table = reader.take(Int(stringLength)) else { return nil }
        cache.strings = Array(table)
        return cache
    }

    /// Writes the cache atomically (temporary file, then rename). Failures are
    /// ignored: the cache only saves time.
    func save(to path: String) {
        guard let tip else { return }
        var out = ByteWriter()
        out.bytes += Self.magic
        let keyBytes = Array(key.utf8)
        out.u32(UInt32(keyBytes.count)); out.bytes += keyBytes
        out.oid(tip)
        out.u32(UInt32(records.count))
        out.bytes.reserveCapacity(out.bytes.count + records.count * Self.recordSize + strings.count + versions.count * 40)
        for r in records {
            out.oid(r.commit); out.oid(r.before); out.oid(r.after); out.oid(r.target)
            out.u16(UInt16(r.app))
            out.bytes.append(UInt8(ReleaseKind.allCases.firstIndex(of: r.kind) ?? 0))
            out.bytes.append((r.revertsExactly ? 1 : 0) | (r.before != nil ? 2 : 0) | (r.after != nil ? 4 : 0) | (r.target != nil ? 8 : 0))
            out.i64(r.time); out.i32(r.offset); out.u32(UInt32(r.stringOffset))
        }
        out.u32(UInt32(versions.count))
        for (tree, version) in versions {
            let text = Array(version.utf8.prefix(1000))
            out.oid(tree); out.u16(UInt16(text.count)); out.bytes += text
        }
        out.u32(UInt32(strings.count)); out.bytes += strings
        FileIO.writeAtomically(path, out.bytes)
    }
}

/// Reads little-endian values from a buffer without copying.
private struct ByteReader {
    let buffer: UnsafeRawBufferPointer
    var position = 0

    var remaining: Int { buffer.count - position }

    mutating func take(_ n: Int) -> UnsafeRawBufferPointer.SubSequence? {
        guard n >= 0, n <= remaining else { return nil }
        defer { position += n }
        return buffer[position..<(position + n)]
    }

    mutating func matches(_ bytes: [UInt8]) -> Bool { take(bytes.count)?.elementsEqual(bytes) ?? false }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T? {
        guard MemoryLayout<T>.size <= remaining else { return nil }
        defer { position += MemoryLayout<T>.size }
        return T(littleEndian: buffer.loadUnaligned(fromByteOffset: position, as: T.self))
    }

    mutating func u8() -> UInt8? { integer(UInt8.self) }
    mutating func u16() -> UInt16? { integer(UInt16.self) }
    mutating func u32() -> UInt32? { integer(UInt32.self) }
    mutating func i32() -> Int32? { integer(Int32.self) }
    mutating func i64() -> Int64? { integer(Int64.self) }
    /// nil when the buffer ends; .some(nil) for the all-zero id.
    mutating func oid() -> OID?? {
        guard let raw = take(20) else { return nil }
        return .some(OID(rawBytes: UnsafeRawBufferPointer(rebasing: raw)))
    }
}

private struct ByteWriter {
    var bytes: [UInt8] = []
    private mutating func integer<T: FixedWidthInteger>(_ value: T) {
        for i in 0..<MemoryLayout<T>.size { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * i))) }
    }
    mutating func u16(_ v: UInt16) { integer(v) }
    mutating func u32(_ v: UInt32) { integer(v) }
    mutating func i32(_ v: Int32) { integer(v) }
    mutating func i64(_ v: Int64) { integer(v) }
    mutating func oid(_ id: OID?) { bytes += id?.bytes ?? [UInt8](repeating: 0, count: 20) }
}

/// Small POSIX file helpers (no Foundation in the hot path).
enum FileIO {
    static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        let size = Int(info.st_size)
        var failed = false
        let result = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialised in
            var offset = 0
            while offset < size {
                let n = Glibc.read(fd, buffer.baseAddress! + offset, size - offset)
                if n <= 0 { failed = true; break }
                offset += n
            }
            initialised = failed ? 0 : size
        }
        return failed ? nil : result
    }

    @discardableResult
    static func writeAtomically(_ path: String, _ bytes: [UInt8]) -> Bool {
        if let slash = path.lastIndex(of: "/") { mkdir(String(path[..<slash]), 0o755) }
        let temporary = "\(path).\(getpid()).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return false }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { close(fd); unlink(temporary); return false }
            offset += n
        }
        // No fsync: these files are caches, validated on load and rebuilt
        // when damaged, and rename keeps readers from seeing a partial file.
        close(fd)
        if rename(temporary, path) != 0 { unlink(temporary); return false }
        return true
    }
}
