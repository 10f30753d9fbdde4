extension StringProtocol {
    /// The text without leading and trailing whitespace (and newlines).
    public func trimmingCharacters() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s = s.dropFirst() }
        while let c = s.last, c.isWhitespace { s = s.dropLast() }
        return String(s)
    }

    /// The lines of a text, whatever its line ends: `\n`, `\r\n` (a file
    /// written on Windows) or `\r`. Splitting on "\n" misses CRLF, which is
    /// one Character in Swift. Empty lines are kept, so line numbers hold.
    public var lines: [SubSequence] { split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) }

    /// The text on one line: each run of line breaks (of any kind) becomes a space.
    public var oneLine: String { split(whereSeparator: \.isNewline).joined(separator: " ") }
}

/// Bounds text from outside (alert labels, reasons, names) before it goes
/// into a trailer, a note, a log line or a response.
public enum Bounded {
    /// The longest value Rewind writes into a trailer, a note or a log line.
    /// Names and labels: alert names, fingerprints, label values.
    public static let maxValueLength = 256
    /// Reasons: Rewind-Reason, Rewind-Forced, and reasons in notes.
    public static let maxReasonLength = 1_024

    /// `text` cut to at most `limit` characters; a cut is visible: it ends in
    /// "…" and states the full length.
    public static func text(_ text: String, limit: Int = maxValueLength) -> String {
        guard text.count > limit else { return text }
        let suffix = "… (\(text.count) characters in all)"
        return String(text.prefix(max(0, limit - suffix.count))) + suffix
    }

    /// `text`, with every character that is not printable ASCII shown as
    /// `?`: for echoing input that may hold control characters back in an
    /// error (a terminal must not interpret them).
    public static func printable(_ text: String, limit: Int = 64) -> String {
        Self.text(String(text.unicodeScalars.map { (32...126).contains($0.value) ? Character($0) : "?" }), limit: limit)
    }
}

/// Says in words what a `DecodingError` found: the field and the problem,
/// not Swift's debug description.
public enum DecodingProblem {
    /// For example "field apps.api.pid is not a number", or "it is not valid JSON".
    public static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "it cannot be decoded" }
        switch error {
        case .keyNotFound(let key, let context):
            return "field '\(path(context.codingPath + [key]))' is missing"
        case .typeMismatch(let type, let context):
            return "field '\(path(context.codingPath))' is not \(name(of: type))"
        case .valueNotFound(let type, let context):
            return "field '\(path(context.codingPath))' is null where \(name(of: type)) belongs"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "it is not valid JSON" : "field '\(path(context.codingPath))' has an invalid value"
        @unknown default:
            return "it cannot be decoded"
        }
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        guard !keys.isEmpty else { return "(top level)" }
        var text = ""
        for key in keys {
            if let index = key.intValue { text += "[\(index)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
        }
        return text
    }

    private static func name(of type: Any.Type) -> String {
        switch type {
        case is String.Type: return "text"
        case is Int.Type, is Int32.Type, is Int64.Type, is UInt64.Type, is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        default:
            let text = "\(type)"
            if text.hasPrefix("Array") { return "a list" }
            if text.hasPrefix("Dictionary") { return "an object" }
            return "the expected kind of value"
        }
    }
}

/// Text for HTML documents.
public enum HTML {
    /// Text made safe for HTML content and attribute values.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for ch in text {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(ch)
            }
        }
        return out
    }
}
