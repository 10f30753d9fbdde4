#if canImport(Glibc)
import Glibc
#endif

/// FNV-1a, for naming cache files after their contents' keys.
public func fnv1a(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf29ce484222325
    for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
    return hash
}

/// Small POSIX file helpers (no Foundation in the hot path).
public enum FileIO {
    /// The whole file; nil when it cannot be read.
    public static func read(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        return readExactly(fd, count: Int(info.st_size))
    }

    /// `count` bytes from `offset`; nil when the file is shorter.
    public static func read(_ path: String, offset: Int, count: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return readExactly(fd, count: count, at: offset)
    }

    /// The size of a file; nil when it does not exist.
    public static func size(_ path: String) -> Int? {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : nil
    }

    /// The permission bits of a file; nil when it does not exist.
    public static func permissions(_ path: String) -> UInt32? {
        var info = stat()
        return stat(path, &info) == 0 ? UInt32(info.st_mode) & 0o7777 : nil
    }

    /// Size and modification time (ns) of a file, for noticing that it
    /// changed; nil when it does not exist.
    public static func signature(_ path: String) -> (size: Int, modified: Int64)? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return (Int(info.st_size), Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
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
    public static func writeAtomically(_ path: String, _ bytes: [UInt8]) -> Bool {
        makeParent(path)
        let temporary = "\(path).\(getpid()).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return false }
        let ok = writeAll(fd, bytes[...])
        close(fd)
        if !ok || rename(temporary, path) != 0 { unlink(temporary); return false }
        return true
    }

    /// Appends `bytes` at the end of a file (created if needed), as a
    /// process's output redirected to it would be.
    @discardableResult
    public static func append(_ path: String, _ bytes: [UInt8]) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return writeAll(fd, bytes[...])
    }

    /// Truncates a file to `length`, then appends `bytes`.
    public static func append(_ path: String, at length: Int, _ bytes: [UInt8]) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT, 0o644)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard ftruncate(fd, off_t(length)) == 0, lseek(fd, off_t(length), SEEK_SET) == off_t(length) else { return false }
        return writeAll(fd, bytes[...])
    }

    @discardableResult
    public static func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>) -> Bool {
        var rest = bytes
        while !rest.isEmpty {
            let n = rest.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return false }
            rest = rest.dropFirst(n)
        }
        return true
    }

    public static func makeParent(_ path: String) {
        guard let slash = path.lastIndex(of: "/") else { return }
        let parent = String(path[..<slash])
        if mkdir(parent, 0o755) != 0 && errno == ENOENT {
            makeParent(parent)
            mkdir(parent, 0o755)
        }
    }

    /// Runs `body` holding an exclusive lock on `path` (created if needed);
    /// nil when the lock cannot be had.
    /// What `withLock(_:timeoutMilliseconds:_:)` did.
    public enum LockOutcome<T> {
        case done(T)
        /// Another holder kept the lock past the timeout; `body` did not run.
        case timedOut
        /// `stopWaiting` said to stop waiting, with its answer; `body` did not run.
        case gaveUp(T)
        /// The lock file could not be opened or locked.
        case failed
    }

    /// Runs `body` holding an exclusive lock on `path`, waiting at most
    /// `timeoutMilliseconds` for another holder; `body` learns whether it
    /// waited. While it waits, `stopWaiting` is asked every 10 ms: an answer
    /// ends the wait without the lock (the holder's outcome may be enough).
    public static func withLock<T>(_ path: String, timeoutMilliseconds: Int64, stopWaiting: () -> T? = { nil },
                                   _ body: (_ waited: Bool) -> T) -> LockOutcome<T> {
        makeParent(path)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return .failed }
        defer { close(fd) }
        let deadline = Clock.monotonicMilliseconds() + timeoutMilliseconds
        var waited = false
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else { return .failed }
            waited = true
            if let answer = stopWaiting() { return .gaveUp(answer) }
            if Clock.monotonicMilliseconds() >= deadline { return .timedOut }
            Clock.sleep(milliseconds: 10)
        }
        defer { flock(fd, LOCK_UN) }
        return .done(body(waited))
    }

    public static func withLock<T>(_ path: String, _ body: () -> T) -> T? {
        makeParent(path)
        let fd = open(path, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { return nil }
        defer { flock(fd, LOCK_UN) }
        return body()
    }
}

extension FileIO {
    /// Up to `limit` bytes read until end of file: for /proc files, whose
    /// size stat reports as 0.
    public static func readUntilEnd(_ path: String, limit: Int = 65_536) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while result.count < limit {
            let n = Glibc.read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            result += buffer[0..<n]
        }
        return result
    }

    /// A file's text; nil when it cannot be read.
    public static func readText(_ path: String) -> String? {
        read(path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Writes text atomically.
    @discardableResult
    public static func writeAtomically(_ path: String, text: String) -> Bool {
        writeAtomically(path, Array(text.utf8))
    }

    /// True when something exists at `path`.
    public static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    /// A new, empty, private directory under $TMPDIR (else /tmp); the caller removes it.
    public static func temporaryDirectory(prefix: String) -> String {
        let base = Environment.value("TMPDIR").flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/\(prefix).XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let start = buffer.baseAddress, mkdtemp(start) != nil else { return nil }
            return String(cString: start)
        }
        if let made { return made }
        let fallback = "\(base)/\(prefix).\(getpid())"
        makeDirectory(fallback)
        return fallback
    }

    /// True when `path` is a directory (following a symbolic link).
    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Creates a directory and its parents.
    public static func makeDirectory(_ path: String) {
        makeParent(path + "/x")
    }

    /// Removes a file or a directory tree; symbolic links are removed, not followed.
    public static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if info.st_mode & S_IFMT == S_IFDIR {
            for name in list(path) { removeTree(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    /// The names in a directory, without . and ..
    public static func list(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// An exclusive lock held until `release` or the process ends; nil when
    /// another process holds it (never waits).
    public static func tryLock(_ path: String) -> Int32? {
        makeParent(path)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return nil }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { close(fd); return nil }
        return fd
    }

    /// Releases a lock from `tryLock`.
    public static func release(_ fd: Int32) {
        flock(fd, LOCK_UN)
        close(fd)
    }

    /// The last `maxBytes` of a file, for error messages quoting a log.
    public static func tail(_ path: String, maxBytes: Int) -> String {
        guard let size = size(path), size > 0 else { return "" }
        let start = max(0, size - maxBytes)
        guard let bytes = read(path, offset: start, count: size - start) else { return "" }
        return String(decoding: bytes, as: UTF8.self)
    }
}
