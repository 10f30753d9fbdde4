import CLibGit2

/// The fields of a commit a history walk needs, parsed straight from the raw
/// object (cheaper than libgit2's full commit parse for long walks).
public struct CommitHeader: Sendable {
    public let tree: OID
    public let firstParent: OID?
    public let authorName: String
    public let authorEmail: String
    public let authorTime: Int64
    public let authorOffsetMinutes: Int32
    /// The first line of the message.
    public let summary: String
    /// The whole message, kept only when it contains one of the markers the
    /// reader was asked to look for (nil otherwise).
    public let markedMessage: String?
}

/// Reads raw objects for long history walks: no libgit2 object parsing, no
/// strings beyond what is asked for.
public final class ObjectReader {
    private let odb: OpaquePointer
    private let markers: [[UInt8]]

    /// Opens the object database of a repository. Commit messages that
    /// contain one of `messageMarkers` are kept whole in `CommitHeader`.
    public init(_ repository: Repository, messageMarkers: [String] = []) throws {
        markers = messageMarkers.map { Array($0.utf8) }
        var odb: OpaquePointer?
        try check(git_repository_odb(&odb, repository.handle), "git_repository_odb")
        guard let odb else { throw GitError(code: .other(-1), function: "git_repository_odb", message: "no object database") }
        self.odb = odb
    }

    deinit { git_odb_free(odb) }

    private func withObject<T>(_ id: OID, _ body: (UnsafeBufferPointer<UInt8>) throws -> T) throws -> T {
        var raw = id.raw
        var object: OpaquePointer?
        try check(git_odb_read(&object, odb, &raw), "git_odb_read")
        defer { git_odb_object_free(object) }
        let size = git_odb_object_size(object)
        guard let data = git_odb_object_data(object) else { return try body(UnsafeBufferPointer(start: nil, count: 0)) }
        return try body(UnsafeBufferPointer(start: data.assumingMemoryBound(to: UInt8.self), count: size))
    }

    /// Parses a commit's tree, first parent, author and message.
    public func commitHeader(_ id: OID) throws -> CommitHeader {
        try withObject(id) { bytes in
            guard let header = CommitParser.parse(bytes, markers: markers) else {
                throw GitError(code: .other(-1), function: "ObjectReader.commitHeader", message: "commit \(id) cannot be parsed")
            }
            return header
        }
    }

    /// For each of `query`'s names, the id of the entry with that name in
    /// `tree`, or nil. Reads the tree once; each entry costs one hash lookup.
    public func childIDs(of tree: OID, _ query: ChildQuery) throws -> [OID?] {
        try withObject(tree) { bytes in
            var result = [OID?](repeating: nil, count: query.names.count)
            guard let base = bytes.baseAddress else { return result }
            var i = 0
            while i < bytes.count {
                // "<octal mode> <name>\0<20-byte id>"
                var space = i
                while space < bytes.count && bytes[space] != 32 { space += 1 }
                var nul = space + 1
                while nul < bytes.count && bytes[nul] != 0 { nul += 1 }
                guard space < bytes.count, nul + 20 < bytes.count + 1 else { break }
                let nameStart = space + 1, nameLength = nul - nameStart
                if let k = query.lookup(base + nameStart, nameLength) {
                    let isTree = space - i == 5 && bytes[i] == 52  // mode "40000"
                    if isTree || query.acceptsBlob[k] {
                        var oid = git_oid()
                        withUnsafeMutableBytes(of: &oid.id) { $0.copyMemory(from: UnsafeRawBufferPointer(start: base + nul + 1, count: 20)) }
                        result[k] = OID(oid)
                    }
                }
                i = nul + 21
            }
            return result
        }
    }
}

/// Names to look up in trees, prepared once for many trees.
public struct ChildQuery: Sendable {
    let names: [[UInt8]]
    let acceptsBlob: [Bool]
    /// Open addressing: slot -> name index + 1 (0 = empty); a power of two
    /// at least four times the number of names.
    private let slots: [Int32]

    /// `acceptsBlob[i]` says whether name i may be a file; otherwise only
    /// directories count.
    public init(names: [String], acceptsBlob: [Bool]) {
        self.names = names.map { Array($0.utf8) }
        self.acceptsBlob = acceptsBlob
        var size = 8
        while size < 4 * max(1, names.count) { size *= 2 }
        var slots = [Int32](repeating: 0, count: size)
        for (i, name) in self.names.enumerated() {
            var slot = Int(truncatingIfNeeded: name.withUnsafeBufferPointer { Self.hash($0.baseAddress, $0.count) }) & (size - 1)
            while slots[slot] != 0 { slot = (slot + 1) & (size - 1) }
            slots[slot] = Int32(i + 1)
        }
        self.slots = slots
    }

    /// The index of the name equal to the `count` bytes at `p`, if any.
    @inline(__always)
    func lookup(_ p: UnsafePointer<UInt8>, _ count: Int) -> Int? {
        var slot = Int(truncatingIfNeeded: Self.hash(p, count)) & (slots.count - 1)
        while true {
            let entry = Int(slots[slot])
            if entry == 0 { return nil }
            let name = names[entry - 1]
            if name.count == count, name.withUnsafeBufferPointer({ buffer in
                count == 0 || (buffer.baseAddress.map { memcmp($0, p, count) == 0 } ?? false)
            }) { return entry - 1 }
            slot = (slot + 1) & (slots.count - 1)
        }
    }

    static func hash(_ p: UnsafePointer<UInt8>?, _ count: Int) -> UInt64 {
        guard let p else { return 0 }
        var h: UInt64 = 0xcbf29ce484222325
        for i in 0..<count { h = (h ^ UInt64(p[i])) &* 0x100000001b3 }
        return h
    }
}

/// Parses the text of a commit object.
enum CommitParser {
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>, markers: [[UInt8]]) -> CommitHeader? {
        var tree: OID?
        var parent: OID?
        var author: (String, String, Int64, Int32)?
        var i = 0
        while i < bytes.count {
            var end = i
            while end < bytes.count && bytes[end] != 10 { end += 1 }
            if end == i { i += 1; break }  // blank line: the message follows
            let line = UnsafeBufferPointer(rebasing: bytes[i..<end])
            if line.starts(with: "tree ".utf8), line.count >= 45 {
                tree = OID(hexBytes: UnsafeBufferPointer(rebasing: line[5..<45]))
            } else if parent == nil, line.starts(with: "parent ".utf8), line.count >= 47 {
                parent = OID(hexBytes: UnsafeBufferPointer(rebasing: line[7..<47]))
            } else if author == nil, line.starts(with: "author ".utf8) {
                author = parseSignature(UnsafeBufferPointer(rebasing: line[7...]))
            }
            i = end + 1
        }
        guard let tree else { return nil }
        let body = UnsafeBufferPointer(rebasing: bytes[min(i, bytes.count)...])
        var summaryEnd = 0
        while summaryEnd < body.count && body[summaryEnd] != 10 { summaryEnd += 1 }
        let summary = String(decoding: UnsafeBufferPointer(rebasing: body[0..<summaryEnd]), as: UTF8.self)
        let marked = markers.contains { contains(body, $0) } ? String(decoding: body, as: UTF8.self) : nil
        let (name, email, time, offset) = author ?? ("", "", 0, 0)
        return CommitHeader(tree: tree, firstParent: parent, authorName: name, authorEmail: email, authorTime: time,
                            authorOffsetMinutes: offset, summary: summary, markedMessage: marked)
    }

    private static func contains(_ haystack: UnsafeBufferPointer<UInt8>, _ needle: [UInt8]) -> Bool {
        guard let base = haystack.baseAddress, !needle.isEmpty, haystack.count >= needle.count else { return false }
        let first = needle[0], last = haystack.count - needle.count
        var i = 0
        while i <= last {
            guard let hit = memchr(base + i, Int32(first), last - i + 1) else { return false }
            let at = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            if needle.withUnsafeBufferPointer({ memcmp(base + at, $0.baseAddress!, needle.count) }) == 0 { return true }
            i = at + 1
        }
        return false
    }

    /// "Name <email> 1700000000 +0100"
    private static func parseSignature(_ s: UnsafeBufferPointer<UInt8>) -> (String, String, Int64, Int32) {
        guard let open = s.firstIndex(of: 60), let close = s.lastIndex(of: 62), open < close else {
            return (String(decoding: s, as: UTF8.self), "", 0, 0)
        }
        var nameEnd = open
        while nameEnd > 0 && s[nameEnd - 1] == 32 { nameEnd -= 1 }
        let name = String(decoding: UnsafeBufferPointer(rebasing: s[0..<nameEnd]), as: UTF8.self)
        let email = String(decoding: UnsafeBufferPointer(rebasing: s[(open + 1)..<close]), as: UTF8.self)
        let rest = String(decoding: UnsafeBufferPointer(rebasing: s[(close + 1)...]), as: UTF8.self).split(separator: " ")
        let time = rest.first.flatMap { Int64($0) } ?? 0
        var offset: Int32 = 0
        if rest.count > 1, let tz = Int32(rest[1].dropFirst()), rest[1].count == 5 {
            offset = (tz / 100 * 60 + tz % 100) * (rest[1].first == "-" ? -1 : 1)
        }
        return (name, email, time, offset)
    }
}

extension OID {
    /// Parses 40 hex digits from raw bytes.
    init?(hexBytes: UnsafeBufferPointer<UInt8>) {
        guard hexBytes.count == 40, let base = hexBytes.baseAddress else { return nil }
        var oid = git_oid()
        let rc = base.withMemoryRebound(to: CChar.self, capacity: 40) { git_oid_fromstrn(&oid, $0, 40) }
        guard rc == 0 else { return nil }
        self.init(oid)
    }
}

#if canImport(Glibc)
import Glibc
#endif
