#if canImport(Glibc)
import Glibc
#endif

/// Wakes a waiting loop when one of a few files is written or renamed into
/// place (inotify on their directories), so that the loop reacts at once
/// instead of at its next poll: the reconciler on its branch's ref, `rewind
/// wait` and `status --watch` on the state files. Where inotify cannot
/// watch (no such directory, the watch table full), `wait` is a plain wait,
/// and the loop's polling stays what finds the change.
public final class FileWatch {
    /// Why `wait` returned.
    public enum Woken: Equatable, Sendable {
        /// A watched file was written or replaced (or inotify lost events).
        case changed
        /// The stop condition was raised.
        case stopped
        case timedOut
    }

    private let descriptor: Int32
    /// The names wanted in each watched directory, by watch descriptor.
    private var names: [Int32: Set<String>] = [:]
    /// The directories where any file is wanted.
    private var anyName: Set<Int32> = []

    /// Watches `files` (by path; inotify watches the directory each is
    /// in), and every file in `directories`.
    public init(files: [String] = [], directories: [String] = []) {
        descriptor = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard descriptor >= 0 else { return }
        let mask = UInt32(IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE)
        for file in files {
            guard let slash = file.lastIndex(of: "/") else { continue }
            let watch = inotify_add_watch(descriptor, String(file[..<slash]), mask)
            if watch >= 0 { names[watch, default: []].insert(String(file[file.index(after: slash)...])) }
        }
        for directory in directories {
            let watch = inotify_add_watch(descriptor, directory, mask)
            if watch >= 0 { anyName.insert(watch) }
        }
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    /// True when at least one directory is watched.
    public var isWatching: Bool { !names.isEmpty || !anyName.isEmpty }

    /// Waits up to `milliseconds` for a watched file to change or `stop`:
    /// on its wake descriptor too (a signal), else looking at it every 5 ms
    /// as `StopFlag` does.
    public func wait(milliseconds: Int64, stop: some StopCondition) -> Woken {
        guard isWatching else { return stop.wait(milliseconds: milliseconds) ? .stopped : .timedOut }
        let deadline = Clock.monotonicMilliseconds() + milliseconds
        let wake = stop.wakeDescriptor
        // poll sets `revents` afresh on every call.
        var ready = ([descriptor] + (wake.map { [$0] } ?? [])).map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        while !stop.requested {
            let left = deadline - Clock.monotonicMilliseconds()
            if left <= 0 { return .timedOut }
            let slice = wake == nil ? min(left, 5) : left
            if poll(&ready, nfds_t(ready.count), Int32(clamping: slice)) > 0, ready[0].revents != 0, drain() { return .changed }
        }
        return .stopped
    }

    /// Reads the events waiting; true when one names a watched file.
    private func drain() -> Bool {
        var changed = false
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { return changed }
            buffer.withUnsafeBytes { bytes in
                var offset = 0
                // struct inotify_event: wd, mask, cookie, len (4 bytes each), then name[len].
                while offset + 16 <= count {
                    let watch = bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)
                    let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
                    let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
                    let end = min(offset + 16 + length, count)
                    let name = String(decoding: bytes[(offset + 16)..<end].prefix { $0 != 0 }, as: UTF8.self)
                    if mask & UInt32(IN_Q_OVERFLOW) != 0 || anyName.contains(watch) || names[watch]?.contains(name) == true { changed = true }
                    offset = end
                }
            }
        }
    }
}
