import Synchronization
import SystemSupport

/// Keeps a mirror in step with its remote from a thread of its own: a sync
/// every `interval`, and one as soon as possible after `trigger()` (a push
/// webhook, a rollback commit, new notes).
public final class SyncLoop: Sendable {
    public let mirror: Mirror
    /// Milliseconds between syncs when nothing triggers one.
    public let interval: Int64
    private let requested = Atomic<Int>(0)
    private let completed = Atomic<Int>(0)
    private let last = Mutex<SyncReport?>(nil)

    public init(mirror: Mirror, interval: Int64) {
        self.mirror = mirror
        self.interval = interval
    }

    /// Asks for a sync now (returns at once).
    public func trigger() { requested.add(1, ordering: .releasing) }

    /// The report of the last sync; nil before the first.
    public var lastReport: SyncReport? { last.withLock { $0 } }

    /// How many syncs have finished.
    public var syncCount: Int { completed.load(ordering: .acquiring) }

    /// Starts the loop on a background thread; it ends when `stop` is requested.
    public func start(stop: any StopCondition, log: @escaping @Sendable (_ warning: Bool, _ line: String) -> Void) {
        BackgroundThread.start { self.run(stop: stop, log: log) }
    }

    /// Runs the loop on the calling thread until `stop` is requested.
    public func run(stop: any StopCondition, log: @Sendable (_ warning: Bool, _ line: String) -> Void) {
        var seen = -1
        var lastRun: Int64 = .min / 2
        var lastError: String?
        while !stop.requested {
            let pending = requested.load(ordering: .acquiring)
            let now = Clock.monotonicMilliseconds()
            if pending != seen || now - lastRun >= interval {
                seen = pending
                lastRun = now
                let report = mirror.sync()
                last.withLock { $0 = report }
                completed.add(1, ordering: .releasing)
                if report.error != lastError {
                    if let error = report.error {
                        log(true, "sync with \(mirror.url) failed: \(error) (\(report.unpushed) commit(s) unpushed)")
                    } else if lastError != nil {
                        log(false, "sync with \(mirror.url) works again")
                    }
                    lastError = report.error
                }
                for commit in report.pushed { log(false, "pushed \(commit.prefix(12)) to \(mirror.url)") }
                for commit in report.replanned { log(false, "the remote moved: rollback planned again as \(commit)") }
                for why in report.alreadyDone { log(false, "queued rollback dropped: \(why)") }
                for branch in report.proposed { log(false, "rollback proposed on branch \(branch): merge it to apply") }
                continue
            }
            _ = stop.wait(milliseconds: 10)
        }
    }
}
