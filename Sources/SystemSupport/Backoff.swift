/// The one backoff formula: `base` milliseconds, doubled for each further
/// attempt, capped at `cap`; `randomized` spreads each delay over its upper
/// half, so that writers who lost the same race do not retry in step.
public struct Backoff: Sendable {
    public let base: Int64
    public let cap: Int64
    public let randomized: Bool

    public init(base: Int64, cap: Int64, randomized: Bool = false) {
        self.base = base
        self.cap = cap
        self.randomized = randomized
    }

    /// The delay before attempt `attempt` (1: the first retry), in milliseconds.
    public func delay(attempt: Int) -> Int64 {
        let shift = Int64(min(max(attempt - 1, 0), 30))
        let full = min(base << shift, cap)
        guard randomized, full > 1 else { return full }
        return Int64.random(in: (full / 2)...full)
    }

    /// Lost compare-and-swap races on a ref: a few milliseconds.
    public static let contention = Backoff(base: 2, cap: 16, randomized: true)
}

/// The one compare-and-swap retry loop: `body` is tried until it returns a
/// value (it returns nil when it lost the race and should plan again), at
/// most `attempts` times, with `backoff` between tries. Nil when every
/// attempt lost.
public func retryLostRaces<T>(attempts: Int, backoff: Backoff = .contention, _ body: (Int) throws -> T?) rethrows -> T? {
    for attempt in 1...max(1, attempts) {
        if let result = try body(attempt) { return result }
        if attempt < attempts { Clock.sleep(milliseconds: backoff.delay(attempt: attempt)) }
    }
    return nil
}
