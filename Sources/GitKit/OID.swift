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
        withUnsafeBytes(of: raw.id) { hasher.combine(bytes: $0) }
    }
}

extension UInt8 {
    var isHexDigit: Bool {
        (48...57).contains(self) || (97...102).contains(self) || (65...70).contains(self)
    }
}
