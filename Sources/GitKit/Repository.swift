import CLibGit2

/// An open git repository. Owns its libgit2 handle; not thread-safe, so keep
/// one per task or actor.
public final class Repository {
    let handle: OpaquePointer
    /// The in-memory object store new objects go to while staging (owned by the odb).
    var stagingBackend: UnsafeMutablePointer<git_odb_backend>?

    private init(handle: OpaquePointer) { self.handle = handle }

    deinit { git_repository_free(handle) }

    /// Opens the repository at `path` (a working tree, a subdirectory of one,
    /// or a bare repository).
    public static func open(_ path: String) throws -> Repository {
        GitRuntime.bootstrap()
        var out: OpaquePointer?
        try check(git_repository_open_ext(&out, path, 0, nil), "git_repository_open_ext")
        guard let out else { throw GitError(code: .notFound, function: "git_repository_open_ext", message: "no repository at \(path)") }
        return Repository(handle: out)
    }

    /// Creates a new repository whose HEAD names `initialBranch`.
    public static func create(at path: String, bare: Bool, initialBranch: String = "main") throws -> Repository {
        GitRuntime.bootstrap()
        var options = git_repository_init_options()
        try check(git_repository_init_options_init(&options, UInt32(GIT_REPOSITORY_INIT_OPTIONS_VERSION)), "git_repository_init_options_init")
        options.flags = GIT_REPOSITORY_INIT_MKPATH.rawValue | (bare ? GIT_REPOSITORY_INIT_BARE.rawValue : 0)
        var out: OpaquePointer?
        let rc = initialBranch.withCString { branch -> Int32 in
            options.initial_head = branch
            return git_repository_init_ext(&out, path, &options)
        }
        try check(rc, "git_repository_init_ext")
        guard let out else { throw GitError(code: .other(-1), function: "git_repository_init_ext", message: "no repository created at \(path)") }
        return Repository(handle: out)
    }

    /// True for a repository without a working tree.
    public var isBare: Bool { git_repository_is_bare(handle) != 0 }
    /// True for a shallow clone (its history ends in grafted commits).
    public var isShallow: Bool { git_repository_is_shallow(handle) == 1 }

    /// The `.git` directory (or the repository itself when bare), with a trailing slash.
    public var gitDirectory: String { String(cString: git_repository_path(handle)) }
    /// Where the references live, with a trailing slash: `gitDirectory`,
    /// or the main repository's for a linked worktree.
    public var commonDirectory: String { String(cString: git_repository_commondir(handle)) }

    /// The files `references` are kept in when loose (under
    /// `commonDirectory`), and packed-refs, which holds the packed ones:
    /// what to watch for a change of them.
    public func referenceFiles(_ references: [String]) -> [String] {
        let common = commonDirectory
        return references.map { common + $0 } + [common + "packed-refs"]
    }

    /// The working tree, with a trailing slash; nil when bare.
    public var workingDirectory: String? {
        git_repository_workdir(handle).map { String(cString: $0) }
    }

    /// The branch HEAD names (`refs/heads/main`), even before its first commit;
    /// nil when HEAD is detached.
    public func headReferenceName() throws -> String? {
        var ref: OpaquePointer?
        let rc = git_reference_lookup(&ref, handle, "HEAD")
        if rc == GIT_ENOTFOUND.rawValue { return nil }
        try check(rc, "git_reference_lookup")
        defer { git_reference_free(ref) }
        guard git_reference_type(ref) == GIT_REFERENCE_SYMBOLIC, let target = git_reference_symbolic_target(ref) else { return nil }
        return String(cString: target)
    }

    /// The commit a direct reference points at; nil when it does not exist.
    public func referenceTarget(_ name: String) throws -> OID? {
        var oid = git_oid()
        let rc = git_reference_name_to_id(&oid, handle, name)
        if rc == GIT_ENOTFOUND.rawValue { return nil }
        try check(rc, "git_reference_name_to_id")
        return OID(oid)
    }

    /// Resolves a revision (`HEAD~3`, a short id, a branch, `main@{1}`) to a commit.
    public func resolveCommit(_ spec: String) throws -> OID {
        var object: OpaquePointer?
        try check(git_revparse_single(&object, handle, spec), "git_revparse_single")
        defer { git_object_free(object) }
        var commit: OpaquePointer?
        try check(git_object_peel(&commit, object, GIT_OBJECT_COMMIT), "git_object_peel")
        defer { git_object_free(commit) }
        return OID(git_object_id(commit))
    }

    /// True when `commit` descends from `ancestor` (or is it).
    public func isDescendant(_ commit: OID, of ancestor: OID) throws -> Bool {
        if commit == ancestor { return true }
        var a = commit.raw, b = ancestor.raw
        let rc = git_graph_descendant_of(handle, &a, &b)
        try check(rc, "git_graph_descendant_of")
        return rc == 1
    }

    /// The commits in a range such as `A..B` (or a single revision: all of
    /// its history), oldest first, in topological order.
    public func commits(inRange range: String) throws -> [OID] {
        var walk: OpaquePointer?
        try check(git_revwalk_new(&walk, handle), "git_revwalk_new")
        defer { git_revwalk_free(walk) }
        try check(git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL.rawValue | GIT_SORT_REVERSE.rawValue), "git_revwalk_sorting")
        if range.contains("..") {
            try check(git_revwalk_push_range(walk, range), "git_revwalk_push_range")
        } else {
            var oid = try resolveCommit(range).raw
            try check(git_revwalk_push(walk, &oid), "git_revwalk_push")
        }
        var result: [OID] = []
        var oid = git_oid()
        while true {
            let rc = git_revwalk_next(&oid, walk)
            if rc == GIT_ITEROVER.rawValue { break }
            try check(rc, "git_revwalk_next")
            result.append(OID(oid))
        }
        return result
    }

    /// The signature for new commits: `GIT_AUTHOR_NAME`/`GIT_AUTHOR_EMAIL`
    /// when set, else `user.name`/`user.email` from git config, else Rewind's own.
    public func defaultSignature(now: Int64) -> Signature {
        let env = ProcessEnvironment.self
        if let name = env.value("GIT_AUTHOR_NAME"), let email = env.value("GIT_AUTHOR_EMAIL") {
            return Signature(name: name, email: email, time: now)
        }
        var sig: UnsafeMutablePointer<git_signature>?
        if git_signature_default(&sig, handle) == 0, let sig {
            defer { git_signature_free(sig) }
            return Signature(name: String(cString: sig.pointee.name), email: String(cString: sig.pointee.email), time: now)
        }
        return Signature(name: "Rewind", email: "rewind@localhost", time: now)
    }
}

/// Reads the process environment without Foundation.
enum ProcessEnvironment {
    static func value(_ name: String) -> String? {
        guard let raw = getenv(name) else { return nil }
        let value = String(cString: raw)
        return value.isEmpty ? nil : value
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Repository {
    /// A value from the repository's git configuration (with the global and
    /// system files behind it); nil when unset.
    public func configValue(_ name: String) -> String? {
        var config: OpaquePointer?
        guard git_repository_config_snapshot(&config, handle) == 0 else { return nil }
        defer { git_config_free(config) }
        var out: UnsafePointer<CChar>?
        guard git_config_get_string(&out, config, name) == 0, let out else { return nil }
        return String(cString: out)
    }

    /// Sets a value in the repository's own configuration file.
    public func setConfigValue(_ name: String, _ value: String) throws {
        var config: OpaquePointer?
        try check(git_repository_config(&config, handle), "git_repository_config")
        defer { git_config_free(config) }
        try check(git_config_set_string(config, name, value), "git_config_set_string")
    }
}

extension Repository {
    /// The direct references whose names match a glob (`refs/heads/*`), with their targets.
    public func references(matching glob: String) throws -> [(name: String, target: OID)] {
        var iterator: OpaquePointer?
        try check(git_reference_iterator_glob_new(&iterator, handle, glob), "git_reference_iterator_glob_new")
        defer { git_reference_iterator_free(iterator) }
        var result: [(String, OID)] = []
        var ref: OpaquePointer?
        while true {
            let rc = git_reference_next(&ref, iterator)
            if rc == GIT_ITEROVER.rawValue { break }
            try check(rc, "git_reference_next")
            defer { git_reference_free(ref) }
            if let target = git_reference_target(ref), let name = git_reference_name(ref) {
                result.append((String(cString: name), OID(target.pointee)))
            }
        }
        return result
    }

    /// Points HEAD at a branch (which need not exist yet).
    public func setHead(_ reference: String) throws {
        try check(git_repository_set_head(handle, reference), "git_repository_set_head")
    }
}
