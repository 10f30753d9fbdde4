import GitKit
import SystemSupport

/// Records what happened on the platform as git notes under
/// `refs/notes/rewind`, one line per outcome:
///
///     applied app=api version=1.5.0 time=2026-11-21T19:30:07Z duration=840ms host=deploy-1
///
/// The notes ref moves by compare-and-swap, so concurrent writers (another
/// reconciler, `rewind serve`) never lose each other's notes. A line is
/// written once per outcome, app and commit: after a restart, recording the
/// same outcome again changes nothing.
public struct NoteRecorder {
    let git: Repository
    public let host: String

    /// A recorder writing through `git` (a handle that does not stage
    /// objects in memory), signing lines with `host`.
    public init(git: Repository, host: String) {
        self.git = git
        self.host = host
    }

    /// One outcome on one commit.
    public struct Entry {
        public var outcome: NoteOutcome
        public var app: String
        var fields: [(String, String)] = []
        /// How many of the first fields tell this line from another of the
        /// same outcome and app (a canary's `step weight=10`, then `weight=25`):
        /// 0, one line per outcome and app.
        var distinctFields = 0

        /// The fields as `key=value` words (for log lines).
        public var summary: String { fields.map { "\($0.0)=\($0.1)" }.joined(separator: " ") }

        /// An outcome line's content.
        public init(outcome: NoteOutcome, app: String, fields: [(String, String)] = [], distinctFields: Int = 0) {
            self.outcome = outcome
            self.app = app
            self.fields = fields
            self.distinctFields = distinctFields
        }
    }

    /// Renders entries as lines to queue, stamped with the time of the event.
    public func render(_ entries: [Entry], on commit: OID, now: Int64 = Clock.wallMilliseconds()) -> [PendingNote] {
        entries.map { entry in
            let note = ReleaseNote(entry.outcome, app: entry.app, fields: entry.fields, time: now, host: host)
            let distinct = note.fields.prefix(min(entry.distinctFields, entry.fields.count)).map { "\($0.key)=\($0.value) " }.joined()
            return PendingNote(commit: commit.hex, key: note.key + distinct, line: note.line)
        }
    }

    /// Adds the queued lines to the notes of their commits, skipping lines
    /// whose outcome and app this host wrote there already (each host of a
    /// fleet notes its own), in one notes commit chain and one
    /// compare-and-swap of the notes ref (retried on a lost race).
    public func write(_ pending: [PendingNote]) throws {
        var order: [String] = []
        var byCommit: [String: [PendingNote]] = [:]
        for note in pending {
            if byCommit[note.commit] == nil { order.append(note.commit) }
            byCommit[note.commit, default: []].append(note)
        }
        try update(ReleaseNote.notesRef, order.compactMap(OID.init(hex:))) { commit, existing in
            var lines = existing.split(separator: "\n").map(String.init)
            var added = false
            for note in byCommit[commit.hex] ?? [] where !lines.contains(where: { ReleaseNote.isLine($0, key: note.key, host: host) }) {
                lines.append(note.line)
                added = true
            }
            return added ? lines.joined(separator: "\n") + "\n" : nil
        }
    }

    /// Sets the whole note on `commit` under `notesRef` to `text` (an
    /// incident report), through the same compare-and-swap as `write`.
    /// The same text again changes nothing.
    public func replace(_ text: String, on commit: OID, notesRef: String) throws {
        try update(notesRef, [commit]) { _, existing in existing == text ? nil : text }
    }

    /// One notes commit chain over `commits`, each note changed by `change`
    /// (nil: left alone), then one compare-and-swap of `notesRef`, retried
    /// from the new head when another writer moved it.
    private func update(_ notesRef: String, _ commits: [OID], _ change: (OID, String) -> String?) throws {
        let written = try retryLostRaces(attempts: 50) { _ -> Bool? in
            let current = try git.referenceTarget(notesRef)
            var head = current
            let now = Clock.wallMilliseconds()
            let signature = git.defaultSignature(now: now / 1000)
            for commit in commits {
                let existing = try head.flatMap { try git.note(on: commit, inNotesCommit: $0) } ?? ""
                guard let text = change(commit, existing) else { continue }
                head = try git.createNotesCommit(parent: head, on: commit, message: text, signature: signature)
            }
            guard let head, head != current else { return true }
            do {
                try git.updateReference(notesRef, to: head, expecting: current, logMessage: "rewind: notes")
                return true
            } catch let error as GitError where error.code == .modified || error.code == .locked || error.code == .exists {
                return nil
            }
        }
        if written != nil { return }
        throw RewindError(.contention, "gave up writing notes: \(notesRef) kept moving", hint: "another writer is updating the notes; try again")
    }
}

/// A note line waiting to be written (kept in the state directory, so that a
/// restart writes what a killed reconciler had not).
public struct PendingNote: Sendable, Codable, Equatable {
    public var commit: String
    /// `<outcome> app=<name> `: a line with this prefix is written once per commit.
    public var key: String
    public var line: String
}
