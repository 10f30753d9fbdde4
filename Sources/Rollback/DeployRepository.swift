import DeployModel
import GitKit

/// A deployment repository: a git repository plus the branch Rewind follows.
public final class DeployRepository {
    public let git: Repository
    /// rewind.yaml's parses by the id of its blob, each parsed once: HEAD's
    /// is read when the repository opens, and again by every plan that
    /// checks the new state.
    private var configs: [OID: RepoConfig.Parsed] = [:]
    /// The full name of the followed branch, e.g. `refs/heads/main`.
    public let branchRef: String

    /// Opens the repository at `path`. The branch is `branch` when given, else
    /// the `branch:` of the `rewind.yaml` found at HEAD, else HEAD's branch.
    public init(path: String, branch: String? = nil) throws {
        let git: Repository
        do {
            git = try Repository.open(path)
        } catch {
            throw RewindError(.notFound, "no git repository at \(path)", hint: "pass --repo with the path of a deployment repository, or create one with `rewind init DIR`", cause: error)
        }
        self.git = git
        // Releases, rollback targets and ancestry need the whole history; a
        // shallow clone ends in commits whose parents are missing.
        if git.isShallow {
            throw RewindError(.notFound, "the repository at \(path) is a shallow clone: Rewind needs the whole history of the branch",
                              hint: "run `git fetch --unshallow` in it (in CI, clone with full depth, e.g. fetch-depth: 0)")
        }
        if let branch {
            branchRef = branch.hasPrefix("refs/") ? branch : "refs/heads/\(branch)"
            return
        }
        let head = try gitStep("reading HEAD") { try git.headReferenceName() }
        var found: RepoConfig?
        if let headCommit = try? git.resolveCommit("HEAD"), let tree = try? git.commit(headCommit).tree,
           let entry = try? git.entry(in: tree, path: RepoConfig.fileName), entry.kind == .blob,
           let text = try? Self.readText(git, tree: tree, path: RepoConfig.fileName),
           case let parsed = RepoConfig.parse(text), let config = parsed.config {
            found = config
            configs[entry.id] = parsed
        }
        if let found {
            branchRef = "refs/heads/\(found.branch)"
        } else if let head {
            branchRef = head
        } else {
            branchRef = "refs/heads/main"
        }
    }

    /// Signs the commits Rewind writes here; nil: they are not signed.
    public lazy var signer: SSHCommitSigner? = SSHCommitSigner.configured(for: git)

    /// The short branch name, e.g. `main`.
    public var branchName: String { shortBranchName(branchRef) }

    /// The commit at the tip of the branch.
    public func tip() throws -> OID {
        guard let tip = try gitStep("reading \(branchRef)", { try git.referenceTarget(branchRef) }) else {
            let branches = ((try? git.references(matching: "refs/heads/*")) ?? []).map { shortBranchName($0.name) }.sorted()
            if branches.isEmpty {
                throw RewindError(.notFound, "branch \(branchName) has no commits", hint: "commit a rewind.yaml to it first, or pass --branch")
            }
            let listed = branches.prefix(20).joined(separator: ", ") + (branches.count > 20 ? ", … (\(branches.count) in all)" : "")
            throw RewindError(.notFound, "branch \(branchName) does not exist", hint: "pass --branch with one of: \(listed)")
        }
        return tip
    }

    /// Resolves a user-given revision to a commit, with a helpful error.
    public func resolve(_ revision: String) throws -> OID {
        do {
            return try git.resolveCommit(revision)
        } catch {
            throw RewindError(.notFound, "unknown revision '\(revision)'", hint: "give a commit id, a branch, or an expression such as \(branchName)~2", cause: error)
        }
    }

    /// The text of a file in a tree; nil when absent.
    public func text(tree: OID, path: String) throws -> String? {
        try gitStep("reading \(path)") { try Self.readText(git, tree: tree, path: path) }
    }

    /// The largest configuration file (rewind.yaml, the pins) Rewind reads.
    public static let maxConfigBytes = 1 << 20

    static func readText(_ git: Repository, tree: OID, path: String) throws -> String? {
        guard let entry = try git.entry(in: tree, path: path), entry.kind == .blob else { return nil }
        let size = try git.blobSize(entry.id)
        guard size <= maxConfigBytes else {
            throw RewindError(.invalidState, "\(path) is \(size) bytes, over the limit of \(maxConfigBytes)",
                              hint: "keep \(path) small", diagnostics: [Diagnostic(.error, file: path, message: "file is \(size) bytes, over the limit of \(maxConfigBytes)")])
        }
        return String(decoding: try git.blob(entry.id), as: UTF8.self)
    }

    /// The `rewind.yaml` at a commit's tree.
    public func config(tree: OID) throws -> RepoConfig {
        guard let (config, diagnostics) = try parsedConfig(tree: tree) else {
            throw RewindError(.invalidState, "no \(RepoConfig.fileName) at the repository root", hint: "create one; see deploy-repo-template/rewind.yaml")
        }
        guard let config else {
            throw RewindError(.invalidState, "\(RepoConfig.fileName) is invalid", hint: Self.repairHint, diagnostics: diagnostics.filter { $0.severity == .error })
        }
        return config
    }

    /// The rewind.yaml of a root tree, parsed (once per blob), with what the
    /// parse found; nil when the tree has no such file.
    public func parsedConfig(tree: OID) throws -> RepoConfig.Parsed? {
        let entry = try gitStep("reading \(RepoConfig.fileName)") { try git.entry(in: tree, path: RepoConfig.fileName) }
        guard let entry, entry.kind == .blob else { return nil }
        if let known = configs[entry.id] { return known }
        guard let text = try text(tree: tree, path: RepoConfig.fileName) else { return nil }
        let parsed = RepoConfig.parse(text)
        configs[entry.id] = parsed
        return parsed
    }

    /// The pins recorded in a tree (none when the file is absent).
    public func pins(tree: OID) throws -> PinSet {
        guard let text = try text(tree: tree, path: PinSet.fileName) else { return PinSet() }
        let (pins, diagnostics) = PinSet.parse(text)
        guard let pins else {
            throw RewindError(.invalidState, "\(PinSet.fileName) is invalid", hint: "fix it by hand or restore it with git", diagnostics: diagnostics.filter { $0.severity == .error })
        }
        return pins
    }

    /// What to do about a broken desired state.
    public static let repairHint = "fix the errors above, then run `rewind validate`; if the tip's commit broke it, `rewind revert HEAD` repairs the branch"

    /// The newest valid rewind.yaml on the first-parent line from `commit`
    /// (itself first), with the commit it is from; nil when none of the
    /// 1,000 newest is valid. A broken tip must not stop the commands that
    /// list or repair it: they take the apps from here.
    public func newestValidConfig(from commit: OID) -> (config: RepoConfig, commit: OID)? {
        var next: OID? = commit
        for _ in 0..<1_000 {
            guard let id = next, let current = try? git.commit(id) else { return nil }
            if let config = try? config(tree: current.tree) { return (config, id) }
            next = current.parents.first
        }
        return nil
    }

    /// The apps to list at `tip`: its rewind.yaml, or, when that is broken,
    /// the newest valid one, with a warning that names the broken file and
    /// says how to repair it.
    public func configForListing(at tip: OID, naming what: String = "the tip ") throws -> (config: RepoConfig, warning: String?) {
        do {
            return (try config(tree: try gitStep("reading the tip") { try git.commit(tip).tree }), nil)
        } catch let error as RewindError where error.code == .invalidState {
            guard let fallback = newestValidConfig(from: tip) else { throw error }
            let problem = error.diagnostics.first.map { "\($0)" } ?? error.message
            return (fallback.config, "warning: \(RepoConfig.fileName) at \(what)\(tip.short) is invalid (\(problem)); "
                + "listing the apps of \(fallback.commit.short), the newest commit whose \(RepoConfig.fileName) is valid. "
                + "`rewind revert HEAD` repairs the branch if the tip broke it")
        }
    }

    /// The git tree id of an app's directory in a tree; nil when absent.
    public func appTree(_ app: AppRef, in tree: OID) throws -> OID? {
        try gitStep("reading \(app.path)") {
            guard let entry = try git.entry(in: tree, path: app.path), entry.kind == .tree else { return nil }
            return entry.id
        }
    }

    /// The parsed `app.yaml` of an app directory tree; nil when absent or invalid.
    public func appSpec(appTree: OID?, app: AppRef) -> AppSpec? {
        guard let appTree, let text = try? Self.readText(git, tree: appTree, path: AppSpec.fileName) else { return nil }
        return AppSpec.parse(text, file: "\(app.path)/\(AppSpec.fileName)").spec
    }
}

/// The short name of a branch: `refs/heads/main` → `main`; any other
/// reference name is returned as it is.
public func shortBranchName(_ reference: String) -> String {
    reference.hasPrefix("refs/heads/") ? String(reference.dropFirst("refs/heads/".count)) : reference
}
