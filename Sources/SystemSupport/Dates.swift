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
        let (year, month, day) = civil(days)
        let off = Int64(abs(Int(offsetMinutes)))
        let y = max(0, min(9999, year))
        func two(_ n: Int64) -> (UInt8, UInt8) { (48 + UInt8(truncatingIfNeeded: n / 10 % 10), 48 + UInt8(truncatingIfNeeded: n % 10)) }
        let (mo1, mo2) = two(month), (d1, d2) = two(day), (h1, h2) = two(rest / 3600), (mi1, mi2) = two(rest % 3600 / 60)
        let (s1, s2) = two(rest % 60), (oh1, oh2) = two(off / 60), (om1, om2) = two(off % 60)
        let (y1, y2) = two(y / 100), (y3, y4) = two(y % 100)
        out.append(contentsOf: [y1, y2, y3, y4, 45, mo1, mo2, 45, d1, d2, 84, h1, h2, 58, mi1, mi2, 58, s1, s2,
                                offsetMinutes < 0 ? 45 : 43, oh1, oh2, 58, om1, om2])
    }

    /// Year, month and day of `days` since 1970-01-01, proleptic Gregorian
    /// (Howard Hinnant's algorithm).
    public static func civil(_ days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
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

extension Dates {
    /// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    public static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// Reads `2026-11-21`, `2026-11-21T19:30:07Z`, `2026-11-21T19:30:07.250Z`
    /// or `2026-11-21T20:30:07+01:00` (a space may stand for the `T`) as
    /// milliseconds since the epoch; nil for anything else, including
    /// impossible dates such as 2026-02-30. A bare date is midnight UTC.
    public static func parse(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int64? {
            guard from + count <= b.count else { return nil }
            var n: Int64 = 0
            for i in from..<(from + count) {
                guard b[i] >= 48 && b[i] <= 57 else { return nil }
                n = n * 10 + Int64(b[i] - 48)
            }
            return n
        }
        guard let year = number(0, 4), b.count >= 10, b[4] == 45, let month = number(5, 2), b[7] == 45, let day = number(8, 2),
              (1...12).contains(month), day >= 1 else { return nil }
        let lengths: [Int64] = [31, (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard day <= lengths[Int(month - 1)] else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        if b.count == 10 { return days * 86_400_000 }
        guard b.count >= 20, b[10] == 84 || b[10] == 116 || b[10] == 32, let hour = number(11, 2), b[13] == 58, let minute = number(14, 2), b[16] == 58,
              let second = number(17, 2), hour < 24, minute < 60, second < 61 else { return nil }
        var i = 19
        var millis: Int64 = 0
        if b[i] == 46 {
            i += 1
            var digits = 0
            while i < b.count, b[i] >= 48 && b[i] <= 57 {
                if digits < 3 { millis = millis * 10 + Int64(b[i] - 48) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            if digits < 3 { for _ in digits..<3 { millis *= 10 } }
        }
        guard i < b.count else { return nil }
        var offset: Int64 = 0
        if b[i] == 90 || b[i] == 122 {
            guard i + 1 == b.count else { return nil }
        } else if b[i] == 43 || b[i] == 45 {
            guard i + 6 == b.count, let oh = number(i + 1, 2), b[i + 3] == 58, let om = number(i + 4, 2), oh < 24, om < 60 else { return nil }
            offset = (oh * 60 + om) * (b[i] == 45 ? -1 : 1)
        } else {
            return nil
        }
        return ((days * 86_400 + hour * 3600 + minute * 60 + second) - offset * 60) * 1000 + millis
    }
}
