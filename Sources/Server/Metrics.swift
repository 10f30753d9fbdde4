import Reconciler
import Synchronization

/// Rewind's metrics in Prometheus text format, for `GET /metrics`. Thread
/// safe: the reconciler's thread and the HTTP handlers update it.
public final class Metrics: ReconcilerObserver {
    private struct Histogram {
        var buckets: [Int]
        var count = 0
        var sum = 0.0
    }

    private struct Storage {
        var counters: [String: [String: Double]] = [:]
        var histograms: [String: [String: Histogram]] = [:]
        /// Read when scraped: name → (help, value now).
        var gauges: [String: (String, @Sendable () -> Double)] = [:]
    }

    /// Bucket bounds in seconds, from a webhook's milliseconds to a slow deploy's minutes.
    static let bounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]

    private static let help: [String: (String, String)] = [
        "rewind_reconcile_duration_seconds": ("histogram", "Time one reconcile pass took."),
        "rewind_releases_applied_total": ("counter", "Releases applied, by app and outcome (healthy, failed)."),
        "rewind_rollbacks_total": ("counter", "Rollback decisions by trigger (analysis, alert, api) and outcome."),
        "rewind_rollback_commit_seconds": ("histogram", "Time from the trigger (failure, alert, request) to the rollback commit."),
        "rewind_rollback_healthy_seconds": ("histogram", "Time from the trigger to the app being healthy again (for rollbacks written by serve or by hand, from the commit's time)."),
        "rewind_alerts_received_total": ("counter", "Alerts received from Alertmanager, by status."),
        "rewind_alerts_deduplicated_total": ("counter", "Alerts already handled (same groupKey, fingerprint and startsAt)."),
        "rewind_http_requests_total": ("counter", "HTTP requests by route and status code."),
        "rewind_git_push_hooks_total": ("counter", "Push webhooks from the git host that triggered a fetch, by provider."),
        "rewind_registry_hooks_total": ("counter", "Registry notifications received, by result (checking: a pushed tag woke the update watch; ignored)."),
    ]

    private let storage = Mutex(Storage())

    /// An empty registry.
    public init() {}

    /// Adds `value` to a counter.
    public func count(_ name: String, _ labels: [(String, String)] = [], by value: Double = 1) {
        let key = Self.render(labels)
        storage.withLock { $0.counters[name, default: [:]][key, default: 0] += value }
    }

    /// Records one observation (seconds) in a histogram.
    public func observe(_ name: String, _ labels: [(String, String)] = [], seconds: Double) {
        let key = Self.render(labels)
        storage.withLock { storage in
            var h = storage.histograms[name]?[key] ?? Histogram(buckets: Array(repeating: 0, count: Self.bounds.count))
            for (i, bound) in Self.bounds.enumerated() where seconds <= bound { h.buckets[i] += 1 }
            h.count += 1
            h.sum += seconds
            storage.histograms[name, default: [:]][key] = h
        }
    }

    /// A gauge read at each scrape (`read` must be cheap and thread safe).
    public func gauge(_ name: String, help: String, _ read: @escaping @Sendable () -> Double) {
        storage.withLock { $0.gauges[name] = (help, read) }
    }

    /// The exposition text.
    public func text() -> String {
        let snapshot = storage.withLock { $0 }
        var lines: [String] = []
        for (name, (help, read)) in snapshot.gauges.sorted(by: { $0.key < $1.key }) {
            lines += ["# HELP \(name) \(help)", "# TYPE \(name) gauge", "\(name) \(Self.number(read()))"]
        }
        for name in Self.help.keys.sorted() {
            guard let (type, help) = Self.help[name] else { continue }
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            if type == "counter" {
                for (labels, value) in (snapshot.counters[name] ?? [:]).sorted(by: { $0.key < $1.key }) {
                    lines.append("\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(Self.number(value))")
                }
            } else {
                for (labels, h) in (snapshot.histograms[name] ?? [:]).sorted(by: { $0.key < $1.key }) {
                    let prefix = labels.isEmpty ? "" : labels + ","
                    for (i, bound) in Self.bounds.enumerated() {
                        lines.append("\(name)_bucket{\(prefix)le=\"\(bound)\"} \(h.buckets[i])")
                    }
                    lines.append("\(name)_bucket{\(prefix)le=\"+Inf\"} \(h.count)")
                    lines.append("\(name)_sum\(labels.isEmpty ? "" : "{\(labels)}") \(h.sum)")
                    lines.append("\(name)_count\(labels.isEmpty ? "" : "{\(labels)}") \(h.count)")
                }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func render(_ labels: [(String, String)]) -> String {
        labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",")
    }

    private static func escape(_ value: String) -> String {
        value.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"").replacing("\n", with: "\\n")
    }

    private static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }

    // MARK: ReconcilerObserver

    public func passFinished(milliseconds: Int64) {
        observe("rewind_reconcile_duration_seconds", seconds: Double(milliseconds) / 1000)
    }

    public func releaseApplied(app: String, outcome: String) {
        count("rewind_releases_applied_total", [("app", app), ("outcome", outcome)])
    }

    public func automaticRollback(app: String, trigger: String, outcome: String, millisecondsToCommit: Int64?) {
        count("rewind_rollbacks_total", [("trigger", trigger), ("outcome", outcome)])
        if let ms = millisecondsToCommit { observe("rewind_rollback_commit_seconds", [("trigger", trigger)], seconds: Double(ms) / 1000) }
    }

    public func rollbackRecovered(app: String, milliseconds: Int64?) {
        if let ms = milliseconds { observe("rewind_rollback_healthy_seconds", seconds: Double(max(ms, 0)) / 1000) }
    }
}
