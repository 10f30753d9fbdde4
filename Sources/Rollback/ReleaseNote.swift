import SystemSupport

/// What a note line says happened to an app's release.
/// In the order of a release's life, so that of two lines recorded in the
/// same second the later stage is the outcome. `refused` stands apart: a
/// data-loss guard refused a rollback of the app at this commit (the tip
/// then); it is not an outcome of the release itself.
public enum NoteOutcome: String, Sendable, CaseIterable {
    case held, applied, healthy, failed
    case rolledBack = "rolled-back"
    case verified, escalated, refused
    /// Progressive delivery: a canary's weight (`weight=25`), its
    /// promotion, a pause or resume, an abort (written before its rollback commit).
    case step, promoted, paused, resumed, aborted
    /// One stage of a coordinated rollback (`stage=drain`, `down`, `hook`, `start`, `restore`).
    case sequence

    /// True for the outcomes that say what became of a release; the
    /// others record steps along the way (and a refused guard).
    public var isReleaseOutcome: Bool {
        switch self {
        case .held, .applied, .healthy, .failed, .rolledBack, .verified, .escalated: return true
        case .refused, .step, .promoted, .paused, .resumed, .aborted, .sequence: return false
        }
    }
}

/// One line of a note under `refs/notes/rewind`: what happened to an app's
/// release, where and when.
///
///     applied app=api version=1.5.0 tree=4f2a9c1 duration=840ms time=2026-11-21T19:30:07.250Z host=deploy-1
///
/// The one type that writes (`line`) and reads (`parse`) these lines.
public struct ReleaseNote: Sendable, Equatable {
    /// The notes ref Rewind writes outcomes under: the one place it is named.
    public static let notesRef = "refs/notes/rewind"
    /// The notes ref incident reports are written under (one markdown
    /// report per automatic rollback commit).
    public static let incidentNotesRef = "refs/notes/rewind-incident"
    /// Every notes ref Rewind writes (mirrors carry them; serve's events watch them).
    public static let notesRefs = [notesRef, incidentNotesRef]

    public var outcome: NoteOutcome
    public var app: String
    /// The other fields, in order (without `app`); a written line ends with `time` and `host`.
    public var fields: [Field]

    public struct Field: Sendable, Equatable {
        public var key: String
        public var value: String

        public init(_ key: String, _ value: String) {
            self.key = key
            self.value = value
        }
    }

    /// A line to write: the outcome's fields, then when and where.
    public init(_ outcome: NoteOutcome, app: String, fields: [(String, String)] = [], time: Int64, host: String) {
        self.outcome = outcome
        self.app = app
        self.fields = fields.map { Field($0.0, Bounded.text($0.1, limit: Bounded.maxReasonLength)) }
            + [Field("time", Clock.iso8601UTC(milliseconds: time, fraction: true)), Field("host", host)]
    }

    private init(outcome: NoteOutcome, app: String, parsed fields: [Field]) {
        self.outcome = outcome
        self.app = app
        self.fields = fields
    }

    /// What a line of this outcome for this app starts with: a note holds
    /// one line per outcome and app.
    public static func key(_ outcome: NoteOutcome, app: String) -> String { "\(outcome.rawValue) app=\(app) " }

    public var key: String { Self.key(outcome, app: app) }

    /// Whether `line` is the line `host` wrote for `key` (an outcome and an
    /// app). Compared as bytes, as `parse` reads a line: a combining mark
    /// after the key would otherwise join the space into one Character and
    /// hide the line.
    public static func isLine<S: StringProtocol>(_ line: S, key: String, host: String) -> Bool {
        let tail = " host=\(host)".utf8
        return line.utf8.starts(with: key.utf8) && line.utf8.count >= tail.count && line.utf8.suffix(tail.count).elementsEqual(tail)
    }

    /// The line as written: values with spaces or quotes are quoted (a
    /// quote inside becomes an apostrophe), on one line.
    public var line: String {
        ([key.dropLast().description] + fields.map { "\($0.key)=\(Self.quoted($0.value))" }).joined(separator: " ")
    }

    private static func quoted(_ value: String) -> String {
        let oneLine = value.oneLine
        guard oneLine.contains(" ") || oneLine.contains("\"") || oneLine.isEmpty else { return oneLine }
        return "\"" + oneLine.replacing("\"", with: "'") + "\""
    }

    /// The value of the first field named `key`.
    public func value(_ key: String) -> String? { fields.first { $0.key == key }?.value }

    /// Parses one line; nil when it is not a Rewind note line (hand-written
    /// text, a damaged line, an outcome this version does not know): such
    /// lines are skipped, never fatal.
    public static func parse<S: StringProtocol>(_ line: S) -> ReleaseNote? {
        // Bytes, not Characters: an audit parses every note line of a long history.
        var words: [String] = []
        var current: [UInt8] = []
        var quoted = false
        var inWord = false
        for byte in line.utf8 {
            if quoted {
                if byte == 34 { quoted = false } else { current.append(byte) }
            } else if byte == 34 {
                quoted = true
                inWord = true
            } else if byte == 32 || byte == 9 {
                if inWord { words.append(String(decoding: current, as: UTF8.self)) }
                current.removeAll(keepingCapacity: true)
                inWord = false
            } else {
                current.append(byte)
                inWord = true
            }
        }
        guard !quoted else { return nil }
        if inWord { words.append(String(decoding: current, as: UTF8.self)) }
        guard let outcome = words.first.flatMap(NoteOutcome.init(rawValue:)) else { return nil }
        var app: String?
        var fields: [Field] = []
        fields.reserveCapacity(words.count)
        for word in words.dropFirst() {
            let bytes = word.utf8
            guard let equals = bytes.firstIndex(of: 61), equals != bytes.startIndex else { return nil }
            let key = String(word[..<equals])
            let value = String(word[word.utf8.index(after: equals)...])
            if key == "app" && app == nil { app = value } else { fields.append(Field(key, value)) }
        }
        guard let app, !app.isEmpty else { return nil }
        return ReleaseNote(outcome: outcome, app: app, parsed: fields)
    }

    /// Every line of a note's text that parses.
    public static func parseAll(_ text: String) -> [ReleaseNote] {
        text.split(whereSeparator: \.isNewline).compactMap { parse($0) }
    }
}
