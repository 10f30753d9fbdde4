import DeployModel
import GitKit

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

    /// Loads and validates the desired state a root tree describes; `what`
    /// names it in errors.
    static func load(_ repo: DeployRepository, tree: OID, commit: OID, what: String) throws -> DesiredState {
        var diagnostics: [Diagnostic] = []
        guard let configText = try repo.text(tree: tree, path: RepoConfig.fileName) else {
            throw RewindError(.invalidState, "\(what) is not a valid desired state", hint: "add a rewind.yaml at the repository root (see deploy-repo-template/)",
                              diagnostics: [Diagnostic(.error, file: RepoConfig.fileName, message: "file is missing")])
        }
        let (parsedConfig, configDiagnostics) = RepoConfig.parse(configText)
        diagnostics += configDiagnostics
        var apps: [LoadedApp] = []
        var pins = PinSet()
        if let config = parsedConfig {
            for app in config.apps {
                let (loaded, found) = try loadApp(repo, app: app, rootTree: tree)
                diagnostics += found
                if let loaded { apps.append(loaded) }
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
