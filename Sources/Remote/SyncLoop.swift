import Logging
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

    public init(mirror: Mirror, interval: Int64) {
        self.mirror = mirror
        self.interval = interval
    }

    /// Asks for a sync now (returns at once).
    public func trigger() { requested.add(1, ordering: .releasing) }

    /// Starts the loop on a background thread; it ends when `stop` is requested.
    public func start(stop: any StopCondition, logger: Logger) {
        BackgroundThread.start { self.run(stop: stop, logger: logger) }
    }

    /// Runs the loop on the calling thread until `stop` is requested.
    public func run(stop: any StopCondition, logger: Logger) {
        var seen = -1
        var lastRun: Int64 = .min / 2
        var lastError: String?
        var count = 0
        while !stop.requested {
            let pending = requested.load(ordering: .acquiring)
            let now = Clock.monotonicMilliseconds()
            if pending != seen || now - lastRun >= interval {
                seen = pending
                lastRun = now
                let report = mirror.sync()
                count += 1
                logger.debug("sync #\(count) with \(mirror.url): \(report.error == nil ? "ok" : "failed") in \(Clock.monotonicMilliseconds() - now) ms")
                if report.error != lastError {
                    if let error = report.error {
                        logger.warning("sync with \(mirror.url) failed: \(error) (\(report.unpushed) commit(s) unpushed)")
                    } else if lastError != nil {
                        logger.info("sync with \(mirror.url) works again")
                    }
                    lastError = report.error
                }
                for commit in report.pushed { logger.info("pushed \(commit.prefix(12)) to \(mirror.url)") }
                for commit in report.replanned { logger.info("the remote moved: rollback planned again as \(commit)") }
                for why in report.alreadyDone { logger.info("queued rollback dropped: \(why)") }
                for branch in report.proposed { logger.info("rollback proposed on branch \(branch): merge it to apply") }
                continue
            }
            _ = stop.wait(milliseconds: 10)
        }
    }
}
