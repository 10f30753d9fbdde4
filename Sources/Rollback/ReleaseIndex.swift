import GitKit
import SystemSupport

/// The persistent release index of one branch and one set of app paths, in
/// `<git dir>/rewind/releases-<hash>/`. Safe to delete; rebuilt when stale.
///
/// - `records`: fixed-size, self-contained records (release number, trees,
///   kind, target, time), oldest first, appended as the branch moves on;
/// - `strings`: author, email and summary of each record, appended;
/// - `versions`: app.yaml `version` by app tree, appended as they are read;
/// - `meta`: key, tip, per-app totals and the valid length of each file,
///   replaced atomically. Bytes past a declared length (a writer that died
///   mid-append) are ignored and overwritten by the next writer.
///
/// Writers hold `lock` (flock). Readers need no lock: they trust `meta`.
struct ReleaseIndex {
    static let recordSize = 112
    private static let magic = Array("REWIND-INDEX-4\n".utf8)

    let directory: String
    let key: String
    let appCount: Int
    var tip: OID?
    var totals: [Int]
    /// What `meta` declares on disk: record count and byte lengths.
    private var stored = Stored()
    /// Everything written from 0 on save (the index was rebuilt).
    private var rebuilt = false
    /// Where a batch added newest first starts in `newRecords`.
    private var batchStart: Int?
    /// Bytes not yet on disk.
    private var newRecords: [UInt8] = []
    private var newStrings: [UInt8] = []
    private var newVersions: [UInt8] = []
    /// The stored records from `recordWindow.first` to the end, read on demand.
    private var recordWindow: (first: Int, bytes: [UInt8]) = (0, [])
    /// Blocks of the stored strings file, read on demand.
    private var stringBlocks: [Int: [UInt8]] = [:]
    private static let stringBlockSize = 1 << 16

    private struct Stored: Equatable {
        var records = 0, strings = 0, versions = 0
    }

    var count: Int { stored.records + newRecords.count / Self.recordSize }

    /// An empty index (nothing read from disk).
    init(directory: String, key: String, appCount: Int) {
        self.directory = directory
        self.key = key
        self.appCount = appCount
        totals = [Int](repeating: 0, count: appCount)
    }

    static func directory(gitDirectory: String, key: String) -> String {
        gitDirectory + "rewind/releases-" + String(fnv1a(key), radix: 16)
    }

    // MARK: reading

    /// Opens the index (reads only `meta`); an empty one when absent, for
    /// another key, or damaged.
    static func load(directory: String, key: String, appCount: Int) -> ReleaseIndex {
        var index = ReleaseIndex(directory: directory, key: key, appCount: appCount)
        guard let meta = FileIO.read(directory + "/meta"), index.readMeta(meta),
              FileIO.size(directory + "/records") ?? -1 >= index.stored.records * recordSize,
              FileIO.size(directory + "/strings") ?? -1 >= index.stored.strings,
              FileIO.size(directory + "/versions") ?? -1 >= index.stored.versions else {
            return ReleaseIndex(directory: directory, key: key, appCount: appCount)
        }
        index.recordWindow.first = index.stored.records
        return index
    }

    private mutating func readMeta(_ bytes: [UInt8]) -> Bool {
        var r = ByteReader(bytes)
        guard r.matches(Self.magic), let keyLength = r.int(UInt32.self), let keyBytes = r.take(keyLength), keyBytes.elementsEqual(key.utf8),
              let tip = r.oid(), let records = r.int(UInt64.self), let strings = r.int(UInt64.self),
              let versions = r.int(UInt64.self), let apps = r.int(UInt32.self), apps == appCount else { return false }
        var totals: [Int] = []
        for _ in 0..<apps {
            guard let total = r.int(UInt32.self) else { return false }
            totals.append(total)
        }
        self.tip = tip
        self.totals = totals
        stored = Stored(records: records, strings: strings, versions: versions)
        return true
    }

    /// Makes stored records from `first` on readable; false when the file
    /// cannot provide them.
    private mutating func ensureRecords(from first: Int) -> Bool {
        guard first < recordWindow.first else { return true }
        // Read at least twice what is already there, so a long scan reads
        // each byte about twice at most.
        let start = max(0, min(first, stored.records - 2 * (stored.records - recordWindow.first) - 4096))
        guard let bytes = FileIO.read(directory + "/records", offset: start * Self.recordSize, count: (recordWindow.first - start) * Self.recordSize) else { return false }
        recordWindow = (start, bytes + recordWindow.bytes)
        return true
    }

    /// Record `i`, decoded; nil when missing or damaged.
    mutating func record(_ i: Int) -> IndexedRecord? {
        if i >= stored.records {
            return Self.decode(newRecords, at: (i - stored.records) * Self.recordSize)
        }
        guard ensureRecords(from: i) else { return nil }
        return Self.decode(recordWindow.bytes, at: (i - recordWindow.first) * Self.recordSize)
    }

    private static func decode(_ bytes: [UInt8], at base: Int) -> IndexedRecord? {
        guard base >= 0, base + recordSize <= bytes.count else { return nil }
        return bytes.withUnsafeBytes { raw in
            func oid(_ at: Int) -> OID? { OID(rawBytes: UnsafeRawBufferPointer(rebasing: raw[(base + at)..<(base + at + 20)])) }
            func load<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T { T(littleEndian: raw.loadUnaligned(fromByteOffset: base + at, as: T.self)) }
            let flags = raw[base + 83]
            let kinds = ReleaseKind.allCases
            guard let commit = oid(0) else { return nil }
            return IndexedRecord(
                commit: commit,
                tree: flags & 2 != 0 ? oid(20) : nil, previousTree: flags & 4 != 0 ? oid(40) : nil,
                target: flags & 8 != 0 ? oid(60) : nil, app: Int(load(80, UInt16.self)),
                kind: kinds[min(Int(raw[base + 82]), kinds.count - 1)], reverts: flags & 1 != 0, treeChanged: flags & 16 != 0,
                time: load(84, Int64.self), offset: load(92, Int32.self), number: Int(load(96, UInt32.self)),
                stringOffset: Int(load(100, UInt64.self)))
        }
    }

    /// A block of the stored strings file, read on first use.
    private mutating func stringBlock(_ block: Int) -> [UInt8] {
        if let bytes = stringBlocks[block] { return bytes }
        let start = block * Self.stringBlockSize
        let count = max(0, min(Self.stringBlockSize, stored.strings - start))
        let bytes = FileIO.read(directory + "/strings", offset: start, count: count) ?? []
        stringBlocks[block] = bytes
        return bytes
    }

    /// Author, email and summary of a record.
    mutating func strings(at offset: Int) -> (String, String, String) {
        if offset >= stored.strings { return Self.split(newStrings, from: offset - stored.strings) }
        let block = offset / Self.stringBlockSize
        var bytes = stringBlock(block)
        var start = offset - block * Self.stringBlockSize
        var next = block + 1
        // The three strings may run into the following blocks.
        func complete() -> Bool {
            var nuls = 0
            for byte in bytes[min(start, bytes.count)...] where byte == 0 {
                nuls += 1
                if nuls == 3 { return true }
            }
            return false
        }
        while !complete(), next * Self.stringBlockSize < stored.strings {
            bytes = Array(bytes[min(start, bytes.count)...]) + stringBlock(next)
            start = 0
            next += 1
        }
        return Self.split(bytes, from: start)
    }

    private static func split(_ bytes: [UInt8], from start: Int) -> (String, String, String) {
        var parts: [String] = []
        var i = max(0, start)
        while parts.count < 3 && i < bytes.count {
            var end = i
            while end < bytes.count && bytes[end] != 0 { end += 1 }
            parts.append(String(decoding: bytes[i..<end], as: UTF8.self))
            i = end + 1
        }
        while parts.count < 3 { parts.append("") }
        return (parts[0], parts[1], parts[2])
    }

    /// The remembered version labels of `trees` (those known).
    func versions(of trees: Set<OID>) -> [OID: String] {
        var found: [OID: String] = [:]
        func scan(_ bytes: [UInt8]) {
            var r = ByteReader(bytes)
            while r.remaining > 0 {
                guard let tree = r.oid(), let length = r.int(UInt16.self), let text = r.take(length) else { return }
                if trees.contains(tree) { found[tree] = String(decoding: text, as: UTF8.self) }
            }
        }
        if stored.versions > 0, let bytes = FileIO.read(directory + "/versions", offset: 0, count: stored.versions) { scan(bytes) }
        scan(newVersions)
        return found
    }

    // MARK: writing

    /// Forgets every record (the branch was rewritten).
    mutating func reset() {
        stored = Stored()
        totals = [Int](repeating: 0, count: appCount)
        newRecords = []
        newStrings = []
        newVersions = []
        recordWindow = (0, [])
        stringBlocks = [:]
        rebuilt = true
    }

    /// Adds records found by a walk, newest first, without keeping them in
    /// another form: each is encoded at once, and `finishNewestFirst()`
    /// puts the batch in order and numbers it.
    mutating func appendNewestFirst(_ r: NewRecord) {
        if batchStart == nil { batchStart = newRecords.count }
        encode(r, number: 0)
    }

    /// Reverses the batch added by `appendNewestFirst` into oldest-first order
    /// and gives each record its release number.
    mutating func finishNewestFirst() {
        guard let start = batchStart else { return }
        batchStart = nil
        let size = Self.recordSize
        var low = start, high = newRecords.count - size
        newRecords.withUnsafeMutableBytes { raw in
            var swap = [UInt8](repeating: 0, count: size)
            while low < high {
                swap.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[low..<(low + size)])) }
                raw.baseAddress!.advanced(by: low).copyMemory(from: raw.baseAddress!.advanced(by: high), byteCount: size)
                swap.withUnsafeBytes { raw.baseAddress!.advanced(by: high).copyMemory(from: $0.baseAddress!, byteCount: size) }
                low += size
                high -= size
            }
            var at = start
            while at + size <= raw.count {
                let app = Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: at + 80, as: UInt16.self)))
                if app < totals.count {
                    totals[app] += 1
                    raw.storeBytes(of: UInt32(totals[app]).littleEndian, toByteOffset: at + 96, as: UInt32.self)
                }
                at += size
            }
        }
    }

    private mutating func encode(_ r: NewRecord, number: Int) {
        let stringOffset = stored.strings + newStrings.count
        for text in [r.author, r.email, r.summary] {
            newStrings += text.utf8.map { $0 == 0 ? 32 : $0 }
            newStrings.append(0)
        }
        var out = [UInt8](repeating: 0, count: Self.recordSize)
        func put(_ id: OID?, _ at: Int) { if let id { out.replaceSubrange(at..<(at + 20), with: id.bytes) } }
        func put<T: FixedWidthInteger>(_ value: T, _ at: Int) {
            for k in 0..<MemoryLayout<T>.size { out[at + k] = UInt8(truncatingIfNeeded: value >> (8 * k)) }
        }
        put(r.commit, 0); put(r.tree, 20); put(r.previousTree, 40); put(r.target, 60)
        put(UInt16(r.app), 80)
        out[82] = UInt8(ReleaseKind.allCases.firstIndex(of: r.kind) ?? 0)
        out[83] = (r.reverts ? 1 : 0) | (r.tree != nil ? 2 : 0) | (r.previousTree != nil ? 4 : 0) | (r.target != nil ? 8 : 0) | (r.treeChanged ? 16 : 0)
        put(r.time, 84); put(r.offset, 92); put(UInt32(number), 96); put(UInt64(stringOffset), 100)
        newRecords += out
    }

    /// Remembers an app tree's version label.
    mutating func remember(version: String, of tree: OID) {
        let text = Array(version.utf8.prefix(1000))
        newVersions += tree.bytes
        newVersions += [UInt8(text.count & 0xff), UInt8(text.count >> 8)]
        newVersions += text
    }

    /// True when there is something to write.
    var isDirty: Bool { rebuilt || !newRecords.isEmpty || !newVersions.isEmpty }

    /// Writes what is new under the lock. Skipped (the index stays as it
    /// was) when another writer changed it since it was read.
    func save() {
        guard let tip else { return }
        _ = FileIO.withLock(directory + "/lock") { () -> Bool in
            let current = ReleaseIndex.load(directory: directory, key: key, appCount: appCount)
            // Where the new bytes go: from nothing when this index holds
            // everything in memory; after what is stored when the disk is as
            // it was read; nowhere when another writer changed it meanwhile.
            let base: Stored
            if rebuilt || (current.tip == nil && stored == Stored()) {
                base = Stored()
            } else if current.tip != nil && current.stored == stored {
                base = stored
            } else {
                return false
            }
            guard FileIO.append(directory + "/records", at: base.records * Self.recordSize, newRecords),
                  FileIO.append(directory + "/strings", at: base.strings, newStrings),
                  FileIO.append(directory + "/versions", at: base.versions, newVersions) else { return false }
            var meta = Self.magic
            let keyBytes = Array(key.utf8)
            meta += le(UInt32(keyBytes.count)) + keyBytes + tip.bytes
            meta += le(UInt64(count)) + le(UInt64(base.strings + newStrings.count)) + le(UInt64(base.versions + newVersions.count)) + le(UInt32(appCount))
            for total in totals { meta += le(UInt32(total)) }
            return FileIO.writeAtomically(directory + "/meta", meta)
        }
    }
}

/// A record to add to the index.
struct NewRecord {
    var commit: OID
    var app: Int
    var tree: OID?
    var previousTree: OID?
    var treeChanged: Bool
    var kind: ReleaseKind
    var target: OID?
    var reverts: Bool
    var time: Int64
    var offset: Int32
    var author: String
    var email: String
    var summary: String
}

/// A record read back from the index.
struct IndexedRecord {
    var commit: OID
    var tree: OID?
    var previousTree: OID?
    var target: OID?
    var app: Int
    var kind: ReleaseKind
    var reverts: Bool
    var treeChanged: Bool
    var time: Int64
    var offset: Int32
    var number: Int
    var stringOffset: Int
}

private func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}

/// Reads little-endian values from bytes.
private struct ByteReader {
    let bytes: [UInt8]
    var position = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - position }

    mutating func take(_ n: Int) -> ArraySlice<UInt8>? {
        guard n >= 0, n <= remaining else { return nil }
        defer { position += n }
        return bytes[position..<(position + n)]
    }

    mutating func matches(_ expected: [UInt8]) -> Bool { take(expected.count)?.elementsEqual(expected) ?? false }

    mutating func int<T: FixedWidthInteger>(_: T.Type) -> Int? {
        guard let slice = take(MemoryLayout<T>.size) else { return nil }
        var value: T = 0
        for (k, byte) in slice.enumerated() { value |= T(truncatingIfNeeded: byte) << (8 * k) }
        return Int(value)
    }

    mutating func oid() -> OID? { take(20).flatMap { OID(bytes: $0) } }
}
