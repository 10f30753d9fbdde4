import DeployModel
import GitKit
import ReconcilerStatus
import Rollback

/// The tip's desired state as a pass needs it: the config, the pins and each
/// app's tree id, with app.yaml parsed only for the apps a pass acts on.
///
/// A tip seen for the first time is validated as a whole (`validated`); a
/// tip this state directory already validated and applied is opened
/// without parsing every app.yaml again (`trusted`), so that a pass with
/// nothing to do costs tree lookups, not YAML parsing.
final class DesiredView {
    let commit: OID
    let config: RepoConfig
    let pins: PinSet
    /// Each app's tree id at the commit.
    let trees: [String: OID]
    private let repo: DeployRepository
    private var specs: [String: AppSpec]
    /// Other trees' app.yaml (pins, older releases), by tree id.
    private var treeSpecs: [String: AppSpec?] = [:]

    /// From a state validated as a whole.
    /// `host`: only the apps placed on it (`hosts:` and `placement`).
    init(validated state: DesiredState, repo: DeployRepository, host: String? = nil) {
        commit = state.commit
        config = state.config.placed(on: host)
        pins = state.pins
        trees = Dictionary(state.apps.map { ($0.ref.name, $0.treeID) }, uniquingKeysWith: { a, _ in a })
        specs = Dictionary(state.apps.map { ($0.ref.name, $0.spec) }, uniquingKeysWith: { a, _ in a })
        self.repo = repo
    }

    /// From a commit validated before: reads the config, pins and trees only.
    init(trusted commit: OID, repo: DeployRepository, host: String? = nil) throws {
        let tree = try repo.git.commit(commit).tree
        self.commit = commit
        config = try repo.config(tree: tree).placed(on: host)
        pins = try repo.pins(tree: tree)
        var trees: [String: OID] = [:]
        for app in config.apps {
            if let appTree = try repo.appTree(app, in: tree) { trees[app.name] = appTree }
        }
        self.trees = trees
        specs = [:]
        self.repo = repo
    }

    /// The app's parsed app.yaml at this commit (parsed on first use).
    func spec(_ app: AppRef) -> AppSpec? {
        if let known = specs[app.name] { return known }
        let spec = repo.appSpec(appTree: trees[app.name], app: app)
        specs[app.name] = spec
        return spec
    }

    /// The app.yaml of one of the app's trees (the tip's, or a pin's); the
    /// same tree always gives the same answer.
    func spec(_ app: AppRef, tree: OID) -> AppSpec? {
        if tree == trees[app.name] { return spec(app) }
        if let known = treeSpecs[tree.hex] { return known }
        let spec = repo.appSpec(appTree: tree, app: app)
        treeSpecs[tree.hex] = spec
        return spec
    }

    func contains(_ name: String) -> Bool { config.app(named: name) != nil }

    /// The version the app's app.yaml in `tree` names (nil: no such app,
    /// or no valid app.yaml there): what a failure of that tree is called.
    func version(of name: String, tree: OID) -> String? { config.app(named: name).flatMap { spec($0, tree: tree) }?.version }
}
