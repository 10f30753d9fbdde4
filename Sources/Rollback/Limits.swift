import DeployModel
import GitKit

/// Bounds on what an app directory may hold, so that a hostile or mistaken
/// commit is refused instead of exhausting memory or disk when Rewind reads
/// or materialises it.
public struct AppLimits: Sendable {
    /// The largest file (blob) in an app directory, in bytes.
    public var maxBlobBytes = 10 << 20
    /// The most files (blobs and symlinks) in one app directory, subdirectories included.
    public var maxFiles = 10_000

    public init() {}

    /// Throws `.invalidState` naming the first file over the limits. App
    /// trees in `passed` are not walked again; trees that pass are added to it.
    public func check(_ desired: DesiredState, in repo: DeployRepository, passed: inout Set<OID>) throws {
        for app in desired.apps where !passed.contains(app.treeID) {
            if let problem = try firstProblem(app, in: repo) {
                throw RewindError(.invalidState, "an app directory is over Rewind's limits", hint: "fix the commit, or raise the limits", diagnostics: [problem])
            }
            passed.insert(app.treeID)
        }
    }

    private func firstProblem(_ app: LoadedApp, in repo: DeployRepository) throws -> Diagnostic? {
        var files = 0
        var pending: [(path: String, tree: OID)] = [(app.ref.path, app.treeID)]
        while let (path, tree) = pending.popLast() {
            for entry in try gitStep("listing \(path)", { try repo.git.listTree(tree) }) {
                let entryPath = "\(path)/\(entry.name)"
                switch entry.kind {
                case .tree:
                    pending.append((entryPath, entry.id))
                case .blob, .symlink:
                    files += 1
                    guard files <= maxFiles else {
                        return Diagnostic(.error, file: app.ref.path, message: "more than \(maxFiles) files in the app directory",
                                          hint: "keep large or numerous files out of the deployment repository (an artifact holds them), or raise --max-app-files")
                    }
                    let size = try gitStep("reading \(entryPath)") { try repo.git.blobSize(entry.id) }
                    guard size <= maxBlobBytes else {
                        return Diagnostic(.error, file: entryPath, message: "file is \(size) bytes, over the limit of \(maxBlobBytes)",
                                          hint: "put it in an artifact instead, or raise --max-blob-size")
                    }
                case .submodule:
                    continue
                }
            }
        }
        return nil
    }
}
