import CRewindSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How a long-running loop learns that it should stop, and waits between
/// ticks without missing the request.
public protocol StopCondition: Sendable {
    /// Waits up to `milliseconds`; true when a stop was requested.
    func wait(milliseconds: Int64) -> Bool
    /// True when a stop was requested (does not wait).
    var requested: Bool { get }
    /// A descriptor that becomes readable when a stop is requested, for a
    /// wait on other descriptors too; nil: look at `requested` now and then.
    var wakeDescriptor: Int32? { get }
}

extension StopCondition {
    public var wakeDescriptor: Int32? { nil }
}

/// Stops on SIGTERM or SIGINT: `rewind reconcile`. The recording handler
/// must be installed first (`StopSignals.install()`).
public struct SignalStop: StopCondition {
    public init() {}
    public func wait(milliseconds: Int64) -> Bool { StopSignals.wait(milliseconds: milliseconds) }
    public var requested: Bool { StopSignals.pending() }
    public var wakeDescriptor: Int32? {
        let descriptor = rewind_stop_descriptor()
        return descriptor >= 0 ? descriptor : nil
    }
}

/// Stops when `stop()` is called from another thread: `rewind serve`, where
/// the service lifecycle owns the signals.
public final class StopFlag: StopCondition {
    private let flag = Atomic<Bool>(false)

    /// A flag not yet raised.
    public init() {}

    /// Asks the loop to stop.
    public func stop() { flag.store(true, ordering: .releasing) }

    public var requested: Bool { flag.load(ordering: .acquiring) }

    public func wait(milliseconds: Int64) -> Bool {
        let deadline = Clock.monotonicMilliseconds() + milliseconds
        while !requested {
            let left = deadline - Clock.monotonicMilliseconds()
            if left <= 0 { return false }
            Clock.sleep(milliseconds: min(left, 5))
        }
        return true
    }
}

/// A flag raised once, read from any thread.
public final class AtomicFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public var value: Bool { flag.load(ordering: .acquiring) }
    public func set() { flag.store(true, ordering: .releasing) }
}

/// Runs a closure on a detached thread of its own (no Foundation).
public enum BackgroundThread {
    public static func start(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { argument in
            guard let argument else { return nil }
            Unmanaged<ThreadBody>.fromOpaque(argument).takeRetainedValue().body()
            return nil
        }, box)
        if rc == 0 {
            pthread_detach(thread)
        } else {
            Unmanaged<ThreadBody>.fromOpaque(box).release()
            body()
        }
    }
}

private final class ThreadBody: Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// SIGTERM and SIGINT, recorded by a handler that only sets a flag and
/// writes to a self-pipe (so the signal never interrupts libgit2 or a write
/// half-way, whichever thread the kernel delivers it to); waiters poll the pipe.
public enum StopSignals {
    /// Installs the recording handler; call once, early.
    public static func install() {
        rewind_install_stop_handler()
    }

    /// Waits up to `milliseconds` (woken at once by the signal); true when a stop signal arrived.
    public static func wait(milliseconds: Int64) -> Bool {
        rewind_wait_stop(Int32(clamping: milliseconds)) != 0
    }

    /// True when a stop signal has arrived (does not wait).
    public static func pending() -> Bool { rewind_stop_signal() != 0 }

    /// The stop signal received (SIGTERM or SIGINT), or 0.
    public static var received: Int32 { rewind_stop_signal() }

    /// Ignores SIGPIPE: a write to a peer that hung up (a git host, a
    /// client of `serve`, a closed stdout) fails with EPIPE instead of
    /// killing the process.
    public static func ignoreBrokenPipes() { signal(SIGPIPE, SIG_IGN) }
}

/// Ctrl-C and SIGTERM in a one-shot command end the process within a
/// second, even one blocked on the network, with 128 + the signal (130,
/// 143). Local writes that must not be cut in two (a branch moved and its
/// working tree checked out, a mirror's references brought up to date) run
/// inside `deferring`; the exit waits for them, and none starts once it is decided.
public enum Interruption {
    private static let writing = Atomic<Int>(0)
    private static let exiting = Atomic<Bool>(false)

    /// Runs `body` so that an interruption waits for it to finish. Once an
    /// interruption is decided, no section starts and none returns: the
    /// thread waits for the exit, so its own outcome cannot race it.
    public static func deferring<T>(_ body: () throws -> T) rethrows -> T {
        writing.add(1, ordering: .sequentiallyConsistent)
        if exiting.load(ordering: .sequentiallyConsistent) {
            writing.subtract(1, ordering: .sequentiallyConsistent)
            parkUntilExit()
        }
        defer {
            writing.subtract(1, ordering: .sequentiallyConsistent)
            if exiting.load(ordering: .sequentiallyConsistent) { parkUntilExit() }
        }
        return try body()
    }

    private static func parkUntilExit() -> Never {
        while true { Clock.sleep(milliseconds: 1_000) }
    }

    /// Exits with `status` once no deferred write runs (waiting at most
    /// `patience` milliseconds for one to finish).
    public static func exit(status: Int32, patience: Int64 = 800) -> Never {
        exiting.store(true, ordering: .sequentiallyConsistent)
        let deadline = Clock.monotonicMilliseconds() + patience
        while writing.load(ordering: .sequentiallyConsistent) > 0 && Clock.monotonicMilliseconds() < deadline {
            Clock.sleep(milliseconds: 2)
        }
        Glibc._exit(status)
    }
}
