import CLibGit2

extension Repository {
    /// The note on `target` inside one notes commit; nil when there is none.
    public func note(on target: OID, inNotesCommit notesCommit: OID) throws -> String? {
        try withCommit(notesCommit) { c in
            var raw = target.raw
            return try noteMessage("git_note_commit_read") { git_note_commit_read(&$0, handle, c, &raw) }
        }
    }

    /// Writes a notes commit on top of `parent` (nil: the first one) that
    /// sets the note on `target` to `message`, replacing any earlier note.
    /// No reference moves: the caller moves the notes ref with
    /// compare-and-swap (`updateReference`).
    public func createNotesCommit(parent: OID?, on target: OID, message: String, signature: Signature) throws -> OID {
        let sig = try makeSignature(signature)
        defer { git_signature_free(sig) }
        var raw = target.raw
        var commitOut = git_oid()
        var blobOut = git_oid()
        if let parent {
            try withCommit(parent) { p in
                try check(git_note_commit_create(&commitOut, &blobOut, handle, p, sig, sig, &raw, message, 1), "git_note_commit_create")
            }
        } else {
            try check(git_note_commit_create(&commitOut, &blobOut, handle, nil, sig, sig, &raw, message, 1), "git_note_commit_create")
        }
        return OID(commitOut)
    }
}
