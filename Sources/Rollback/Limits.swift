import DeployModel
import GitKit

/// Bounds on what an app directory may hold, so that a hostile or mistaken
/// commit is refused instead of exhausting memory or disk when Rewind reads
/// or materialises it. The reconciler, `validate` and every command that
/// writes a commit check the same bounds, so that nothing Rewind writes is
/// refused by Rewind.
public struct AppLimits: Sendable, Equatable {
    /// The largest file (blob) in an app directory, in bytes.
    public var maxBlobBytes = 10 << 20
    /// The most files (blobs and symlinks) in one app directory, subdirectories included.
    public var maxFiles = 10_000

    public init() {}

    /// These limits, lowered to rewind.yaml's `limits` where it sets them
    /// lower (a commit can tighten the bounds, never loosen them).
    public func lowered(by config: RepoConfig) -> AppLimits {
        var result = self
        if let bytes = config.limits.maxFileBytes { result.maxBlobBytes = min(result.maxBlobBytes, bytes) }
        if let files = config.limits.maxAppFiles { result.maxFiles = min(result.maxFiles, files) }
        return result
    }

    /// Identifies these limits in the cache of valid app trees.
    var cacheKey: String { "\(maxBlobBytes)/\(maxFiles)" }
}

/// One walk over an app directory: symbolic links must stay inside it (as
/// deployed, the app's files are all there is: a link out of the app
/// directory reaches whatever lies beside the deployed copy), and the
/// directory must be within the limits.
enum AppTreeCheck {
    static func problems(_ git: Repository, tree: OID, directory: String, limits: AppLimits) throws -> [Diagnostic] {
        var found: [Diagnostic] = []
        var links: [String: String] = [:]
        var files = 0
        var pending: [(OID, String)] = [(tree, "")]
        while let (current, relative) = pending.popLast() {
            for entry in try gitStep("listing \(directory)/\(relative)", { try git.listTree(current) }) {
                let child = relative.isEmpty ? entry.name : "\(relative)/\(entry.name)"
                switch entry.kind {
                case .tree:
                    pending.append((entry.id, child))
                case .blob, .symlink:
                    files += 1
                    guard files <= limits.maxFiles else {
                        found.append(Diagnostic(.error, file: directory, message: "more than \(limits.maxFiles) files in the app directory",
                                                hint: "keep large or numerous files out of the deployment repository (an artifact holds them), or raise the limit"))
                        return found
                    }
                    let size = try gitStep("reading \(directory)/\(child)") { try git.blobSize(entry.id) }
                    guard size <= limits.maxBlobBytes else {
                        found.append(Diagnostic(.error, file: "\(directory)/\(child)", message: "file is \(size) bytes, over the limit of \(limits.maxBlobBytes)",
                                                hint: "put it in an artifact instead, or raise the limit"))
                        return found
                    }
                    if entry.kind == .symlink {
                        links[child] = String(decoding: try gitStep("reading \(directory)/\(child)") { try git.blob(entry.id) }, as: UTF8.self)
                    }
                case .submodule:
                    continue
                }
            }
        }
        for (path, target) in links.sorted(by: { $0.key < $1.key }) where leavesApp(link: path, links: links) {
            found.append(Diagnostic(.error, file: "\(directory)/\(path)", message: "symbolic link to '\(target)' leaves the app directory",
                                    hint: "replace the link with the file itself, or point it inside \(directory)"))
        }
        return found
    }

    /// Resolves the link at `link` (relative to the app directory) the way
    /// the kernel would in the deployed copy, following the app's other
    /// links; true when it reaches outside the app directory, is absolute,
    /// or loops.
    static func leavesApp(link: String, links: [String: String]) -> Bool {
        guard let target = links[link] else { return false }
        var resolved = link.split(separator: "/").dropLast().map(String.init)
        var queue = target.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        if target.hasPrefix("/") { return true }
        var hops = 0
        while !queue.isEmpty {
            let part = queue.removeFirst()
            if part == "." { continue }
            if part == ".." {
                guard !resolved.isEmpty else { return true }
                resolved.removeLast()
                continue
            }
            resolved.append(part)
            if let next = links[resolved.joined(separator: "/")] {
                hops += 1
                if hops > 40 || next.hasPrefix("/") { return true }
                resolved.removeLast()
                queue = next.split(separator: "/", omittingEmptySubsequences: true).map(String.init) + queue
            }
        }
        return false
    }
}
