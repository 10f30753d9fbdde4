import GitKit

#if canImport(Glibc)
import Glibc
#endif

/// A persistent index of release records for one branch and one set of app
/// paths, kept in `<git dir>/rewind/`. Safe to delete; rebuilt when stale.
struct ReleaseCache {
    static let format = "rewind-releases 2"

    var key: String
    var tip: OID?
    var records: [ReleaseRecord] = []
    /// app.yaml `version` of app trees, keyed by tree id.
    var versions: [OID: String] = [:]

    static func path(gitDirectory: String, key: String) -> String {
        var hash: UInt64 = 0xcbf29ce484222325
        for byte in key.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
        return gitDirectory + "rewind/releases-" + String(hash, radix: 16) + ".cache"
    }

    /// Reads the cache; nil when absent, for another key, or unreadable.
    static func load(from path: String, key: String) -> ReleaseCache? {
        guard let bytes = FileIO.read(path) else { return nil }
        var cache = ReleaseCache(key: key)
        var lineNumber = 0
        var valid = true
        bytes.withUnsafeBufferPointer { buffer in
            var start = 0
            while start < buffer.count && valid {
                var end = start
                while end < buffer.count && buffer[end] != 10 { end += 1 }
                let fields = buffer[start..<end].split(separator: 9, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
                valid = cache.accept(fields, lineNumber: lineNumber, key: key)
                lineNumber += 1
                start = end + 1
            }
        }
        return valid && lineNumber >= 2 ? cache : nil
    }

    private mutating func accept(_ f: [String], lineNumber: Int, key: String) -> Bool {
        switch lineNumber {
        case 0: return f == [Self.format]
        case 1: return f.count == 3 && f[0] == "K" && f[1] == key && { tip = OID(hex: f[2]); return tip != nil }()
        default:
            if f.count == 3 && f[0] == "V", let tree = OID(hex: f[1]) {
                versions[tree] = f[2]
                return true
            }
            guard f.count == 13, f[0] == "R", let commit = OID(hex: f[1]), let kind = ReleaseKind(rawValue: f[5]),
                  let time = Int64(f[8]), let offset = Int32(f[9]) else { return false }
            records.append(ReleaseRecord(commit: commit, app: f[2], before: OID(hex: f[3]), after: OID(hex: f[4]), kind: kind,
                                         target: OID(hex: f[6]), revertsExactly: f[7] == "1", time: time, offset: offset,
                                         author: f[10], email: f[11], summary: f[12]))
            return true
        }
    }

    /// Writes the cache atomically (temporary file, then rename). Failures are
    /// ignored: the cache only saves time.
    func save(to path: String) {
        guard let tip else { return }
        var text = "\(Self.format)\nK\t\(key)\t\(tip.hex)\n"
        text.reserveCapacity(records.count * 160)
        for r in records {
            let fields = ["R", r.commit.hex, r.app, r.before?.hex ?? "-", r.after?.hex ?? "-", r.kind.rawValue, r.target?.hex ?? "-",
                          r.revertsExactly ? "1" : "0", String(r.time), String(r.offset), Self.clean(r.author), Self.clean(r.email), Self.clean(r.summary)]
            text += fields.joined(separator: "\t")
            text += "\n"
        }
        for (tree, version) in versions { text += "V\t\(tree.hex)\t\(Self.clean(version))\n" }
        FileIO.writeAtomically(path, Array(text.utf8))
    }

    static func clean(_ text: String) -> String {
        String(text.map { $0 == "\t" || $0.isNewline ? " " : $0 })
    }
}

/// Small POSIX file helpers (no Foundation in the hot path).
enum FileIO {
    static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { return nil }
            if n == 0 { break }
            result.append(contentsOf: chunk[0..<n])
        }
        return result
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
        fsync(fd)
        close(fd)
        if rename(temporary, path) != 0 { unlink(temporary); return false }
        return true
    }
}
