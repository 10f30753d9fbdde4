import CLibGit2

#if canImport(Glibc)
import Glibc
#endif

extension Repository {
    /// Stores bytes as a blob.
    public func writeBlob(_ bytes: [UInt8]) throws -> OID {
        var oid = git_oid()
        try bytes.withUnsafeBytes { buffer in
            try check(git_blob_create_from_buffer(&oid, handle, buffer.baseAddress, buffer.count), "git_blob_create_from_buffer")
        }
        return OID(oid)
    }

    /// Writes a tree equal to `root` except at `path` (slash-separated), which
    /// becomes `replacement` (an entry of any kind) or disappears when nil.
    /// Directories left empty disappear, as git itself never stores them.
    public func replacingEntry(in root: OID, path: String, with replacement: TreeEntry?) throws -> OID {
        let components = path.split(separator: "/").map(String.init)
        guard !components.isEmpty else {
            throw GitError(code: .other(-1), function: "replacingEntry", message: "empty path")
        }
        return try replace(in: root, components[...], with: replacement, isRoot: true) ?? emptyTree()
    }

    private func replace(in tree: OID?, _ components: ArraySlice<String>, with replacement: TreeEntry?, isRoot: Bool) throws -> OID? {
        guard let name = components.first else { return tree }
        var builder: OpaquePointer?
        if let tree {
            try withTree(tree) { t in try check(git_treebuilder_new(&builder, handle, t), "git_treebuilder_new") }
        } else {
            try check(git_treebuilder_new(&builder, handle, nil), "git_treebuilder_new")
        }
        defer { git_treebuilder_free(builder) }

        var newEntry: (OID, UInt32)?
        if components.count == 1 {
            newEntry = replacement.map { ($0.id, $0.mode) }
        } else {
            var childTree: OID?
            if let existing = git_treebuilder_get(builder, name), git_tree_entry_filemode(existing) == GIT_FILEMODE_TREE {
                childTree = OID(git_tree_entry_id(existing))
            }
            let newChild = try replace(in: childTree, components.dropFirst(), with: replacement, isRoot: false)
            newEntry = newChild.map { ($0, GIT_FILEMODE_TREE.rawValue) }
        }
        if let (id, mode) = newEntry {
            var raw = id.raw
            try check(git_treebuilder_insert(nil, builder, name, &raw, git_filemode_t(mode)), "git_treebuilder_insert")
        } else if git_treebuilder_get(builder, name) != nil {
            try check(git_treebuilder_remove(builder, name), "git_treebuilder_remove")
        }
        if git_treebuilder_entrycount(builder) == 0 && !isRoot { return nil }
        var out = git_oid()
        try check(git_treebuilder_write(&out, builder), "git_treebuilder_write")
        return OID(out)
    }

    /// The id of the empty tree, written if needed.
    public func emptyTree() throws -> OID {
        var builder: OpaquePointer?
        try check(git_treebuilder_new(&builder, handle, nil), "git_treebuilder_new")
        defer { git_treebuilder_free(builder) }
        var out = git_oid()
        try check(git_treebuilder_write(&out, builder), "git_treebuilder_write")
        return OID(out)
    }

    /// Writes a commit object without moving any reference. With `sign`,
    /// the commit's text is handed to it and the armored signature it returns
    /// is stored in the commit's `gpgsig` header (SSH or GPG signatures alike).
    public func createCommit(tree: OID, parents: [OID], message: String, author: Signature, committer: Signature,
                             sign: ((_ content: [UInt8]) throws -> String)? = nil) throws -> OID {
        let authorSig = try makeSignature(author)
        defer { git_signature_free(authorSig) }
        let committerSig = try makeSignature(committer)
        defer { git_signature_free(committerSig) }
        return try withTree(tree) { treePointer in
            var parentPointers: [OpaquePointer?] = []
            defer { parentPointers.forEach { git_commit_free($0) } }
            for parent in parents {
                var raw = parent.raw
                var p: OpaquePointer?
                try check(git_commit_lookup(&p, handle, &raw), "git_commit_lookup")
                parentPointers.append(p)
            }
            var out = git_oid()
            guard let sign else {
                try parentPointers.withUnsafeMutableBufferPointer { buffer in
                    try check(
                        git_commit_create(&out, handle, nil, authorSig, committerSig, "UTF-8", message, treePointer, buffer.count, buffer.baseAddress),
                        "git_commit_create")
                }
                return OID(out)
            }
            var content = git_buf()
            defer { git_buf_dispose(&content) }
            try parentPointers.withUnsafeMutableBufferPointer { buffer in
                try check(
                    git_commit_create_buffer(&content, handle, authorSig, committerSig, "UTF-8", message, treePointer, buffer.count, buffer.baseAddress),
                    "git_commit_create_buffer")
            }
            let text = content.ptr.map { Array(UnsafeRawBufferPointer(start: $0, count: content.size)) } ?? []
            let signature = try sign(text)
            let contentString = String(decoding: text, as: UTF8.self)
            try check(git_commit_create_with_signature(&out, handle, contentString, signature, nil), "git_commit_create_with_signature")
            return OID(out)
        }
    }

    /// The signature stored in a commit (its `gpgsig` header) and the bytes it
    /// signs; nil for an unsigned commit.
    public func commitSignature(_ id: OID) throws -> (signature: String, signedData: [UInt8])? {
        var raw = id.raw
        var signature = git_buf()
        var data = git_buf()
        defer { git_buf_dispose(&signature); git_buf_dispose(&data) }
        let rc = git_commit_extract_signature(&signature, &data, handle, &raw, nil)
        if rc == GIT_ENOTFOUND.rawValue { return nil }
        try check(rc, "git_commit_extract_signature")
        let text = signature.ptr.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: signature.size), as: UTF8.self) } ?? ""
        let bytes = data.ptr.map { Array(UnsafeRawBufferPointer(start: $0, count: data.size)) } ?? []
        return (text, bytes)
    }

    func makeSignature(_ s: Signature) throws -> UnsafeMutablePointer<git_signature>? {
        var sig: UnsafeMutablePointer<git_signature>?
        try check(git_signature_new(&sig, s.name, s.email, s.time, s.offsetMinutes), "git_signature_new")
        return sig
    }

    /// Moves a branch with compare-and-swap: succeeds only when the reference
    /// still points at `expected` (or does not exist yet, when `expected` is
    /// nil). A lost race throws `GitError` with code `.modified` or `.locked`.
    public func updateReference(_ name: String, to new: OID, expecting expected: OID?, logMessage: String) throws {
        func attempt() throws {
            var target = new.raw
            var ref: OpaquePointer?
            if var current = expected?.raw {
                try check(git_reference_create_matching(&ref, handle, name, &target, 1, &current, logMessage), "git_reference_create_matching")
            } else {
                try check(git_reference_create(&ref, handle, name, &target, 0, logMessage), "git_reference_create")
            }
            git_reference_free(ref)
        }
        do {
            try attempt()
        } catch let error as GitError where error.code == .locked {
            guard removeStaleLock(of: name) else { throw error }
            try attempt()
        }
    }

    /// A lock file older than this is left over: a live update holds a ref's lock for milliseconds.
    public static let staleLockSeconds = 10

    /// A writer killed between taking a ref's lock and renaming it (kill -9,
    /// a crash) leaves `NAME.lock` behind, and every later update of the ref
    /// fails as locked; git itself would ask a human to delete it. A lock
    /// older than `staleLockSeconds` is removed (true: removed).
    func removeStaleLock(of name: String) -> Bool {
        let path = gitDirectory + (gitDirectory.hasSuffix("/") ? "" : "/") + name + ".lock"
        var info = stat()
        guard !name.contains(".."), stat(path, &info) == 0 else { return false }
        guard time(nil) - info.st_mtim.tv_sec > Self.staleLockSeconds else { return false }
        return unlink(path) == 0
    }
}
