#if canImport(Glibc)
import Glibc
#endif

/// A time zone from the system's tz database (`/usr/share/zoneinfo`,
/// TZif files): the offset from UTC at any instant, from the zone's
/// transitions. After the last transition listed (2037 in the usual "fat"
/// files) the last offset holds.
public struct ZoneInfo: Sendable, Equatable {
    public let identifier: String
    /// Transition instants (UTC seconds), ascending, and the offset (seconds east of UTC) from each on.
    private let transitions: [Int64]
    private let offsets: [Int32]
    /// The offset before the first transition.
    private let initial: Int32

    public static let utc = ZoneInfo(identifier: "UTC", transitions: [], offsets: [], initial: 0)
    static let directory = "/usr/share/zoneinfo/"

    /// A name such as `Europe/Berlin` or `UTC`: letters, digits, `/`, `_`, `-`, `+`; no `..`.
    public static func isPlausibleName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && !name.hasPrefix("/") && !name.contains("..")
            && name.utf8.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || [47, 95, 45, 43].contains($0) }
    }

    /// The zone named `identifier`, or nil when the system has no such zone.
    public static func load(_ identifier: String) -> ZoneInfo? {
        if identifier == "UTC" || identifier == "Etc/UTC" { return .utc }
        guard isPlausibleName(identifier), let bytes = FileIO.read(directory + identifier) else { return nil }
        return parse(bytes, identifier: identifier)
    }

    /// Parses a TZif file (version 2 or later: its 64-bit block).
    static func parse(_ bytes: [UInt8], identifier: String) -> ZoneInfo? {
        func u32(_ at: Int) -> Int? {
            guard at + 4 <= bytes.count else { return nil }
            return Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3])
        }
        func i64(_ at: Int) -> Int64? {
            guard at + 8 <= bytes.count else { return nil }
            return (0..<8).reduce(Int64(0)) { $0 << 8 | Int64(bytes[at + $1]) }
        }
        func header(_ at: Int) -> (isutc: Int, isstd: Int, leap: Int, time: Int, type: Int, chars: Int)? {
            guard bytes.count >= at + 44, Array(bytes[at..<at + 4]) == Array("TZif".utf8) else { return nil }
            guard let a = u32(at + 20), let b = u32(at + 24), let c = u32(at + 28), let d = u32(at + 32), let e = u32(at + 36), let f = u32(at + 40) else { return nil }
            return (a, b, c, d, e, f)
        }
        guard let v1 = header(0), bytes[4] >= 50 /* '2' */ else { return nil }
        let skip = 44 + v1.time * 5 + v1.type * 6 + v1.chars + v1.leap * 8 + v1.isstd + v1.isutc
        guard let v2 = header(skip), v2.type > 0 else { return nil }
        var at = skip + 44
        var times: [Int64] = []
        for i in 0..<v2.time {
            guard let t = i64(at + i * 8) else { return nil }
            times.append(t)
        }
        at += v2.time * 8
        guard at + v2.time <= bytes.count else { return nil }
        let indices = bytes[at..<at + v2.time].map(Int.init)
        at += v2.time
        var typeOffsets: [Int32] = []
        var typeDST: [Bool] = []
        for i in 0..<v2.type {
            guard let raw = u32(at + i * 6), at + i * 6 + 4 < bytes.count else { return nil }
            typeOffsets.append(Int32(truncatingIfNeeded: raw))
            typeDST.append(bytes[at + i * 6 + 4] != 0)
        }
        guard indices.allSatisfy({ $0 < typeOffsets.count }) else { return nil }
        // Before the first transition: the first standard-time type (RFC 8536 3.2).
        let initial = typeOffsets[typeDST.firstIndex(of: false) ?? 0]
        return ZoneInfo(identifier: identifier, transitions: times, offsets: indices.map { typeOffsets[$0] }, initial: initial)
    }

    /// Seconds east of UTC at `utcSeconds`.
    public func offset(atUTC utcSeconds: Int64) -> Int32 {
        var low = 0, high = transitions.count
        while low < high {
            let mid = (low + high) / 2
            if transitions[mid] <= utcSeconds { low = mid + 1 } else { high = mid }
        }
        return low == 0 ? initial : offsets[low - 1]
    }
}
