#if canImport(Glibc)
import Glibc
#endif

/// Writes to stdout and stderr.
enum Terminal {
    static func print(_ text: String) {
        write(1, Array((text + "\n").utf8))
    }

    /// Writes bytes to a file descriptor, all of them.
    static func write(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            offset += n
        }
    }

    static func error(_ text: String) {
        write(2, Array((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }
}

/// A JSON value, serialised by hand: fast for large listings, and keys stay
/// in the order they were written.
enum JSON {
    case string(String)
    case number(Int64)
    case double(Double)
    case bool(Bool)
    case null
    case array([JSON])
    case object([(String, JSON)])

    static func optional(_ text: String?) -> JSON { text.map { .string($0) } ?? .null }

    var serialised: String { String(decoding: bytes(indent: nil), as: UTF8.self) }

    var pretty: String { String(decoding: bytes(indent: 2), as: UTF8.self) }

    /// The UTF-8 text, built on bytes: listings of thousands of releases
    /// stay fast.
    func bytes(indent: Int?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4096)
        write(into: &out, indent: indent, level: 0)
        return out
    }

    private func write(into out: inout [UInt8], indent: Int?, level: Int) {
        func newline(_ level: Int) {
            guard let indent else { return }
            out.append(10)
            out.append(contentsOf: repeatElement(32, count: indent * level))
        }
        switch self {
        case .string(let s): JSON.escape(s, into: &out)
        case .number(let n): out += String(n).utf8
        case .double(let d): out += (d.isFinite ? "\(d)" : "null").utf8
        case .bool(let b): out += (b ? "true" : "false").utf8
        case .null: out += "null".utf8
        case .array(let items):
            if items.isEmpty { out += "[]".utf8; return }
            out.append(91)
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(44) }
                newline(level + 1)
                item.write(into: &out, indent: indent, level: level + 1)
            }
            newline(level)
            out.append(93)
        case .object(let fields):
            if fields.isEmpty { out += "{}".utf8; return }
            out.append(123)
            for (i, (key, value)) in fields.enumerated() {
                if i > 0 { out.append(44) }
                newline(level + 1)
                JSON.escape(key, into: &out)
                out.append(58)
                if indent != nil { out.append(32) }
                value.write(into: &out, indent: indent, level: level + 1)
            }
            newline(level)
            out.append(125)
        }
    }

    static func escape(_ s: String, into out: inout [UInt8]) {
        out.append(34)
        if !s.utf8.contains(where: { $0 < 32 || $0 == 34 || $0 == 92 }) {
            out.append(contentsOf: s.utf8)
            out.append(34)
            return
        }
        for byte in s.utf8 {
            switch byte {
            case 34: out += [92, 34]
            case 92: out += [92, 92]
            case 10: out += [92, 110]
            case 13: out += [92, 114]
            case 9: out += [92, 116]
            case 0..<32:
                let hex = Array("0123456789abcdef".utf8)
                out += [92, 117, 48, 48, hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            default: out.append(byte)
            }
        }
        out.append(34)
    }
}

/// Formats commit times as ISO 8601 with the author's offset.
enum Dates {
    static func iso8601(_ seconds: Int64, offsetMinutes: Int32) -> String {
        var out: [UInt8] = []
        appendISO8601(seconds, offsetMinutes: offsetMinutes, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `2026-11-21T19:30:07+01:00`, appended as bytes.
    static func appendISO8601(_ seconds: Int64, offsetMinutes: Int32, into out: inout [UInt8]) {
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
}

/// Lays out rows as aligned columns.
enum Table {
    static func render(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                i == cells.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}
