import CLibGit2

extension Repository {
    /// From now on, new objects (blobs, trees, commits) are kept in memory,
    /// readable as usual, until `persistStagedObjects()` writes them to disk.
    /// Objects of work that is abandoned are never written. This lasts for
    /// the life of the handle: long-lived code stages on a handle of its own.
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

    /// Writes the staged objects reachable from `root` (a commit or tree)
    /// to the object database on disk, children before parents, then empties
    /// the stage. Objects already on disk, and everything below a tree that
    /// is, are skipped, so the cost is proportional to what is new.
    public func persistStagedObjects(reachableFrom root: OID) throws {
        guard let stagingBackend else { return }
        var disk: OpaquePointer?
        try check(git_odb_open(&disk, gitDirectory + "objects"), "git_odb_open")
        defer { git_odb_free(disk) }
        var odb: OpaquePointer?
        try check(git_repository_odb(&odb, handle), "git_repository_odb")
        defer { git_odb_free(odb) }

        var pending = [root]
        var seen: Set<OID> = []
        var missing: [OID] = []
        while let id = pending.popLast() {
            guard seen.insert(id).inserted else { continue }
            var raw = id.raw
            if git_odb_exists(disk, &raw) != 0 { continue }
            missing.append(id)
            var object: OpaquePointer?
            try check(git_odb_read(&object, odb, &raw), "git_odb_read")
            let type = git_odb_object_type(object)
            git_odb_object_free(object)
            if type == GIT_OBJECT_COMMIT {
                pending.append(try commit(id).tree)
            } else if type == GIT_OBJECT_TREE {
                pending += try listTree(id).filter { $0.kind != .submodule }.map(\.id)
            }
        }
        for id in missing.reversed() {
            var raw = id.raw
            var object: OpaquePointer?
            try check(git_odb_read(&object, odb, &raw), "git_odb_read")
            defer { git_odb_object_free(object) }
            var written = git_oid()
            try check(git_odb_write(&written, disk, git_odb_object_data(object), git_odb_object_size(object), git_odb_object_type(object)), "git_odb_write")
        }
        _ = git_mempack_reset(stagingBackend)
    }
}
