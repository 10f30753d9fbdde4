import DeployModel
import Mustache
import Rollback
import Synchronization
import SystemSupport
import WebClient

/// How a notification reaches its target: an HTTP POST through the web
/// client (`WebTransport`), or in unit tests a fake.
public protocol NotificationTransport: Sendable {
    /// Posts `body` to `url`; the answer's HTTP status.
    func post(_ body: [UInt8], to url: WebURL) throws -> Int
    /// Sends a mail through an SMTP server (STARTTLS); throws when it is not accepted.
    func mail(_ mail: Mail, via server: SMTPServer) throws
}

/// POSTs through the shared web client, with `caFile`'s authorities for https.
public struct WebTransport: NotificationTransport {
    let caFile: String?
    public init(caFile: String?) { self.caFile = caFile }

    public func post(_ body: [UInt8], to url: WebURL) throws -> Int {
        try WebClient.shared(caFile: caFile).request("POST", url, body: body, timeoutMilliseconds: 5_000).status
    }

    public func mail(_ mail: Mail, via server: SMTPServer) throws {
        try SMTPClient.send(mail, via: server)
    }
}

/// The deliveries waiting, in order: each target gets its events in order
/// (only its oldest may go), and a failed one waits 0.5 s, 1 s, 2 s, 4 s,
/// 8 s before its next attempt; after 6 attempts it is given up.
struct DeliveryQueue {
    struct Delivery {
        let target: Int
        let body: [UInt8]
        /// The event as the generic JSON says it (for the dead letters: no secret in it).
        var event: JSON = .null
        /// A mail's subject.
        var subject = ""
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

/// Delivers events to their targets on a thread of its own: `send` never
/// blocks, each target gets its events in order, failed deliveries are
/// retried with backoff (`DeliveryQueue`), and what is given up goes to the
/// dead-letter file. URLs and routing keys (secrets) are never logged.
public final class Notifier: Sendable {
    /// A destination: its name, where, in which format, and which events it takes.
    public struct Target: Sendable {
        public enum Format: Sendable {
            case json, slack
            /// PagerDuty's Events API v2 with this routing key.
            case pagerDuty(routingKey: String)
            /// A mail from `from` to `to` through `server` (the URL is unused).
            case email(server: SMTPServer, from: String, to: [String])
        }
        public let name: String
        public let url: WebURL
        public let format: Format
        /// The events it takes (`--notify-url` and `--slack-url` take all).
        let takes: @Sendable (RollbackEvent) -> Bool
        /// The routes file's templates of the text (and a mail's subject); nil: Rewind's own.
        public var templates: NotificationTemplates?

        /// Parses an http(s) URL; nil when it is not one.
        public init?(url: String, slack: Bool) {
            guard let parsed = WebURL(url) else { return nil }
            // The events these took before routes existed: rollbacks, suggestions, refusals and freezes, not every deploy.
            self.init(name: "", url: parsed, format: slack ? .slack : .json) { ![.deployed, .releaseFailed, .updateProposed].contains($0.kind) }
        }

        public init(name: String, url: WebURL, format: Format, takes: @escaping @Sendable (RollbackEvent) -> Bool) {
            self.name = name
            self.url = url
            self.format = format
            self.takes = takes
        }

        /// A mail target (`format` says where it goes).
        public init(name: String, server: SMTPServer, from: String, to: [String], takes: @escaping @Sendable (RollbackEvent) -> Bool) {
            // Never contacted: a mail goes to `server`; the URL only names the target in the log.
            let place = WebURL("http://\(server.host.contains(":") ? "[\(server.host)]" : server.host):\(server.port)") ?? WebURL("http://localhost:25")!
            self.init(name: name, url: place, format: .email(server: server, from: from, to: to), takes: takes)
        }

        /// Where deliveries go, for the log: scheme, host and port only.
        var place: String {
            if case .email(let server, _, _) = format { return server.description }
            return url.description
        }

        /// The body for this target, nil when the event means nothing to it (PagerDuty: only what pages or resolves).
        func body(_ event: RollbackEvent) -> [UInt8]? {
            switch format {
            case .json: event.json.bytes(indent: nil)
            case .slack: (templates?.text.map { JSON.object([("text", .string($0.render(event.templateContext)))]) } ?? event.slack).bytes(indent: nil)
            case .pagerDuty(let key): event.pagerDuty(routingKey: key, source: "rewind@\(Clock.hostName())")?.bytes(indent: nil)
            case .email: Array((templates?.text?.render(event.templateContext) ?? event.mailText).utf8)
            }
        }

        /// A mail's subject: the template's, else Rewind's (`Mail` puts it on one line).
        func subject(_ event: RollbackEvent) -> String {
            templates?.subject?.render(event.templateContext) ?? event.mailSubject
        }

        /// Sends a body made by `body(_:)`; the answer's status (a mail the server accepted: 250).
        func deliver(_ body: [UInt8], _ transport: any NotificationTransport, subject: String) throws -> Int {
            guard case let .email(server, from, to) = format else { return try transport.post(body, to: url) }
            try transport.mail(Mail(from: from, to: to, subject: subject, body: String(decoding: body, as: UTF8.self)), via: server)
            return 250
        }
    }

    private let targets: [Target]
    private let queue = Mutex(DeliveryQueue())
    private let log: @Sendable (String) -> Void
    private let transport: any NotificationTransport
    /// Monotonic milliseconds.
    private let clock: @Sendable () -> Int64
    /// Where what is given up is written, one JSON line each (nil: nowhere).
    private let deadLetters: String?
    /// The web UI's address: events link to its pages.
    private let uiURL: String?

    /// A notifier for `targets`; `log` receives delivery failures (without
    /// URLs' paths); `caFile` adds certificate authorities for https.
    public convenience init(targets: [Target], caFile: String? = nil, deadLetters: String? = nil, uiURL: String? = nil, log: @escaping @Sendable (String) -> Void) {
        self.init(targets: targets, transport: WebTransport(caFile: caFile), background: true, deadLetters: deadLetters, uiURL: uiURL, log: log)
    }

    /// With `background` false nothing is delivered until `deliverDue` is
    /// called (unit tests drive it, with a manual `clock`).
    package init(targets: [Target], transport: any NotificationTransport, background: Bool, deadLetters: String? = nil, uiURL: String? = nil,
                 clock: @escaping @Sendable () -> Int64 = { Clock.monotonicMilliseconds() }, log: @escaping @Sendable (String) -> Void) {
        self.targets = targets
        self.log = log
        self.transport = transport
        self.clock = clock
        self.deadLetters = deadLetters
        self.uiURL = uiURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        guard background, !targets.isEmpty else { return }
        BackgroundThread.start { [self] in
            while true {
                if !deliverDue() { Clock.sleep(milliseconds: 20) }
            }
        }
    }

    /// Queues an event for every target that takes it.
    public func send(_ event: RollbackEvent) {
        guard !targets.isEmpty else { return }
        let event = linked(event)
        let now = clock()
        // The event as it was sent, once for every target (its `time` is now).
        let record = event.json
        let deliveries = targets.indices.compactMap { i -> DeliveryQueue.Delivery? in
            guard targets[i].takes(event), let body = targets[i].body(event) else { return nil }
            return DeliveryQueue.Delivery(target: i, body: body, event: record, subject: targets[i].subject(event), attempt: 0, due: now)
        }
        queue.withLock { $0.add(deliveries) }
    }

    /// The event with its web UI link: a suggestion's rollback page, else the commit's page.
    func linked(_ event: RollbackEvent) -> RollbackEvent {
        guard let uiURL, event.link == nil else { return event }
        var event = event
        if event.kind == .suggested {
            event.link = "\(uiURL)/apps/\(HTTPEndpoint.encode(event.app))/rollback"
        } else if let commit = event.commit {
            event.link = "\(uiURL)/releases/\(commit)"
        }
        return event
    }

    /// Sends `event` to one target now, without queueing or retrying
    /// (`rewind notify test`): the answer's status, or why it failed.
    public func deliverNow(_ event: RollbackEvent, to index: Int) -> Result<Int, NotificationFailure> {
        let target = targets[index]
        guard let body = target.body(linked(event)) else { return .failure(NotificationFailure("this target takes no \(event.kind.rawValue) event")) }
        do {
            return .success(try target.deliver(body, transport, subject: target.subject(linked(event))))
        } catch {
            return .failure(NotificationFailure("\(error)"))
        }
    }

    /// Makes one delivery that is due; false when none was.
    @discardableResult
    package func deliverDue() -> Bool {
        guard let delivery = queue.withLock({ [now = clock()] in $0.next(now: now) }) else { return false }
        let target = targets[delivery.target]
        let outcome: String
        do {
            let status = try target.deliver(delivery.body, transport, subject: delivery.subject)
            if (200..<300).contains(status) { return true }
            outcome = "answered \(status)"
        } catch {
            // The error names scheme, host and port only: a webhook's path is often its secret.
            outcome = "failed: \(error)"
        }
        if queue.withLock({ [now = clock()] in $0.failed(delivery, now: now) }) {
            log("notification target \(label(delivery.target)) (\(target.place)) \(outcome); retrying")
        } else {
            log("notification target \(label(delivery.target)) (\(target.place)) gave up after \(DeliveryQueue.attempts) attempts; last: \(outcome)"
                + (deadLetters.map { "; the event is in \($0)" } ?? ""))
            deadLetter(delivery, target: target, outcome: outcome)
        }
        return true
    }

    /// A target as the log names it: its name in the routes file, or its place among --notify-url and --slack-url.
    private func label(_ index: Int) -> String { targets[index].name.isEmpty ? "#\(index + 1)" : "'\(targets[index].name)'" }

    /// Appends what could not be delivered to the dead-letter file: the
    /// target's name and the event, never its URL or key.
    private func deadLetter(_ delivery: DeliveryQueue.Delivery, target: Target, outcome: String) {
        guard let deadLetters else { return }
        let line = JSON.object([("time", .string(Clock.iso8601UTC(milliseconds: Clock.wallMilliseconds()))), ("target", .string(target.name.isEmpty ? label(delivery.target) : target.name)),
                                ("attempts", .number(Int64(DeliveryQueue.attempts))), ("last", .string(outcome)), ("event", delivery.event)])
        if !FileIO.append(deadLetters, line.bytes(indent: nil) + [10]) { log("cannot write the dead-letter file \(deadLetters)") }
    }
}

/// Why a notification was not delivered.
public struct NotificationFailure: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

