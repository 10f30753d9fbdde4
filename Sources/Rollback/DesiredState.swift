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
    /// App directories must also be within `limits` (lowered by the
    /// commit's own rewind.yaml `limits`).
    public static func load(_ repo: DeployRepository, commit: OID, limits: AppLimits = AppLimits()) throws -> DesiredState {
        let tree = try gitStep("reading commit \(commit.short)") { try repo.git.commit(commit).tree }
        return try load(repo, tree: tree, commit: commit, what: "commit \(commit.short)", limits: limits)
    }

    /// Checks that a root tree is a valid desired state, without keeping the
    /// parsed apps. App directories already known to be valid (their tree id
    /// at that path was validated before) are not parsed again.
    public static func check(_ repo: DeployRepository, tree: OID, commit: OID, what: String, limits: AppLimits) throws {
        var known: Set<ValidAppTrees.Key>? = ValidAppTrees.load(gitDirectory: repo.git.gitDirectory)
        let before = known?.count ?? 0
        _ = try load(repo, tree: tree, commit: commit, what: what, limits: limits, knownValid: &known)
        if let known, known.count != before { ValidAppTrees.save(known, gitDirectory: repo.git.gitDirectory) }
    }

    /// Loads and validates the desired state a root tree describes; `what`
    /// names it in errors. Apps in `knownValid` are skipped (and left out of
    /// `apps`); apps found valid are added to it.
    public static func load(_ repo: DeployRepository, tree: OID, commit: OID, what: String, limits: AppLimits) throws -> DesiredState {
        var none: Set<ValidAppTrees.Key>? = nil
        return try load(repo, tree: tree, commit: commit, what: what, limits: limits, knownValid: &none)
    }

    private static func load(_ repo: DeployRepository, tree: OID, commit: OID, what: String, limits requested: AppLimits,
                             knownValid: inout Set<ValidAppTrees.Key>?) throws -> DesiredState {
        var diagnostics: [Diagnostic] = []
        let parsed: RepoConfig.Parsed?
        do {
            parsed = try repo.parsedConfig(tree: tree)
        } catch let error as RewindError where error.code == .invalidState {
            throw RewindError(.invalidState, "\(what) is not a valid desired state", hint: error.hint, diagnostics: error.diagnostics)
        }
        guard let (parsedConfig, configDiagnostics) = parsed else {
            throw RewindError(.invalidState, "\(what) is not a valid desired state", hint: "add a rewind.yaml at the repository root (see deploy-repo-template/)",
                              diagnostics: [Diagnostic(.error, file: RepoConfig.fileName, message: "file is missing")])
        }
        diagnostics += configDiagnostics
        var apps: [LoadedApp] = []
        var pins = PinSet()
        if let config = parsedConfig {
            let limits = requested.lowered(by: config)
            for app in config.apps {
                var key: ValidAppTrees.Key?
                if knownValid != nil, let appTree = try repo.appTree(app, in: tree) {
                    key = ValidAppTrees.Key(tree: appTree, path: app.path + "\u{0}" + limits.cacheKey)
                    if let key, knownValid?.contains(key) == true { continue }
                }
                let (loaded, found) = try loadApp(repo, app: app, rootTree: tree, limits: limits)
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
                for name in pins.pins.keys.sorted() {
                    if let problem = try pinProblem(repo, name: name, pins: pins, config: config) { diagnostics.append(problem) }
                }
            }
        }
        let errors = diagnostics.filter { $0.severity == .error }
        guard errors.isEmpty, let config = parsedConfig else {
            throw RewindError(.invalidState, "\(what) is not a valid desired state (\(errors.count) error\(errors.count == 1 ? "" : "s"))",
                              hint: "fix these files in a new commit, or undo the commit that broke them with `rewind revert REV` (`rewind revert HEAD` for the tip); the last valid state stays deployed",
                              diagnostics: diagnostics)
        }
        return DesiredState(commit: commit, config: config, apps: apps, pins: pins, warnings: diagnostics)
    }

    /// A pin must name a known app, and hold it at that app's directory as
    /// it was at the pin's target commit: a hand-edited tree that does not
    /// exist, or another app's tree, would leave the app undeployable.
    private static func pinProblem(_ repo: DeployRepository, name: String, pins: PinSet, config: RepoConfig) throws -> Diagnostic? {
        guard let pin = pins.pins[name] else { return nil }
        let line = pins.lines[name]
        func problem(_ field: String, _ message: String, _ hint: String) -> Diagnostic {
            Diagnostic(.error, file: PinSet.fileName, line: line, field: "pins.\(name)\(field)", message: message, hint: hint)
        }
        let repin = "run `rewind pin \(name) --to REV` to write a correct hold, or `rewind unpin \(name)`"
        guard let app = config.app(named: name) else {
            return problem("", "pins an unknown app", "remove the entry or add the app to rewind.yaml")
        }
        guard let target = OID(hex: pin.target), let commit = try? repo.git.commit(target) else {
            return problem(".target", "commit \(pin.target) does not exist in this repository", repin)
        }
        guard let tree = OID(hex: pin.tree), (try? repo.git.listTree(tree)) != nil else {
            return problem(".tree", "tree \(pin.tree) does not exist in this repository", repin)
        }
        let atTarget = try repo.appTree(app, in: commit.tree)
        guard atTarget == tree else {
            let actual = atTarget.map { "its directory there is tree \($0.hex)" } ?? "\(app.path) does not exist there"
            return problem(".tree", "tree \(pin.tree) is not \(name)'s directory at the pinned commit \(target.short): \(actual)", repin)
        }
        return nil
    }

    private static func loadApp(_ repo: DeployRepository, app: AppRef, rootTree: OID, limits: AppLimits) throws -> (LoadedApp?, [Diagnostic]) {
        let file = "\(app.path)/\(AppSpec.fileName)"
        let entry = try gitStep("reading \(app.path)") { try repo.git.entry(in: rootTree, path: app.path) }
        guard let entry else {
            return (nil, [Diagnostic(.error, file: RepoConfig.fileName, field: "apps.\(app.name).path", message: "directory '\(app.path)' does not exist at this commit", hint: "create it with an app.yaml, or fix the path")])
        }
        guard entry.kind == .tree else {
            let what = entry.kind == .symlink ? "a symbolic link" : "not a directory"
            return (nil, [Diagnostic(.error, file: app.path, field: "apps.\(app.name).path", message: "'\(app.path)' is \(what)", hint: "an app must be a real directory in the repository")])
        }
        var diagnostics = try AppTreeCheck.problems(repo.git, tree: entry.id, directory: app.path, limits: limits)
        let specEntry = try gitStep("reading \(file)") { try repo.git.entry(in: entry.id, path: AppSpec.fileName) }
        if let specEntry, specEntry.kind == .symlink {
            diagnostics.append(Diagnostic(.error, file: file, message: "file is a symbolic link", hint: "app.yaml must be a regular file in the app directory; replace the link with the file itself"))
            return (nil, diagnostics)
        }
        guard let specEntry, specEntry.kind == .blob else {
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
