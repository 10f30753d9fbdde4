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
        /// A change window holds an app's new release (`windows:` in rewind.yaml).
        case freezeHeld = "freeze-held"
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
        case .freezeHeld: what = ":snowflake: A release of *\(app)* is held by a change window"
        }
        return .object([("text", .string("\(what) (\(trigger)\(commit.map { ", commit \($0.prefix(7))" } ?? "")): \(reason)" + (incident.map { "\nIncident: \($0)" } ?? "")))])
    }
}

/// How a notification reaches its target: an HTTP POST through the web
/// client (`WebTransport`), or in unit tests a fake.
public protocol NotificationTransport: Sendable {
    /// Posts `body` to `url`; the answer's HTTP status.
    func post(_ body: [UInt8], to url: WebURL) throws -> Int
}

/// POSTs through the shared web client, with `caFile`'s authorities for https.
public struct WebTransport: NotificationTransport {
    let caFile: String?
    public init(caFile: String?) { self.caFile = caFile }

    public func post(_ body: [UInt8], to url: WebURL) throws -> Int {
        try WebClient.shared(caFile: caFile).request("POST", url, body: body, timeoutMilliseconds: 5_000).status
    }
}

/// The deliveries waiting, in order: each target gets its events in order
/// (only its oldest may go), and a failed one waits 0.5 s, 1 s, 2 s, 4 s,
/// 8 s before its next attempt; after 6 attempts it is given up.
struct DeliveryQueue {
    struct Delivery {
        let target: Int
        let body: [UInt8]
        var attempt: Int
        var due: Int64
    }

    static let attempts = 6
    static let backoff = Backoff(base: 500, cap: 8_000)
    private(set) var waiting: [Delivery] = []

    mutating func add(_ deliveries: [Delivery]) { waiting += deliveries }

    /// The delivery to make now (monotonic ms), taken off the queue.
    mutating func next(now: Int64) -> Delivery? {
        var blocked: Set<Int> = []
        for (i, delivery) in waiting.enumerated() {
            if delivery.due <= now && !blocked.contains(delivery.target) { return waiting.remove(at: i) }
            blocked.insert(delivery.target)
        }
        return nil
    }

    /// A delivery failed at `now`: back at the head of its target's events
    /// for a later attempt (true), or given up (false).
    mutating func failed(_ delivery: Delivery, now: Int64) -> Bool {
        var delivery = delivery
        delivery.attempt += 1
        guard delivery.attempt < Self.attempts else { return false }
        delivery.due = now + Self.backoff.delay(attempt: delivery.attempt)
        waiting.insert(delivery, at: 0)
        return true
    }
}

/// Delivers rollback events to webhooks on a thread of its own: `send`
/// never blocks, each target gets its events in order, failed deliveries
/// are retried with backoff (`DeliveryQueue`), and the URLs (which may hold
/// secrets) are never logged.
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

    private let targets: [Target]
    private let queue = Mutex(DeliveryQueue())
    private let log: @Sendable (String) -> Void
    private let transport: any NotificationTransport
    /// Monotonic milliseconds.
    private let clock: @Sendable () -> Int64

    /// A notifier for `targets`; `log` receives delivery failures (without
    /// URLs' paths); `caFile` adds certificate authorities for https.
    public convenience init(targets: [Target], caFile: String? = nil, log: @escaping @Sendable (String) -> Void) {
        self.init(targets: targets, transport: WebTransport(caFile: caFile), background: true, log: log)
    }

    /// With `background` false nothing is delivered until `deliverDue` is
    /// called (unit tests drive it, with a manual `clock`).
    package init(targets: [Target], transport: any NotificationTransport, background: Bool,
         clock: @escaping @Sendable () -> Int64 = { Clock.monotonicMilliseconds() }, log: @escaping @Sendable (String) -> Void) {
        self.targets = targets
        self.log = log
        self.transport = transport
        self.clock = clock
        guard background, !targets.isEmpty else { return }
        BackgroundThread.start { [self] in
            while true {
                if !deliverDue() { Clock.sleep(milliseconds: 20) }
            }
        }
    }

    /// Queues an event for every target.
    public func send(_ event: RollbackEvent) {
        guard !targets.isEmpty else { return }
        let now = clock()
        let deliveries = targets.indices.map { i in
            DeliveryQueue.Delivery(target: i, body: (targets[i].slack ? event.slack : event.json).bytes(indent: nil), attempt: 0, due: now)
        }
        queue.withLock { $0.add(deliveries) }
    }

    /// Makes one delivery that is due; false when none was.
    @discardableResult
    package func deliverDue() -> Bool {
        guard let delivery = queue.withLock({ [now = clock()] in $0.next(now: now) }) else { return false }
        let target = targets[delivery.target]
        let outcome: String
        do {
            let status = try transport.post(delivery.body, to: target.url)
            if (200..<300).contains(status) { return true }
            outcome = "answered \(status)"
        } catch {
            // The error names scheme, host and port only: a webhook's path is often its secret.
            outcome = "failed: \(error)"
        }
        if queue.withLock({ [now = clock()] in $0.failed(delivery, now: now) }) {
            log("notification target #\(delivery.target + 1) (\(target.url)) \(outcome); retrying")
        } else {
            log("notification target #\(delivery.target + 1) (\(target.url)) gave up after \(DeliveryQueue.attempts) attempts; last: \(outcome)")
        }
        return true
    }
}
