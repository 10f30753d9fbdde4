#if canImport(Glibc)
import Glibc
#endif
import CLibGit2

/// Git's commit-graph file (`objects/info/commit-graph`, format version 1):
/// each commit's root tree and parents without reading the commit objects.
/// Only a single graph file is read; split graph chains are not.
public final class CommitGraph {
    private let bytes: [UInt8]
    private let count: Int
    private let fanout: Int
    private let oids: Int
    private let data: Int

    private init(bytes: [UInt8], count: Int, fanout: Int, oids: Int, data: Int) {
        self.bytes = bytes
        self.count = count
        self.fanout = fanout
        self.oids = oids
        self.data = data
    }

    /// The repository's commit-graph; nil when there is none or it is not
    /// one this reader understands.
    public static func open(_ repository: Repository) -> CommitGraph? {
        let path = repository.gitDirectory + "objects/info/commit-graph"
        let fd = Glibc.open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_size > 8 else { return nil }
        let size = Int(info.st_size)
        var failed = false
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialised in
            var offset = 0
            while offset < size {
                let n = pread(fd, buffer.baseAddress! + offset, size - offset, off_t(offset))
                if n <= 0 { failed = true; break }
                offset += n
            }
            initialised = failed ? 0 : size
        }
        guard !failed, bytes.count > 8, bytes[0..<4].elementsEqual("CGPH".utf8), bytes[4] == 1, bytes[5] == 1, bytes[7] == 0 else { return nil }
        let chunks = Int(bytes[6])
        var fanout = -1, oids = -1, data = -1
        for c in 0..<chunks {
            let entry = 8 + c * 12
            guard entry + 12 <= bytes.count else { return nil }
            let id = String(decoding: bytes[entry..<(entry + 4)], as: UTF8.self)
            let offset = Int(bigEndian64(bytes, entry + 4))
            switch id {
            case "OIDF": fanout = offset
            case "OIDL": oids = offset
            case "CDAT": data = offset
            default: continue
            }
        }
        guard fanout >= 0, oids >= 0, data >= 0, fanout + 1024 <= bytes.count else { return nil }
        let count = Int(bigEndian32(bytes, fanout + 255 * 4))
        guard oids + count * 20 <= bytes.count, data + count * 36 <= bytes.count else { return nil }
        return CommitGraph(bytes: bytes, count: count, fanout: fanout, oids: oids, data: data)
    }

    /// The position of a commit in the graph, or nil.
    public func position(of id: OID) -> Int? {
        let key = id.bytes
        let first = Int(key[0])
        var low = first == 0 ? 0 : Int(Self.bigEndian32(bytes, fanout + (first - 1) * 4))
        var high = Int(Self.bigEndian32(bytes, fanout + first * 4))
        guard low <= high, high <= count else { return nil }
        while low < high {
            let mid = (low + high) / 2
            let at = oids + mid * 20
            let order = bytes.withUnsafeBufferPointer { memcmp($0.baseAddress! + at, key, 20) }
            if order == 0 { return mid }
            if order < 0 { low = mid + 1 } else { high = mid }
        }
        return nil
    }

    /// The commit id at a position.
    public func commit(at position: Int) -> OID? {
        guard position >= 0, position < count else { return nil }
        return OID(bytes: bytes[(oids + position * 20)..<(oids + position * 20 + 20)])
    }

    /// The root tree of the commit at a position.
    public func tree(at position: Int) -> OID? {
        guard position >= 0, position < count else { return nil }
        return OID(bytes: bytes[(data + position * 36)..<(data + position * 36 + 20)])
    }

    /// The position of the first parent; nil for a root commit.
    public func firstParent(at position: Int) -> Int? {
        guard position >= 0, position < count else { return nil }
        let parent = Self.bigEndian32(bytes, data + position * 36 + 20)
        return parent == 0x7000_0000 || Int(parent) >= count ? nil : Int(parent)
    }

    private static func bigEndian32(_ b: [UInt8], _ at: Int) -> UInt32 {
        (UInt32(b[at]) << 24) | (UInt32(b[at + 1]) << 16) | (UInt32(b[at + 2]) << 8) | UInt32(b[at + 3])
    }

    private static func bigEndian64(_ b: [UInt8], _ at: Int) -> UInt64 {
        (UInt64(bigEndian32(b, at)) << 32) | UInt64(bigEndian32(b, at + 4))
    }
}
