import GitKit
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Writes an app's files at one commit into a directory, through libgit2
/// (no checkout of the whole repository). Directories are named by tree id,
/// so a tree is written once and never changes afterwards.
public enum AppFiles {
    /// The directory holding `tree` under `root`, written if needed.
    public static func materialise(_ git: Repository, tree: OID, root: String) throws -> String {
        let target = "\(root)/\(tree.hex)"
        if FileIO.exists(target + "/.rewind-complete") { return target }
        let temporary = "\(target).\(getpid()).tmp"
        FileIO.removeTree(temporary)
        FileIO.makeDirectory(temporary)
        do {
            try write(git, tree: tree, into: temporary)
        } catch {
            FileIO.removeTree(temporary)
            throw error
        }
        _ = FileIO.writeAtomically(temporary + "/.rewind-complete", [])
        FileIO.removeTree(target)
        guard rename(temporary, target) == 0 else {
            FileIO.removeTree(temporary)
            throw PlatformError("cannot create \(target): \(String(cString: strerror(errno)))")
        }
        return target
    }

    /// Removes every materialised tree under `root` except `keep`.
    public static func prune(root: String, keep: Set<String>) {
        for name in FileIO.list(root) where !keep.contains(name) && !name.hasSuffix(".tmp") {
            FileIO.removeTree("\(root)/\(name)")
        }
    }

    private static func write(_ git: Repository, tree: OID, into directory: String) throws {
        for entry in try git.listTree(tree) {
            let path = "\(directory)/\(entry.name)"
            switch entry.kind {
            case .tree:
                guard mkdir(path, 0o755) == 0 else { throw PlatformError("cannot create \(path)") }
                try write(git, tree: entry.id, into: path)
            case .blob:
                let mode: mode_t = entry.mode & 0o111 != 0 ? 0o755 : 0o644
                let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
                guard fd >= 0 else { throw PlatformError("cannot write \(path)") }
                let ok = FileIO.writeAll(fd, try git.blob(entry.id)[...])
                close(fd)
                guard ok else { throw PlatformError("cannot write \(path)") }
            case .symlink:
                // Validation has refused links that leave the repository.
                let target = String(decoding: try git.blob(entry.id), as: UTF8.self)
                guard symlink(target, path) == 0 else { throw PlatformError("cannot create link \(path)") }
            case .submodule:
                continue
            }
        }
    }
}
