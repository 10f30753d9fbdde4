#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import Hummingbird
import Rollback
import ReconcilerStatus
import SystemSupport

/// An Alertmanager webhook body (payload version 4).
struct AlertmanagerPayload: Decodable, Sendable {
    let version: String
    let groupKey: String
    let status: String
    let alerts: [Alert]

    struct Alert: Decodable, Sendable {
        let status: String
        let labels: [String: String]
        let annotations: [String: String]?
        let startsAt: String
        let fingerprint: String?
    }

    /// Decodes and checks a body; the error says what is wrong, for a 400.
    static func parse(_ bytes: [UInt8]) throws(RequestError) -> AlertmanagerPayload {
        let payload = try decodeWebhook(AlertmanagerPayload.self, bytes, what: "an Alertmanager webhook payload (JSON, version 4)", within: "the Alertmanager payload")
        guard payload.version == "4" else {
            throw RequestError(400, "unsupported Alertmanager payload version '\(payload.version)'; Rewind reads version 4")
        }
        return payload
    }
}

/// A webhook's JSON body as `T`; a 400 that says what the body is not
/// (`what`), or which field of it (`within`) is wrong.
func decodeWebhook<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], what: String, within: String) throws(RequestError) -> T {
    do {
        return try JSONDecoder().decode(T.self, from: Data(bytes))
    } catch let error as DecodingError {
        if case .dataCorrupted(let context) = error, context.codingPath.isEmpty { throw RequestError(400, "the body is not \(what)") }
        throw RequestError(400, "in \(within), \(DecodingProblem.describe(error))")
    } catch {
        throw RequestError(400, "the body is not \(what)")
    }
}

/// What Rewind decided for one alert, as the webhook's response reports it.
struct AlertDecision: Sendable {
    enum Outcome: String, Sendable {
        case rolledBack = "rolled-back"
        case alreadyRolledBack = "already-rolled-back"
        case duplicate, ignored, escalated, refused, failed
    }

    var alertname: String
    var app: String?
    var fingerprint: String?
    var outcome: Outcome
    var reason: String
    var commit: String?
}

/// A request Rewind refuses: the HTTP status and a message saying what to
/// do. It is Hummingbird's `HTTPResponseError`: thrown from a handler, it
/// becomes its JSON answer (`{"error": ...}`).
struct RequestError: Error, Sendable, HTTPResponseError {
    let code: Int
    let message: String
    /// A guard refused that a person may override (`--force`, the UI's checkbox).
    var forceable = false

    init(_ status: Int, _ message: String) {
        code = status
        self.message = message
    }

    /// Rewind's own error in words, with its hint, and the status its code
    /// maps to (`status(of:)`, the one table).
    init(_ error: RewindError) {
        self.init(Self.status(of: error.code), error.message + (error.hint.map { " (hint: \($0))" } ?? ""))
        forceable = error.refusal?.name == "migration" || error.refusal?.name == "artifact"
    }

    /// The one table from Rewind's error codes to HTTP statuses.
    static func status(of code: RewindError.Code) -> Int {
        switch code {
        case .usage: 400
        case .notFound: 404
        case .refused, .conflict, .dirtyWorkingTree, .checkFailed: 409
        case .invalidState: 422
        case .contention: 503
        case .internalFailure: 500
        }
    }

    var status: HTTPResponse.Status { .init(code: code) }

    func response(from request: Request, context: some RequestContext) throws -> Response { jsonResponse }

    /// `{"error": message}` with the status.
    var jsonResponse: Response { json(code, .object([("error", .string(message))])) }

    /// What a client may read of an unexpected error: Rewind's own errors
    /// say what is wrong in words; anything else (a library's error type)
    /// stays in the log.
    static func publicText(_ error: any Error) -> String {
        if let error = error as? RewindError { return Bounded.text("\(error)", limit: 4_096) }
        if let error = error as? StateError { return Bounded.text("\(error)", limit: 4_096) }
        return "internal error; the server log has the details"
    }
}

/// Alerts already handled, by (groupKey, fingerprint, startsAt), kept in the
/// state directory so that a restart does not act on them again. Entries
/// older than a day are forgotten.
struct SeenAlerts {
    private var seen: [String: Int64] = [:]
    private let file: String

    /// Set when the file was damaged: it was moved aside, and this says where.
    private(set) var damaged: String?

    init(file: String) {
        self.file = file
        guard let bytes = FileIO.read(file) else { return }
        do {
            seen = try JSONDecoder().decode([String: Int64].self, from: Data(bytes))
        } catch {
            // Alerts seen before may be acted on again (Alertmanager resends):
            // say so, and keep the damaged file for a look.
            let aside = file + ".damaged-\(Clock.wallMilliseconds())"
            let moved = rename(file, aside) == 0
            damaged = "\(file) is damaged (\(DecodingProblem.describe(error))) and was \(moved ? "moved to \(aside)" : "left in place")"
                + "; alerts handled before may be handled again, but a rollback already written is found already rolled back"
        }
    }

    /// True when the key was handled before.
    func contains(_ key: String) -> Bool { seen[key] != nil }

    /// Remembers a handled key; true the first time.
    @discardableResult
    mutating func insert(_ key: String, now: Int64) -> Bool {
        guard seen[key] == nil else { return false }
        seen = seen.filter { now - $0.value < 86_400_000 }
        seen[key] = now
        if let data = try? JSONEncoder().encode(seen) { _ = FileIO.writeAtomically(file, Array(data)) }
        return true
    }
}
