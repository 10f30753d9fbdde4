import DeployModel
import GitKit

#if canImport(Glibc)
import Glibc
#endif

/// Creates a new deployment repository from a set of files.
public enum NewRepository {
    /// A file to put in the first commit.
    public struct File: Sendable {
        public let path: String
        public let executable: Bool
        public let text: String

        /// Creates a file entry.
        public init(path: String, executable: Bool, text: String) {
            self.path = path
            self.executable = executable
            self.text = text
        }
    }

    /// Creates a repository at `directory` (which must be absent or empty)
    /// with one commit holding `files` on branch `main`, checked out unless bare.
    public static func create(at directory: String, files: [File], bare: Bool, message: String) throws -> OID {
        if let entries = directoryEntries(directory), !entries.isEmpty {
            throw RewindError(.refused, "\(directory) is not empty", hint: "choose a new or empty directory")
        }
        let git = try gitStep("creating the repository") { try Repository.create(at: directory, bare: bare, initialBranch: "main") }
        return try gitStep("writing the first commit") {
            var tree = try git.emptyTree()
            for file in files {
                let blob = try git.writeBlob(Array(file.text.utf8))
                let entry = TreeEntry(name: file.path, id: blob, kind: .blob, mode: file.executable ? 0o100755 : 0o100644)
                tree = try git.replacingEntry(in: tree, path: file.path, with: entry)
            }
            let now = Int64(time(nil))
            let signature = git.defaultSignature(now: now)
            let commit = try git.createCommit(tree: tree, parents: [], message: message, author: signature, committer: signature)
            try git.updateReference("refs/heads/main", to: commit, expecting: nil, logMessage: "rewind init")
            if !bare { try git.checkout(tree: tree, from: try git.emptyTree()) }
            return commit
        }
    }

    /// Names in a directory other than . and ..; nil when it does not exist.
    static func directoryEntries(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
