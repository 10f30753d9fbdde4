import CLibGit2

/// A git object id (SHA-1), stored by value.
public struct OID: Hashable, Comparable, Sendable, CustomStringConvertible {
    @usableFromInline var raw: git_oid

    init(_ raw: git_oid) { self.raw = raw }

    init(_ pointer: UnsafePointer<git_oid>) { self.raw = pointer.pointee }

    /// Parses a full 40-character hexadecimal id; nil when it is not one.
    public init?(hex: String) {
        guard hex.utf8.count == 40, hex.utf8.allSatisfy({ $0.isHexDigit }) else { return nil }
        var oid = git_oid()
        let rc = hex.withCString { git_oid_fromstrn(&oid, $0, 40) }
        guard rc == 0 else { return nil }
        raw = oid
    }

    /// The 40-character hexadecimal form.
    public var hex: String {
        var copy = raw
        var buffer = [CChar](repeating: 0, count: 41)
        git_oid_tostr(&buffer, 41, &copy)
        return String(decoding: buffer.prefix(40).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The first seven hex digits, as `git log --oneline` shows.
    public var short: String { String(hex.prefix(7)) }

    public var description: String { hex }

    public static func == (lhs: OID, rhs: OID) -> Bool {
        var a = lhs.raw, b = rhs.raw
        return git_oid_equal(&a, &b) != 0
    }

    public static func < (lhs: OID, rhs: OID) -> Bool {
        var a = lhs.raw, b = rhs.raw
        return git_oid_cmp(&a, &b) < 0
    }

    public func hash(into hasher: inout Hasher) {
        // Object ids are uniformly distributed: eight bytes hash well.
        hasher.combine(withUnsafeBytes(of: raw.id) { $0.loadUnaligned(as: UInt64.self) })
    }
}

extension UInt8 {
    var isHexDigit: Bool {
        (48...57).contains(self) || (97...102).contains(self) || (65...70).contains(self)
    }
}

extension OID {
    /// The 20 raw bytes.
    public var bytes: [UInt8] { withUnsafeBytes(of: raw.id) { Array($0) } }

    /// An id from 20 raw bytes; nil for the all-zero id, which names no object.
    public init?(bytes: ArraySlice<UInt8>) {
        guard bytes.count == 20 else { return nil }
        var oid = git_oid()
        let nonZero = bytes.withUnsafeBytes { source -> Bool in
            withUnsafeMutableBytes(of: &oid.id) { $0.copyMemory(from: source) }
            return source.contains { $0 != 0 }
        }
        guard nonZero else { return nil }
        raw = oid
    }
}

extension OID {
    /// An id from 20 raw bytes; nil for the all-zero id.
    public init?(rawBytes: UnsafeRawBufferPointer) {
        guard rawBytes.count == 20, rawBytes.contains(where: { $0 != 0 }) else { return nil }
        var oid = git_oid()
        withUnsafeMutableBytes(of: &oid.id) { $0.copyMemory(from: rawBytes) }
        raw = oid
    }

    /// Appends the 40 hex digits to a byte buffer (no intermediate string).
    public func appendHex(to out: inout [UInt8]) {
        var copy = raw
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 41) { buffer in
            // git_oid_fmt writes exactly 40 hex digits.
            _ = git_oid_fmt(buffer.baseAddress, &copy)
            buffer.baseAddress!.withMemoryRebound(to: UInt8.self, capacity: 40) {
                out.append(contentsOf: UnsafeBufferPointer(start: $0, count: 40))
            }
        }
    }
}

/// Written as its 40 hexadecimal digits, as git prints it; anything else is
/// refused with what was found.
extension OID: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let oid = OID(hex: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(text.prefix(60))' is not a 40-digit hexadecimal git object id")
        }
        self = oid
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }
}
