import DeployModel
import GitKit
import SystemSupport

/// One app as a commit describes it.
public struct LoadedApp: Sendable {
    public let ref: AppRef
    /// The git tree id of the app's directory: its state id.
    public let treeID: OID
    public let spec: AppSpec
}

/// Everything a commit says should be deployed, validated as a whole.
public struct DesiredState: Sendable {
    public let commit: OID
    public let config: RepoConfig
    public let apps: [LoadedApp]
    public let pins: PinSet
    /// Warnings found while loading (unknown fields and the like).
    public let warnings: [Diagnostic]

    /// The app with this name.
    public func app(_ name: String) -> LoadedApp? { apps.first { $0.ref.name == name } }

    /// Loads and validates the desired state at `commit`. Throws
    /// `RewindError(.invalidState)` with every diagnostic when anything is wrong.
    public static func load(_ repo: DeployRepository, commit: OID) throws -> DesiredState {
        let tree = try gitStep("reading commit \(commit.short)") { try repo.git.commit(commit).tree }
        return try load(repo, tree: tree, commit: commit, what: "commit \(commit.short)")
    }

    /// Checks that a root tree is a valid desired state, without keeping the
    /// parsed apps. App directories already known to be valid (their tree id
    /// at that path was validated before) are not parsed again.
    static func check(_ repo: DeployRepository, tree: OID, commit: OID, what: String) throws {
        var known: Set<ValidAppTrees.Key>? = ValidAppTrees.load(gitDirectory: repo.git.gitDirectory)
        let before = known?.count ?? 0
        _ = try load(repo, tree: tree, commit: commit, what: what, knownValid: &known)
        if let known, known.count != before { ValidAppTrees.save(known, gitDirectory: repo.git.gitDirectory) }
    }

    /// Loads and validates the desired state a root tree describes; `what`
    /// names it in errors. Apps in `knownValid` are skipped (and left out of
    /// `apps`); apps found valid are added to it.
    static func load(_ repo: DeployRepository, tree: OID, commit: OID, what: String) throws -> DesiredState {
        var none: Set<ValidAppTrees.Key>? = nil
        return try load(repo, tree: tree, commit: commit, what: what, knownValid: &none)
    }

    private static func load(_ repo: DeployRepository, tree: OID, commit: OID, what: String, knownValid: inout Set<ValidAppTrees.Key>?) throws -> DesiredState {
        var diagnostics: [Diagnostic] = []
        let configText: String?
        do {
            configText = try repo.text(tree: tree, path: RepoConfig.fileName)
        } catch let error as RewindError where error.code == .invalidState {
            throw RewindError(.invalidState, "\(what) is not a valid desired state", hint: error.hint, diagnostics: error.diagnostics)
        }
        guard let configText else {
            throw RewindError(.invalidState, "\(what) is not a valid desired state", hint: "add a rewind.yaml at the repository root (see deploy-repo-template/)",
                              diagnostics: [Diagnostic(.error, file: RepoConfig.fileName, message: "file is missing")])
        }
        let (parsedConfig, configDiagnostics) = RepoConfig.parse(configText)
        diagnostics += configDiagnostics
        var apps: [LoadedApp] = []
        var pins = PinSet()
        if let config = parsedConfig {
            for app in config.apps {
                var key: ValidAppTrees.Key?
                if knownValid != nil, let appTree = try repo.appTree(app, in: tree) {
                    key = ValidAppTrees.Key(tree: appTree, path: app.path)
                    if let key, knownValid?.contains(key) == true { continue }
                }
                let (loaded, found) = try loadApp(repo, app: app, rootTree: tree)
                diagnostics += found
                if let loaded {
                    apps.append(loaded)
                    if let key, !found.contains(where: { $0.severity == .error }) { knownValid?.insert(key) }
                }
            }
            if let pinsText = try repo.text(tree: tree, path: PinSet.fileName) {
                let (parsedPins, pinDiagnostics) = PinSet.parse(pinsText)
                diagnostics += pinDiagnostics
                pins = parsedPins ?? PinSet()
                for name in pins.pins.keys where config.app(named: name) == nil {
                    diagnostics.append(Diagnostic(.error, file: PinSet.fileName, field: "pins.\(name)", message: "pins an unknown app", hint: "remove the entry or add the app to rewind.yaml"))
                }
            }
        }
        let errors = diagnostics.filter { $0.severity == .error }
        guard errors.isEmpty, let config = parsedConfig else {
            throw RewindError(.invalidState, "\(what) is not a valid desired state (\(errors.count) error\(errors.count == 1 ? "" : "s"))",
                              hint: "fix these files in a new commit; the last valid state stays deployed", diagnostics: diagnostics)
        }
        return DesiredState(commit: commit, config: config, apps: apps, pins: pins, warnings: diagnostics)
    }

    private static func loadApp(_ repo: DeployRepository, app: AppRef, rootTree: OID) throws -> (LoadedApp?, [Diagnostic]) {
        let file = "\(app.path)/\(AppSpec.fileName)"
        let entry = try gitStep("reading \(app.path)") { try repo.git.entry(in: rootTree, path: app.path) }
        guard let entry else {
            return (nil, [Diagnostic(.error, file: RepoConfig.fileName, field: "apps.\(app.name).path", message: "directory '\(app.path)' does not exist at this commit", hint: "create it with an app.yaml, or fix the path")])
        }
        guard entry.kind == .tree else {
            let what = entry.kind == .symlink ? "a symbolic link" : "not a directory"
            return (nil, [Diagnostic(.error, file: app.path, field: "apps.\(app.name).path", message: "'\(app.path)' is \(what)", hint: "an app must be a real directory in the repository")])
        }
        var diagnostics = try SymlinkCheck.escapingLinks(repo.git, tree: entry.id, directory: app.path)
        guard let specEntry = try gitStep("reading \(file)", { try repo.git.entry(in: entry.id, path: AppSpec.fileName) }), specEntry.kind == .blob else {
            diagnostics.append(Diagnostic(.error, file: file, message: "file is missing", hint: "every app directory needs an app.yaml (see deploy-repo-template/)"))
            return (nil, diagnostics)
        }
        let size = try gitStep("reading \(file)") { try repo.git.blobSize(specEntry.id) }
        guard size <= AppSpec.maxBytes else {
            diagnostics.append(Diagnostic(.error, file: file, message: "file is \(size) bytes, over the limit of \(AppSpec.maxBytes)", hint: "keep app.yaml small; put large data in other files"))
            return (nil, diagnostics)
        }
        let text = String(decoding: try gitStep("reading \(file)") { try repo.git.blob(specEntry.id) }, as: UTF8.self)
        let (spec, specDiagnostics) = AppSpec.parse(text, file: file)
        diagnostics += specDiagnostics
        guard let spec else { return (nil, diagnostics) }
        return (LoadedApp(ref: app, treeID: entry.id, spec: spec), diagnostics)
    }
}

/// Finds symbolic links whose target leaves the repository.
enum SymlinkCheck {
    static func escapingLinks(_ git: Repository, tree: OID, directory: String) throws -> [Diagnostic] {
        var found: [Diagnostic] = []
        var pending: [(OID, String)] = [(tree, directory)]
        while let (current, path) = pending.popLast() {
            for entry in try gitStep("listing \(path)", { try git.listTree(current) }) {
                let child = "\(path)/\(entry.name)"
                switch entry.kind {
                case .tree: pending.append((entry.id, child))
                case .symlink:
                    let target = String(decoding: try gitStep("reading \(child)") { try git.blob(entry.id) }, as: UTF8.self)
                    if leavesRepository(target: target, linkDirectory: path) {
                        found.append(Diagnostic(.error, file: child, message: "symbolic link to '\(target)' leaves the repository", hint: "replace the link with the file itself, or point it inside the repository"))
                    }
                default: continue
                }
            }
        }
        return found
    }

    static func leavesRepository(target: String, linkDirectory: String) -> Bool {
        if target.hasPrefix("/") { return true }
        var depth = linkDirectory.split(separator: "/").count
        for part in target.split(separator: "/", omittingEmptySubsequences: true) {
            if part == ".." { depth -= 1 } else if part != "." { depth += 1 }
            if depth < 0 { return true }
        }
        return false
    }
}

/// App directories known to be valid, by tree id and path, kept in
/// `<git dir>/rewind/valid-app-trees`. An app's validity depends only on its
/// tree and where it sits (symbolic links are judged from its path), so the
/// answer never goes stale. Safe to delete.
enum ValidAppTrees {
    struct Key: Hashable {
        let tree: OID
        let pathHash: UInt64

        init(tree: OID, path: String) {
            self.tree = tree
            pathHash = fnv1a(path)
        }

        init(tree: OID, pathHash: UInt64) {
            self.tree = tree
            self.pathHash = pathHash
        }
    }

    static func file(_ gitDirectory: String) -> String { gitDirectory + "rewind/valid-app-trees" }

    static func load(gitDirectory: String) -> Set<Key> {
        guard let bytes = FileIO.read(file(gitDirectory)) else { return [] }
        var keys: Set<Key> = []
        var i = 0
        while i + 28 <= bytes.count {
            var hash: UInt64 = 0
            for k in 0..<8 { hash |= UInt64(bytes[i + 20 + k]) << (8 * k) }
            if let tree = OID(bytes: bytes[i..<(i + 20)]) { keys.insert(Key(tree: tree, pathHash: hash)) }
            i += 28
        }
        return keys
    }

    static func save(_ keys: Set<Key>, gitDirectory: String) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(keys.count * 28)
        for key in keys {
            bytes += key.tree.bytes
            for k in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: key.pathHash >> (8 * k))) }
        }
        FileIO.writeAtomically(file(gitDirectory), bytes)
    }
}
