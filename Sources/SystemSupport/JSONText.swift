/// A JSON value, serialised by hand: fast for large listings, and keys stay
/// in the order they were written.
public enum JSON: Sendable {
    case string(String)
    case number(Int64)
    case double(Double)
    case bool(Bool)
    case null
    case array([JSON])
    case object([(String, JSON)])

    public static func optional(_ text: String?) -> JSON { text.map { .string($0) } ?? .null }

    public var serialised: String { String(decoding: bytes(indent: nil), as: UTF8.self) }

    public var pretty: String { String(decoding: bytes(indent: 2), as: UTF8.self) }

    /// The UTF-8 text, built on bytes: listings of thousands of releases
    /// stay fast.
    public func bytes(indent: Int?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(1 << 16)
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

    public static func escape(_ s: String, into out: inout [UInt8]) {
        out.append(34)
        // Most strings need no escape: check and copy their bytes in place.
        let copied = s.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
            guard !bytes.contains(where: { $0 < 32 || $0 == 34 || $0 == 92 }) else { return false }
            out.append(contentsOf: bytes)
            return true
        }
        if copied == true {
            out.append(34)
            return
        }
        if copied == nil, !s.utf8.contains(where: { $0 < 32 || $0 == 34 || $0 == 92 }) {
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
