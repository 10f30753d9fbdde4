/// Formats commit times as ISO 8601 with the author's offset.
public enum Dates {
    public static func iso8601(_ seconds: Int64, offsetMinutes: Int32) -> String {
        var out: [UInt8] = []
        appendISO8601(seconds, offsetMinutes: offsetMinutes, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `2026-11-21T19:30:07+01:00`, appended as bytes.
    public static func appendISO8601(_ seconds: Int64, offsetMinutes: Int32, into out: inout [UInt8]) {
        let local = seconds + Int64(offsetMinutes) * 60
        var days = local / 86_400
        var rest = local % 86_400
        if rest < 0 { rest += 86_400; days -= 1 }
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        let off = Int64(abs(Int(offsetMinutes)))
        let y = max(0, min(9999, year))
        func two(_ n: Int64) -> (UInt8, UInt8) { (48 + UInt8(truncatingIfNeeded: n / 10 % 10), 48 + UInt8(truncatingIfNeeded: n % 10)) }
        let (mo1, mo2) = two(month), (d1, d2) = two(day), (h1, h2) = two(rest / 3600), (mi1, mi2) = two(rest % 3600 / 60)
        let (s1, s2) = two(rest % 60), (oh1, oh2) = two(off / 60), (om1, om2) = two(off % 60)
        let (y1, y2) = two(y / 100), (y3, y4) = two(y % 100)
        out.append(contentsOf: [y1, y2, y3, y4, 45, mo1, mo2, 45, d1, d2, 84, h1, h2, 58, mi1, mi2, 58, s1, s2,
                                offsetMinutes < 0 ? 45 : 43, oh1, oh2, 58, om1, om2])
    }

    /// `2026-11-21T18:30:07Z`: RFC 3339 in UTC, the one form Rewind prints
    /// times in (tables and JSON).
    public static func utc(_ seconds: Int64) -> String {
        var out: [UInt8] = []
        appendUTC(seconds, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `utc`, appended as bytes.
    public static func appendUTC(_ seconds: Int64, into out: inout [UInt8]) {
        appendISO8601(seconds, offsetMinutes: 0, into: &out)
        out.removeLast(6)
        out.append(90)
    }
}
