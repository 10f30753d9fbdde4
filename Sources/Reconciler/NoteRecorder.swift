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
struct NoteRecorder {
    static let notesRef = "refs/notes/rewind"
    let git: Repository
    let host: String

    /// One outcome on one commit.
    struct Entry {
        var outcome: String
        var app: String
        var fields: [(String, String)] = []
    }

    /// Adds `entries` to the note on `commit`, skipping any already there.
    func record(_ entries: [Entry], on commit: OID) throws {
        for _ in 1...50 {
            let current = try git.referenceTarget(Self.notesRef)
            let existing = try current.flatMap { try git.note(on: commit, inNotesCommit: $0) } ?? ""
            let lines = existing.split(separator: "\n").map(String.init)
            let fresh = entries.filter { entry in !lines.contains { $0.hasPrefix("\(entry.outcome) app=\(entry.app) ") } }
            if fresh.isEmpty { return }
            let now = Clock.wallMilliseconds()
            let added = fresh.map { render($0, now: now) }
            let message = (lines + added).joined(separator: "\n") + "\n"
            let signature = git.defaultSignature(now: now / 1000)
            let notesCommit = try git.createNotesCommit(parent: current, on: commit, message: message, signature: signature)
            do {
                try git.updateReference(Self.notesRef, to: notesCommit, expecting: current, logMessage: "rewind: notes for \(commit.short)")
                return
            } catch let error as GitError where error.code == .modified || error.code == .locked || error.code == .exists {
                Clock.sleep(milliseconds: Int64.random(in: 1...10))
            }
        }
        throw StateError("gave up writing the note on \(commit.short): \(Self.notesRef) kept moving")
    }

    private func render(_ entry: Entry, now: Int64) -> String {
        var words = ["\(entry.outcome) app=\(entry.app)"]
        for (key, value) in entry.fields { words.append("\(key)=\(quoted(value))") }
        words.append("time=\(Clock.iso8601UTC(milliseconds: now))")
        words.append("host=\(host)")
        return words.joined(separator: " ")
    }

    private func quoted(_ value: String) -> String {
        let oneLine = value.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).joined(separator: " ")
        guard oneLine.contains(" ") || oneLine.contains("\"") || oneLine.isEmpty else { return oneLine }
        return "\"" + oneLine.replacing("\"", with: "'") + "\""
    }
}
