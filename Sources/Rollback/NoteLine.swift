/// What a note line says happened to an app's release.
public enum NoteOutcome: String, Sendable, CaseIterable {
    case applied, healthy, failed, verified, held, escalated
    case rolledBack = "rolled-back"
}

/// One line of a note under `refs/notes/rewind`:
/// `<outcome> app=<name> key=value key="a value with spaces" ...`.
public struct NoteLine: Sendable, Equatable {
    /// The notes ref Rewind writes outcomes under: the one place it is named.
    public static let notesRef = "refs/notes/rewind"

    public var outcome: String
    public var app: String
    /// The other fields, in order (without `app`).
    public var fields: [Field]

    public struct Field: Sendable, Equatable {
        public var key: String
        public var value: String
    }

    /// The outcome, when it is one Rewind writes.
    public var known: NoteOutcome? { NoteOutcome(rawValue: outcome) }

    /// The value of the first field named `key`.
    public func value(_ key: String) -> String? { fields.first { $0.key == key }?.value }

    /// Parses one line; nil when it is not a Rewind note line (hand-written
    /// text, a damaged line): such lines are skipped, never fatal.
    public static func parse<S: StringProtocol>(_ line: S) -> NoteLine? {
        var words: [String] = []
        var current = ""
        var quoted = false
        var inWord = false
        for ch in line {
            if quoted {
                if ch == "\"" { quoted = false } else { current.append(ch) }
            } else if ch == "\"" {
                quoted = true
                inWord = true
            } else if ch == " " || ch == "\t" {
                if inWord { words.append(current) }
                current = ""
                inWord = false
            } else {
                current.append(ch)
                inWord = true
            }
        }
        guard !quoted else { return nil }
        if inWord { words.append(current) }
        guard let outcome = words.first, !outcome.isEmpty, outcome.allSatisfy({ $0.isLetter || $0 == "-" }) else { return nil }
        var app: String?
        var fields: [Field] = []
        for word in words.dropFirst() {
            guard let equals = word.firstIndex(of: "="), equals != word.startIndex else { return nil }
            let key = String(word[..<equals])
            let value = String(word[word.index(after: equals)...])
            if key == "app" && app == nil { app = value } else { fields.append(Field(key: key, value: value)) }
        }
        guard let app, !app.isEmpty else { return nil }
        return NoteLine(outcome: outcome, app: app, fields: fields)
    }

    /// Every line of a note's text that parses.
    public static func parseAll(_ text: String) -> [NoteLine] {
        text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).compactMap { parse($0) }
    }
}
