import GitKit
import SystemSupport

/// Release listings as JSON (`rewind releases --format json`, `GET /api/v1/apps/{app}/releases`):
/// `[{app, total, releases: [...]}]`.
public enum ReleaseJSON {
    /// The JSON listing, written straight into bytes (thousands of releases).
    /// With `outcome`, each release also carries `outcome`, `outcomeAt`,
    /// `trigger`, `reason` and `actor`.
    public static func render(_ shown: [(String, [Release], Int)], outcome: ((Release) -> ReleaseOutcome)? = nil) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(shown.reduce(64) { $0 + $1.1.count * 700 })
        out.append(91)
        for (a, (name, releases, total)) in shown.enumerated() {
            if a > 0 { out.append(44) }
            out.put(#"{"app":"#); JSON.escape(name, into: &out)
            out.put(#","total":"#); out += String(total).utf8
            out.put(#","releases":["#)
            for (i, r) in releases.enumerated() {
                if i > 0 { out.append(44) }
                out.put(#"{"number":"#); out += String(r.number).utf8
                out.put(#","commit":"#); hex(r.commit, &out)
                out.put(#","kind":""#); out += r.kind.rawValue.utf8; out.append(34)
                out.put(#","versionBefore":"#); optional(r.previousVersion, &out)
                out.put(#","version":"#); optional(r.version, &out)
                out.put(#","tree":"#); hex(r.tree, &out)
                out.put(#","previousTree":"#); hex(r.previousTree, &out)
                out.put(#","author":"#); JSON.escape(r.author, into: &out)
                out.put(#","email":"#); JSON.escape(r.email, into: &out)
                out.put(#","date":""#); Dates.appendUTC(r.time, into: &out); out.append(34)
                out.put(#","target":"#); hex(r.target, &out)
                out.put(#","reverts":"#); out += (r.reverts ? "true" : "false").utf8
                out.put(#","rolledBackBy":"#); hex(r.rolledBackBy, &out)
                out.put(#","summary":"#); JSON.escape(r.summary, into: &out)
                if let outcome {
                    let o = outcome(r)
                    out.put(#","outcome":"#); optional(o.outcome?.rawValue, &out)
                    out.put(#","outcomeAt":"#); optional(o.at, &out)
                    out.put(#","trigger":"#); optional(o.trigger, &out)
                    out.put(#","reason":"#); optional(o.reason, &out)
                    out.put(#","actor":"#); optional(o.actor, &out)
                }
                out.append(125)
            }
            out += "]}".utf8
        }
        out += "]\n".utf8
        return out
    }

    private static func optional(_ text: String?, _ out: inout [UInt8]) {
        if let text { JSON.escape(text, into: &out) } else { out += "null".utf8 }
    }

    private static func hex(_ id: OID?, _ out: inout [UInt8]) {
        guard let id else { out += "null".utf8; return }
        out.append(34)
        id.appendHex(to: &out)
        out.append(34)
    }
}

extension Array where Element == UInt8 {
    /// Appends a literal's bytes.
    mutating func put(_ text: StaticString) {
        text.withUTF8Buffer { append(contentsOf: $0) }
    }
}
