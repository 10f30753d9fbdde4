#if canImport(Glibc)
import Glibc
#endif

/// Time as the reconciler needs it: a monotonic clock for timeouts and
/// durations, and the wall clock for what is written down.
public enum Clock {
    /// Milliseconds on a monotonic clock (unaffected by clock changes).
    public static func monotonicMilliseconds() -> Int64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Int64(t.tv_sec) * 1000 + Int64(t.tv_nsec) / 1_000_000
    }

    /// Milliseconds since 1970 on the wall clock.
    public static func wallMilliseconds() -> Int64 {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return Int64(t.tv_sec) * 1000 + Int64(t.tv_nsec) / 1_000_000
    }

    /// Seconds since 1970 on the wall clock.
    public static func wallSeconds() -> Int64 { wallMilliseconds() / 1000 }

    /// Sleeps for about `milliseconds`.
    public static func sleep(milliseconds: Int64) {
        guard milliseconds > 0 else { return }
        var request = timespec(tv_sec: Int(milliseconds / 1000), tv_nsec: Int(milliseconds % 1000) * 1_000_000)
        var rest = timespec()
        while nanosleep(&request, &rest) != 0 && errno == EINTR { request = rest }
    }

    /// This machine's host name, for notes.
    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A wall-clock time in milliseconds as ISO 8601 UTC, e.g. `2026-11-21T19:30:07Z`.
    /// With `fraction`, milliseconds too: `2026-11-21T19:30:07.250Z`.
    public static func iso8601UTC(milliseconds: Int64, fraction: Bool = false) -> String {
        let seconds = milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
        let text = Dates.utc(seconds)
        guard fraction else { return text }
        let ms = milliseconds - seconds * 1000
        return String(text.dropLast()) + "." + String(ms + 1000).dropFirst() + "Z"
    }
}
