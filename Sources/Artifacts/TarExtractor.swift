#if canImport(Glibc)
import Glibc
#endif

/// Unpacks a tar stream (ustar, pax and GNU long names) into a directory
/// it owns, piece by piece, refusing any entry that would land outside it:
/// an absolute path or `..`, a path through a symbolic link, or a link
/// whose target leaves the directory (CVE-2022-24348 and its kind).
/// OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) remove what earlier layers
/// put there. Devices and fifos are skipped; modes keep their permission bits.
final class TarExtractor {
    private let root: Int32
    private let maxBytes: Int64
    private var pending: [UInt8] = []
    private var written: Int64 = 0
    private var entries = 0
    /// The current entry's data still to come, and where it goes.
    private var remaining: Int64 = 0
    private var padding: Int64 = 0
    private var target: Int32 = -1
    private var collecting: CollectKind?
    private var collected: [UInt8] = []
    private var longName: String?
    private var longLink: String?
    private var paxPath: String?
    private var paxLink: String?
    private var paxSize: Int64?
    private var ended = false

    private enum CollectKind { case longName, longLink, pax }

    /// `root`: an empty directory, opened by the caller (closed by it).
    init(root: Int32, maxBytes: Int64) {
        self.root = root
        self.maxBytes = maxBytes
    }

    deinit {
        if target >= 0 { close(target) }
    }

    /// Takes the next bytes of the (decompressed) stream. Only a header
    /// split across two pieces is copied; file data goes straight to its file.
    func push(_ bytes: [UInt8]) throws(ArtifactError) {
        if pending.isEmpty { return try process(bytes[...]) }
        let joined = pending + bytes
        pending = []
        try process(joined[...])
    }

    private func process(_ data: ArraySlice<UInt8>) throws(ArtifactError) {
        var offset = data.startIndex
        while offset < data.endIndex {
            if ended { return }
            if remaining > 0 || padding > 0 {
                offset += try consumeData(data[offset...])
                continue
            }
            guard data.endIndex - offset >= 512 else {
                pending = Array(data[offset...])
                return
            }
            let header = Array(data[offset..<offset + 512])
            offset += 512
            try begin(header)
        }
    }

    /// Fails when the stream ended inside an entry.
    func finish() throws(ArtifactError) {
        if remaining > 0 { throw ArtifactError("the layer's tar stream is truncated") }
        if target >= 0 { close(target); target = -1 }
    }

    /// Consumes the current entry's data (or padding) from the front of `data`; how much.
    private func consumeData(_ data: ArraySlice<UInt8>) throws(ArtifactError) -> Int {
        let available = Int64(data.count)
        if remaining > 0 {
            let take = Int(min(remaining, available))
            let slice = data.prefix(take)
            if collecting != nil {
                collected += slice
            } else if target >= 0 {
                guard slice.withUnsafeBytes({ writeAll($0) }) else {
                    throw ArtifactError("cannot write an unpacked file: \(String(cString: strerror(errno)))")
                }
            }
            remaining -= Int64(take)
            if remaining == 0 { try endEntry() }
            return take
        }
        let skip = Int(min(padding, available))
        padding -= Int64(skip)
        return skip
    }

    /// False when the data could not all be written (errno says why).
    private func writeAll(_ raw: UnsafeRawBufferPointer) -> Bool {
        guard let base = raw.baseAddress else { return true }
        var done = 0
        while done < raw.count {
            let n = write(target, base + done, raw.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }

    private func endEntry() throws(ArtifactError) {
        if target >= 0 { close(target); target = -1 }
        guard let kind = collecting else { return }
        collecting = nil
        let text = String(decoding: collected.prefix { $0 != 0 }, as: UTF8.self)
        switch kind {
        case .longName: longName = text
        case .longLink: longLink = text
        case .pax: try readPax(collected)
        }
        collected = []
    }

    /// Pax records: "LENGTH KEY=VALUE\n"; path, linkpath and size matter.
    private func readPax(_ bytes: [UInt8]) throws(ArtifactError) {
        var index = 0
        while index < bytes.count {
            guard let space = bytes[index...].firstIndex(of: 32), let length = Int(String(decoding: bytes[index..<space], as: UTF8.self)),
                  length > 0, index + length <= bytes.count else { throw ArtifactError("a pax header of the layer is malformed") }
            let record = bytes[(space + 1)..<(index + length - 1)]
            if let equals = record.firstIndex(of: 61) {
                let key = String(decoding: record[record.startIndex..<equals], as: UTF8.self)
                let value = String(decoding: record[(equals + 1)...], as: UTF8.self)
                switch key {
                case "path": paxPath = value
                case "linkpath": paxLink = value
                case "size": paxSize = Int64(value)
                default: break
                }
            }
            index += length
        }
    }

    private func begin(_ header: [UInt8]) throws(ArtifactError) {
        if header.allSatisfy({ $0 == 0 }) {
            ended = true
            return
        }
        guard Self.checksumMatches(header) else { throw ArtifactError("the layer is not a tar stream (a header's checksum is wrong)") }
        entries += 1
        guard entries <= 1_000_000 else { throw ArtifactError("the layer has more than 1,000,000 entries") }
        let type = header[156]
        var size = try Self.number(header[124..<136])
        if let paxSize, type != UInt8(ascii: "x"), type != UInt8(ascii: "g") { size = paxSize }
        guard size >= 0 else { throw ArtifactError("a tar entry has a negative size") }
        remaining = size
        padding = (512 - size % 512) % 512
        switch type {
        case UInt8(ascii: "L"): collect(.longName, size: size)
        case UInt8(ascii: "K"): collect(.longLink, size: size)
        case UInt8(ascii: "x"): collect(.pax, size: size)
        case UInt8(ascii: "g"): break  // global pax headers: nothing Rewind uses
        default:
            let name = paxPath ?? longName ?? Self.headerName(header)
            let link = paxLink ?? longLink ?? Self.field(header[157..<257])
            paxPath = nil; paxLink = nil; paxSize = nil; longName = nil; longLink = nil
            try place(name: name, link: link, type: type, mode: try Self.number(header[100..<108]), size: size)
        }
        if remaining == 0 { try endEntry() }
    }

    private func collect(_ kind: CollectKind, size: Int64) {
        collecting = kind
        collected = []
        collected.reserveCapacity(Int(min(size, 1 << 20)))
    }

    private func place(name: String, link: String, type: UInt8, mode: Int64, size: Int64) throws(ArtifactError) {
        let components = try Self.safeComponents(name)
        guard !components.isEmpty else { return }  // "./" itself
        let (parent, leaf) = try openParent(components, name: name)
        defer { if parent != root { close(parent) } }
        if leaf.hasPrefix(".wh.") {
            if leaf == ".wh..wh..opq" { try removeChildren(of: parent) } else { try remove(String(leaf.dropFirst(4)), in: parent) }
            return
        }
        let permissions = mode_t(mode & 0o777)
        switch type {
        case UInt8(ascii: "0"), 0, UInt8(ascii: "7"):
            written += size
            guard written <= maxBytes else { throw ArtifactError("the unpacked artifact is over \(maxBytes) bytes") }
            try remove(leaf, in: parent, keepDirectory: false)
            let fd = openat(parent, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, permissions)
            guard fd >= 0 else { throw ArtifactError("cannot create \(name): \(String(cString: strerror(errno)))") }
            fchmod(fd, permissions)
            target = fd
        case UInt8(ascii: "5"):
            if mkdirat(parent, leaf, permissions | 0o700) != 0 && errno != EEXIST {
                throw ArtifactError("cannot create the directory \(name): \(String(cString: strerror(errno)))")
            }
        case UInt8(ascii: "2"):
            try Self.checkSymlink(link, at: components, name: name)
            try remove(leaf, in: parent, keepDirectory: false)
            guard symlinkat(link, parent, leaf) == 0 else { throw ArtifactError("cannot create the link \(name): \(String(cString: strerror(errno)))") }
        case UInt8(ascii: "1"):
            let source = try Self.safeComponents(link)
            guard !source.isEmpty else { throw ArtifactError("the hard link \(name) has no target") }
            let (sourceParent, sourceLeaf) = try openParent(source, name: link)
            defer { if sourceParent != root { close(sourceParent) } }
            try remove(leaf, in: parent, keepDirectory: false)
            guard linkat(sourceParent, sourceLeaf, parent, leaf, 0) == 0 else {
                throw ArtifactError("cannot create the hard link \(name) → \(link): \(String(cString: strerror(errno)))")
            }
        default:
            break  // character and block devices, fifos: not for an artifact directory
        }
    }

    /// Opens (creating) the entry's parent directories without following
    /// any symbolic link; returns the parent and the last component.
    private func openParent(_ components: [String], name: String) throws(ArtifactError) -> (Int32, String) {
        var current = root
        for component in components.dropLast() {
            if mkdirat(current, component, 0o755) != 0 && errno != EEXIST {
                if current != root { close(current) }
                throw ArtifactError("cannot create the directory for \(name): \(String(cString: strerror(errno)))")
            }
            let next = openat(current, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if current != root { close(current) }
            guard next >= 0 else {
                throw ArtifactError("the tar entry '\(Self.bounded(name))' goes through a symbolic link or a file ('\(component)'); refused, nothing outside the artifact's directory is written")
            }
            current = next
        }
        return (current, components[components.count - 1])
    }

    private func remove(_ leaf: String, in parent: Int32, keepDirectory: Bool = true) throws(ArtifactError) {
        guard leaf != "." && leaf != ".." && !leaf.isEmpty && !leaf.contains("/") else { return }
        var info = stat()
        guard fstatat(parent, leaf, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            if keepDirectory == false { return }
            let fd = openat(parent, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { return }
            try removeChildren(of: fd)
            close(fd)
            unlinkat(parent, leaf, AT_REMOVEDIR)
        } else {
            unlinkat(parent, leaf, 0)
        }
    }

    private func removeChildren(of directory: Int32) throws(ArtifactError) {
        let copy = dup(directory)
        guard copy >= 0, let stream = fdopendir(copy) else { return }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        for name in names { try remove(name, in: directory) }
    }

    // MARK: Headers and paths

    /// The path's components: relative, without `.` and empty parts; nil-free of `..`.
    static func safeComponents(_ path: String) throws(ArtifactError) -> [String] {
        guard !path.hasPrefix("/") else { throw ArtifactError("the tar entry '\(bounded(path))' is an absolute path; refused") }
        let parts = path.split(separator: "/").map(String.init).filter { $0 != "." }
        if parts.contains("..") { throw ArtifactError("the tar entry '\(bounded(path))' climbs out of its directory with '..'; refused") }
        return parts
    }

    /// A symbolic link stays inside: its target is relative, and its
    /// leading `..` do not climb above the artifact's directory (and come
    /// only first, so that no link inside it can be climbed through).
    static func checkSymlink(_ target: String, at components: [String], name: String) throws(ArtifactError) {
        guard !target.isEmpty, !target.hasPrefix("/") else {
            throw ArtifactError("the symbolic link '\(bounded(name))' points to the absolute path '\(bounded(target))'; refused, it would leave the artifact's directory")
        }
        let parts = target.split(separator: "/").filter { $0 != "." }
        let ups = parts.prefix { $0 == ".." }.count
        guard !parts.dropFirst(ups).contains(".."), ups <= components.count - 1 else {
            throw ArtifactError("the symbolic link '\(bounded(name))' → '\(bounded(target))' leaves the artifact's directory; refused")
        }
    }

    static func headerName(_ header: [UInt8]) -> String {
        let name = field(header[0..<100])
        let magic = field(header[257..<262])
        let prefix = magic == "ustar" ? field(header[345..<500]) : ""
        return prefix.isEmpty ? name : prefix + "/" + name
    }

    static func field(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// An octal field, or GNU's base-256 for large sizes.
    static func number(_ bytes: ArraySlice<UInt8>) throws(ArtifactError) -> Int64 {
        if let first = bytes.first, first & 0x80 != 0 {
            var value: Int64 = Int64(first & 0x7f)
            for byte in bytes.dropFirst() {
                guard value < (Int64.max >> 8) else { throw ArtifactError("a tar number is too large") }
                value = (value << 8) | Int64(byte)
            }
            return value
        }
        let text = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self).trimmingCharacters(in: " ")
        if text.isEmpty { return 0 }
        guard let value = Int64(text, radix: 8) else { throw ArtifactError("a tar header has a malformed number '\(bounded(text))'") }
        return value
    }

    static func checksumMatches(_ header: [UInt8]) -> Bool {
        guard let stored = try? number(header[148..<156]) else { return false }
        var sum: Int64 = 0
        for (index, byte) in header.enumerated() { sum += (148..<156).contains(index) ? 32 : Int64(byte) }
        return sum == stored
    }

    static func bounded(_ text: String) -> String { text.count > 120 ? String(text.prefix(120)) + "…" : text }
}

private extension String {
    func trimmingCharacters(in set: String) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice.removeFirst() }
        while let last = slice.last, set.contains(last) { slice.removeLast() }
        return String(slice)
    }
}
