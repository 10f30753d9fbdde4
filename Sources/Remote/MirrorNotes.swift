import GitKit
import Rollback
import SystemSupport

/// Notes written on both sides (this mirror and another writer of the
/// remote) are merged, never lost.
extension Mirror {
    /// Merges the remote's notes of `reference` into the local ones:
    /// fast-forward when one contains the other, else a merge commit holding
    /// the union of both. Outcome notes keep the lines of both sides once
    /// each; an incident report written on both sides keeps the local one.
    func mergeNotes(_ git: Repository, _ reference: String) throws {
        guard let remote = try git.referenceTarget(Self.remoteNotes(reference)) else { return }
        guard let local = try git.referenceTarget(reference) else {
            try git.updateReference(reference, to: remote, expecting: nil, logMessage: "rewind: notes from the remote")
            return
        }
        if try local == remote || git.isDescendant(local, of: remote) { return }
        if try git.isDescendant(remote, of: local) {
            try git.updateReference(reference, to: remote, expecting: local, logMessage: "rewind: notes from the remote")
            return
        }
        let keepsLines = reference == ReleaseNote.notesRef
        func combine(_ mine: String, _ theirs: String) -> String { keepsLines ? Self.unionLines(mine, theirs) : mine }
        var merged: [OID: String] = [:]
        for (target, blob) in try git.notes(inNotesCommit: local) {
            merged[target] = String(decoding: try git.blob(blob), as: UTF8.self)
        }
        for (target, blob) in try git.notes(inNotesCommit: remote) {
            let theirs = String(decoding: try git.blob(blob), as: UTF8.self)
            merged[target] = merged[target].map { combine($0, theirs) } ?? theirs
        }
        let signature = git.defaultSignature(now: Clock.wallSeconds())
        let commit = try git.createNotesMerge(parents: [local, remote], notes: merged, message: "rewind: merge notes from the remote\n", signature: signature)
        try git.updateReference(reference, to: commit, expecting: local, logMessage: "rewind: merge notes from the remote")
    }

    static func unionLines(_ mine: String, _ theirs: String) -> String {
        var lines = mine.split(separator: "\n").map(String.init)
        var seen = Set(lines)
        for line in theirs.split(separator: "\n").map(String.init) where !seen.contains(line) {
            lines.append(line)
            seen.insert(line)
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
