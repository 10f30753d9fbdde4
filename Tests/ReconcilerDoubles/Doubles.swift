import DeployModel
import Reconciler
import Synchronization
import SystemSupport
import Traffic
import WebClient

/// A proxy that routes nothing: it keeps what each app's backend was told
/// (server → weight), and fails while `failing` says why.
public final class FakeRouter: TrafficRouting, @unchecked Sendable {
    /// Each app's servers as last routed: name → weight (0: drained).
    public private(set) var routes: [String: [String: Int]] = [:]
    /// Every route call, in order: "app name=weight ...".
    public private(set) var calls: [String] = []
    /// While set, every route fails with this.
    public var failing: String?
    public private(set) var stopped: [String] = []

    public init() {}

    public func route(_ app: String, _ traffic: TrafficSettings, _ servers: [String: TrafficState.Server]) throws(TrafficError) -> SyncResult {
        if let failing { throw TrafficError(failing) }
        let weights = servers.mapValues { $0.weight }
        let changes = weights == routes[app] ? 0 : 1
        routes[app] = weights
        calls.append("\(app) " + weights.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        return SyncResult(changes: changes)
    }

    public func isUp(_ app: String, _ traffic: TrafficSettings) -> Bool { failing == nil }
    public func stop(_ app: String) { stopped.append(app) }
    public func stopAll() { routes.keys.sorted().forEach(stop) }

    /// The share of each running version: version's server → weight, the drained left out.
    public func weights(_ app: String) -> [Int] { (routes[app] ?? [:]).values.filter { $0 > 0 }.sorted() }
}

/// A metrics source whose queries answer what the test sets: by a part of
/// the query (the first that matches), else no data.
public final class FakeMetrics: MetricsSource {
    private let values = Mutex<[(String, Double?)]>([])
    /// The queries asked, in order.
    public let asked = Mutex<[String]>([])
    /// While set, every query fails with this.
    public let failing = Mutex<String?>(nil)

    public init() {}

    /// Queries containing `fragment` answer `value` (nil: no data).
    public func set(_ fragment: String, _ value: Double?) {
        values.withLock { list in
            list.removeAll { $0.0 == fragment }
            list.append((fragment, value))
        }
    }

    public func value(of query: String) throws -> Double? {
        asked.withLock { $0.append(query) }
        if let why = failing.withLock({ $0 }) { throw SystemError(why) }
        return values.withLock { list in list.first { query.contains($0.0) }?.1 ?? nil }
    }
}

/// A notification transport that answers from a script and remembers what it was sent.
public final class FakeTransport: NotificationTransport {
    /// The statuses each path answers in turn (then 200); 0 is a refused connection.
    public let answers = Mutex<[String: [Int]]>([:])
    public let sent = Mutex<[(path: String, body: String)]>([])

    public init(answers: [String: [Int]] = [:]) { self.answers.withLock { $0 = answers } }

    public func post(_ body: [UInt8], to url: WebURL) throws -> Int {
        let path = "/" + (url.text.split(separator: "/").last.map(String.init) ?? "")
        sent.withLock { $0.append((path, String(decoding: body, as: UTF8.self))) }
        let status = answers.withLock { answers in answers[path]?.isEmpty == false ? answers[path]?.removeFirst() ?? 200 : 200 }
        if status == 0 { throw SystemError("connection refused") }
        return status
    }

    /// The mails sent (a real SMTP server is in NotificationRouteTests).
    public let mails = Mutex<[Mail]>([])

    public func mail(_ mail: Mail, via server: SMTPServer) throws {
        mails.withLock { $0.append(mail) }
    }

    /// The events delivered, by their "event" field, in order.
    public var events: [String] {
        sent.withLock { $0.compactMap { $0.body.split(separator: "\"").dropFirst(3).first.map(String.init) } }
    }
}
