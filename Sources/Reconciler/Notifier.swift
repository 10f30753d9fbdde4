import Synchronization
import SystemSupport
import WebClient

/// A rollback event sent to notification webhooks.
public struct RollbackEvent: Sendable {
    public enum Kind: String, Sendable {
        case started = "rollback-started"
        case completed = "rollback-completed"
        case failed = "rollback-failed"
        case escalated
        /// A commit was not applied (its signature failed the policy).
        case refused = "commit-refused"
    }

    public var kind: Kind
    public var app: String
    public var trigger: String
    public var commit: String?
    public var reason: String
    /// The incident report's one-line summary (after an automatic rollback
    /// is verified or escalated); the report is the note on `commit` under
    /// refs/notes/rewind-incident.
    public var incident: String?

    /// Describes an event.
    public init(_ kind: Kind, app: String, trigger: String, commit: String? = nil, reason: String) {
        self.kind = kind
        self.app = app
        self.trigger = trigger
        self.commit = commit
        self.reason = reason
    }

    /// The generic JSON payload.
    var json: JSON {
        .object([("event", .string(kind.rawValue)), ("app", .string(app)), ("trigger", .string(trigger)), ("commit", .optional(commit)),
                 ("reason", .string(reason)), ("incident", .optional(incident)), ("time", .string(Clock.iso8601UTC(milliseconds: Clock.wallMilliseconds())))])
    }

    /// A Slack-compatible incoming-webhook payload: `{"text": ...}`.
    var slack: JSON {
        let what: String
        switch kind {
        case .started: what = ":rewind: Rolling back *\(app)*"
        case .completed: what = ":white_check_mark: Rollback of *\(app)* verified healthy"
        case .failed: what = ":x: Rollback of *\(app)* failed"
        case .escalated: what = ":rotating_light: *\(app)* needs a human"
        case .refused: what = ":no_entry: A commit for *\(app)* was refused"
        }
        return .object([("text", .string("\(what) (\(trigger)\(commit.map { ", commit \($0.prefix(7))" } ?? "")): \(reason)" + (incident.map { "\nIncident: \($0)" } ?? "")))])
    }
}

/// Delivers rollback events to webhooks on a thread of its own: `send`
/// never blocks, each target gets its events in order, failed deliveries
/// are retried with backoff (0.5 s, 1 s, 2 s, 4 s, 8 s), and the URLs (which
/// may hold secrets) are never logged.
public final class Notifier: Sendable {
    /// A destination: where, and in which format.
    public struct Target: Sendable {
        public let url: WebURL
        public let slack: Bool

        /// Parses an http(s) URL; nil when it is not one.
        public init?(url: String, slack: Bool) {
            guard let parsed = WebURL(url) else { return nil }
            self.url = parsed
            self.slack = slack
        }
    }

    private struct Delivery {
        let target: Int
        let body: [UInt8]
        var attempt: Int
        var due: Int64
    }

    private let targets: [Target]
    private let queue = Mutex<[Delivery]>([])
    private let log: @Sendable (String) -> Void
    private let caFile: String?

    /// A notifier for `targets`; `log` receives delivery failures (without
    /// URLs' paths); `caFile` adds certificate authorities for https.
    public init(targets: [Target], caFile: String? = nil, log: @escaping @Sendable (String) -> Void) {
        self.targets = targets
        self.log = log
        self.caFile = caFile
        guard !targets.isEmpty else { return }
        BackgroundThread.start { [self] in self.deliverForever() }
    }

    /// Queues an event for every target.
    public func send(_ event: RollbackEvent) {
        guard !targets.isEmpty else { return }
        let now = Clock.monotonicMilliseconds()
        let deliveries = targets.indices.map { i in
            Delivery(target: i, body: (targets[i].slack ? event.slack : event.json).bytes(indent: nil), attempt: 0, due: now)
        }
        queue.withLock { $0 += deliveries }
    }

    private func deliverForever() {
        while true {
            let now = Clock.monotonicMilliseconds()
            // Each target gets its events in order: only its oldest queued one may go.
            let due = queue.withLock { q -> Delivery? in
                var waiting: Set<Int> = []
                for (i, delivery) in q.enumerated() {
                    if delivery.due <= now && !waiting.contains(delivery.target) { return q.remove(at: i) }
                    waiting.insert(delivery.target)
                }
                return nil
            }
            guard var delivery = due else {
                Clock.sleep(milliseconds: 20)
                continue
            }
            let target = targets[delivery.target]
            var outcome: String
            do {
                let status = try WebClient.shared(caFile: caFile).request("POST", target.url, body: delivery.body, timeoutMilliseconds: 5_000).status
                if (200..<300).contains(status) { continue }
                outcome = "answered \(status)"
            } catch {
                // The error names scheme, host and port only: a webhook's path is often its secret.
                outcome = "failed: \(error)"
            }
            delivery.attempt += 1
            guard delivery.attempt < 6 else {
                log("notification target #\(delivery.target + 1) (\(target.url)) gave up after 6 attempts; last: \(outcome)")
                continue
            }
            log("notification target #\(delivery.target + 1) (\(target.url)) \(outcome); retrying")
            delivery.due = Clock.monotonicMilliseconds() + Backoff(base: 500, cap: 8_000).delay(attempt: delivery.attempt)
            queue.withLock { $0.insert(delivery, at: 0) }
        }
    }
}
