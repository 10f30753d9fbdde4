#if canImport(Glibc)
import Glibc
#endif

/// FNV-1a, for naming cache files after their contents' keys.
func fnv1a(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf29ce484222325
    for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
    return hash
}

/// Small POSIX file helpers (no Foundation in the hot path).
enum FileIO {
    /// The whole file; nil when it cannot be read.
    static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        return readExactly(fd, count: Int(info.st_size))
    }

    /// `count` bytes from `offset`; nil when the file is shorter.
    static func read(_ path: String, offset: Int, count: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return readExactly(fd, count: count, at: offset)
    }

    /// The size of a file; nil when it does not exist.
    static func size(_ path: String) -> Int? {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : nil
    }

    private static func readExactly(_ fd: Int32, count: Int, at start: Int = 0) -> [UInt8]? {
        guard count > 0 else { return count == 0 ? [] : nil }
        var failed = false
        let result = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialised in
            var offset = 0
            while offset < count {
                let n = pread(fd, buffer.baseAddress! + offset, count - offset, off_t(start + offset))
                if n <= 0 { failed = true; break }
                offset += n
            }
            initialised = failed ? 0 : count
        }
        return failed ? nil : result
    }

    /// Replaces a file atomically (temporary file, then rename). No fsync:
    /// Rewind keeps only caches this way, validated on load.
    @discardableResult
    static func writeAtomically(_ path: String, _ bytes: [UInt8]) -> Bool {
        makeParent(path)
        let temporary = "\(path).\(getpid()).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return false }
        let ok = writeAll(fd, bytes[...])
        close(fd)
        if !ok || rename(temporary, path) != 0 { unlink(temporary); return false }
        return true
    }

    /// Truncates a file to `length`, then appends `bytes`.
    static func append(_ path: String, at length: Int, _ bytes: [UInt8]) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT, 0o644)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard ftruncate(fd, off_t(length)) == 0, lseek(fd, off_t(length), SEEK_SET) == off_t(length) else { return false }
        return writeAll(fd, bytes[...])
    }

    static func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> Bool {
        var rest = bytes
        while !rest.isEmpty {
            let n = rest.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return false }
            rest = rest.dropFirst(n)
        }
        return true
    }

    static func makeParent(_ path: String) {
        guard let slash = path.lastIndex(of: "/") else { return }
        let parent = String(path[..<slash])
        if mkdir(parent, 0o755) != 0 && errno == ENOENT {
            makeParent(parent)
            mkdir(parent, 0o755)
        }
    }

    /// Runs `body` holding an exclusive lock on `path` (created if needed);
    /// nil when the lock cannot be had.
    static func withLock<T>(_ path: String, _ body: () -> T) -> T? {
        makeParent(path)
        let fd = open(path, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { return nil }
        defer { flock(fd, LOCK_UN) }
        return body()
    }
}
