import CLibGit2

extension Repository {
    /// From now on, new objects (blobs, trees, commits) are kept in memory,
    /// readable as usual, until `persistStagedObjects()` writes them to disk
    /// as one pack. Objects of work that is abandoned are never written.
    public func stageObjectsInMemory() throws {
        guard stagingBackend == nil else { return }
        var backend: UnsafeMutablePointer<git_odb_backend>?
        try check(git_mempack_new(&backend), "git_mempack_new")
        var odb: OpaquePointer?
        try check(git_repository_odb(&odb, handle), "git_repository_odb")
        defer { git_odb_free(odb) }
        let rc = git_odb_add_backend(odb, backend, 999)
        if rc < 0 {
            backend?.pointee.free?(backend)
            try check(rc, "git_odb_add_backend")
        }
        stagingBackend = backend
    }

    /// Drops every staged object.
    public func discardStagedObjects() {
        if let stagingBackend { _ = git_mempack_reset(stagingBackend) }
    }

    /// Writes every staged object to the object database as one pack, then
    /// empties the stage.
    public func persistStagedObjects() throws {
        guard let stagingBackend else { return }
        var buffer = git_buf()
        try check(git_mempack_dump(&buffer, handle, stagingBackend), "git_mempack_dump")
        defer { git_buf_dispose(&buffer) }
        var odb: OpaquePointer?
        try check(git_repository_odb(&odb, handle), "git_repository_odb")
        defer { git_odb_free(odb) }
        var writer: UnsafeMutablePointer<git_odb_writepack>?
        try check(git_odb_write_pack(&writer, odb, nil, nil), "git_odb_write_pack")
        guard let writer else { throw GitError(code: .other(-1), function: "git_odb_write_pack", message: "no pack writer") }
        defer { writer.pointee.free?(writer) }
        var stats = git_indexer_progress()
        if let append = writer.pointee.append {
            try check(append(writer, buffer.ptr, buffer.size, &stats), "git_odb_writepack.append")
        }
        if let commit = writer.pointee.commit {
            try check(commit(writer, &stats), "git_odb_writepack.commit")
        }
        _ = git_mempack_reset(stagingBackend)
    }
}
