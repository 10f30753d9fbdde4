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

extension Repository {
    /// Every note in a notes commit: the annotated object and the note's blob.
    public func notes(inNotesCommit notesCommit: OID) throws -> [(target: OID, blob: OID)] {
        try withCommit(notesCommit) { c in
            var iterator: OpaquePointer?
            try check(git_note_commit_iterator_new(&iterator, c), "git_note_commit_iterator_new")
            defer { git_note_iterator_free(iterator) }
            var result: [(OID, OID)] = []
            var blob = git_oid()
            var target = git_oid()
            while true {
                let rc = git_note_next(&blob, &target, iterator)
                if rc == GIT_ITEROVER.rawValue { break }
                try check(rc, "git_note_next")
                result.append((OID(target), OID(blob)))
            }
            return result
        }
    }

    /// Writes a notes commit with several parents whose notes are exactly
    /// `notes` (annotated object → text): how two notes histories that
    /// diverged are merged. No reference moves.
    public func createNotesMerge(parents: [OID], notes: [OID: String], message: String, signature: Signature) throws -> OID {
        var builder: OpaquePointer?
        try check(git_treebuilder_new(&builder, handle, nil), "git_treebuilder_new")
        defer { git_treebuilder_free(builder) }
        for (target, text) in notes.sorted(by: { $0.key < $1.key }) {
            var blob = try writeBlob(Array(text.utf8)).raw
            try check(git_treebuilder_insert(nil, builder, target.description, &blob, GIT_FILEMODE_BLOB), "git_treebuilder_insert")
        }
        var tree = git_oid()
        try check(git_treebuilder_write(&tree, builder), "git_treebuilder_write")
        return try createCommit(tree: OID(tree), parents: parents, message: message, author: signature, committer: signature)
    }
}
