import CLibGit2

extension Repository {
    /// Runs `body` with a looked-up commit, freeing it afterwards.
    func withCommit<T>(_ id: OID, _ body: (OpaquePointer) throws -> T) throws -> T {
        var raw = id.raw
        var commit: OpaquePointer?
        try check(git_commit_lookup(&commit, handle, &raw), "git_commit_lookup")
        guard let commit else { throw GitError(code: .notFound, function: "git_commit_lookup", message: "no commit \(id)") }
        defer { git_commit_free(commit) }
        return try body(commit)
    }

    /// Runs `body` with a looked-up tree, freeing it afterwards.
    func withTree<T>(_ id: OID, _ body: (OpaquePointer) throws -> T) throws -> T {
        var raw = id.raw
        var tree: OpaquePointer?
        try check(git_tree_lookup(&tree, handle, &raw), "git_tree_lookup")
        guard let tree else { throw GitError(code: .notFound, function: "git_tree_lookup", message: "no tree \(id)") }
        defer { git_tree_free(tree) }
        return try body(tree)
    }

    /// Reads a whole commit.
    public func commit(_ id: OID) throws -> Commit {
        try withCommit(id) { c in
            let parents = (0..<git_commit_parentcount(c)).map { OID(git_commit_parent_id(c, $0)) }
            let message = git_commit_message_raw(c).map { String(cString: $0) } ?? ""
            return Commit(
                id: id, tree: OID(git_commit_tree_id(c)), parents: parents,
                author: Signature(git_commit_author(c)), committer: Signature(git_commit_committer(c)),
                message: message)
        }
    }

    /// The entry at a slash-separated path below a tree; nil when absent.
    public func entry(in tree: OID, path: String) throws -> TreeEntry? {
        if path.isEmpty { return TreeEntry(name: "", id: tree, kind: .tree, mode: 0o040000) }
        return try withTree(tree) { t in
            var entry: OpaquePointer?
            let rc = git_tree_entry_bypath(&entry, t, path)
            if rc == GIT_ENOTFOUND.rawValue { return nil }
            try check(rc, "git_tree_entry_bypath")
            defer { git_tree_entry_free(entry) }
            return entry.map { TreeEntry($0) }
        }
    }

    /// All entries of one tree, in git's order.
    public func listTree(_ tree: OID) throws -> [TreeEntry] {
        try withTree(tree) { t in
            (0..<git_tree_entrycount(t)).compactMap { git_tree_entry_byindex(t, $0).map { TreeEntry($0) } }
        }
    }

    /// The bytes of a blob.
    public func blob(_ id: OID) throws -> [UInt8] {
        var raw = id.raw
        var blob: OpaquePointer?
        try check(git_blob_lookup(&blob, handle, &raw), "git_blob_lookup")
        defer { git_blob_free(blob) }
        let size = Int(git_blob_rawsize(blob))
        guard size > 0, let content = git_blob_rawcontent(blob) else { return [] }
        return Array(UnsafeRawBufferPointer(start: content, count: size))
    }

    /// The size of a blob in bytes, read from the object header only.
    public func blobSize(_ id: OID) throws -> Int {
        var odb: OpaquePointer?
        try check(git_repository_odb(&odb, handle), "git_repository_odb")
        defer { git_odb_free(odb) }
        var raw = id.raw
        var size = 0
        var type = GIT_OBJECT_ANY
        try check(git_odb_read_header(&size, &type, odb, &raw), "git_odb_read_header")
        return size
    }

    /// The note attached to a commit under `notesRef`; nil when there is none.
    public func note(on commit: OID, notesRef: String) throws -> String? {
        var raw = commit.raw
        return try noteMessage("git_note_read") { git_note_read(&$0, handle, notesRef, &raw) }
    }

    /// Runs a libgit2 note lookup and returns the note's text (nil: no note).
    func noteMessage(_ function: String, _ read: (inout OpaquePointer?) -> Int32) throws -> String? {
        var note: OpaquePointer?
        let rc = read(&note)
        if rc == GIT_ENOTFOUND.rawValue { return nil }
        try check(rc, function)
        defer { git_note_free(note) }
        return git_note_message(note).map { String(cString: $0) }
    }
}

extension Signature {
    init(_ sig: UnsafePointer<git_signature>?) {
        guard let sig else {
            self.init(name: "", email: "", time: 0)
            return
        }
        self.init(
            name: sig.pointee.name.map { String(cString: $0) } ?? "",
            email: sig.pointee.email.map { String(cString: $0) } ?? "",
            time: sig.pointee.when.time,
            offsetMinutes: sig.pointee.when.offset)
    }
}

extension TreeEntry {
    init(_ e: OpaquePointer) {
        let mode = git_tree_entry_filemode_raw(e).rawValue
        let kind: EntryKind
        switch git_tree_entry_filemode(e) {
        case GIT_FILEMODE_TREE: kind = .tree
        case GIT_FILEMODE_LINK: kind = .symlink
        case GIT_FILEMODE_COMMIT: kind = .submodule
        default: kind = .blob
        }
        self.init(name: String(cString: git_tree_entry_name(e)), id: OID(git_tree_entry_id(e)), kind: kind, mode: mode)
    }
}
