import DeployModel
import Mustache
import Rollback
import SystemSupport

/// An event sent to notification targets (`--notify-url`, `--slack-url`,
/// and the routes of `--notify-routes`).
public struct RollbackEvent: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        /// A release is applied and healthy.
        case deployed
        /// A release did not make it (unhealthy, crashed, could not start).
        case releaseFailed = "failed"
        case started = "rollback-started"
        case completed = "rollback-completed"
        case failed = "rollback-failed"
        case escalated
        /// A `notify` trigger breaches: a human is offered the rollback (command and link).
        case suggested
        /// A commit was not applied (its signature failed the policy).
        case refused = "commit-refused"
        /// A change window holds an app's new release (`windows:` in rewind.yaml).
        case freezeHeld = "freeze-held"
        /// `updates:` wrote an update commit (or proposed it on a branch).
        case updateProposed = "update-proposed"
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
    /// The release an incident is about (the one that failed): PagerDuty's
    /// dedup key is the app and this release, so that the rollback that
    /// is verified resolves what its failure triggered.
    public var release: String?
    /// For `suggested`: the exact command that rolls the app back.
    public var command: String?
    /// The web UI's page for the event (with `uiURL` in the routes file).
    public var link: String?

    /// Describes an event (`release`: the one its incident is about).
    public init(_ kind: Kind, app: String, trigger: String, commit: String? = nil, reason: String, release: String? = nil) {
        self.kind = kind
        self.app = app
        self.trigger = trigger
        self.commit = commit
        self.reason = reason
        self.release = release
    }

    public var severity: NotificationRoutes.Severity { NotificationRoutes.severity(of: kind.rawValue) }

    /// The generic JSON payload.
    var json: JSON {
        .object([("event", .string(kind.rawValue)), ("app", .string(app)), ("trigger", .string(trigger)), ("commit", .optional(commit)),
                 ("reason", .string(reason)), ("incident", .optional(incident)), ("time", .string(Clock.iso8601UTC(milliseconds: Clock.wallMilliseconds()))),
                 ("severity", .string(severity.name)), ("release", .optional(release)), ("command", .optional(command)), ("link", .optional(link))])
    }

    /// A Slack-compatible incoming-webhook payload: `{"text": ...}`.
    var slack: JSON {
        let what: String
        switch kind {
        case .deployed: what = ":rocket: *\(app)* deployed"
        case .releaseFailed: what = ":warning: A release of *\(app)* failed"
        case .started: what = ":rewind: Rolling back *\(app)*"
        case .completed: what = ":white_check_mark: Rollback of *\(app)* verified healthy"
        case .failed: what = ":x: Rollback of *\(app)* failed"
        case .escalated: what = ":rotating_light: *\(app)* needs a human"
        case .suggested: what = ":eyes: *\(app)* may need a rollback"
        case .refused: what = ":no_entry: A commit for *\(app)* was refused"
        case .freezeHeld: what = ":snowflake: A release of *\(app)* is held by a change window"
        case .updateProposed: what = ":package: An update of *\(app)* is proposed"
        }
        var text = "\(what) (\(trigger)\(commit.map { ", commit \($0.prefix(7))" } ?? "")): \(reason)" + (incident.map { "\nIncident: \($0)" } ?? "")
        if let command { text += "\nTo roll back: `\(command)`" }
        if let link { text += "\n<\(link)>" }
        return .object([("text", .string(text))])
    }

    /// What a template sees: every field by its JSON name (absent ones are
    /// missing, so `{{#command}}…{{/command}}` shows only when there is one),
    /// and `short` (the commit's first 8 digits).
    var templateContext: [String: Any] {
        var context: [String: Any] = ["event": kind.rawValue, "app": app, "severity": severity.name, "trigger": trigger, "reason": reason,
                                      "time": Clock.iso8601UTC(milliseconds: Clock.wallMilliseconds())]
        for (key, value) in [("commit", commit), ("release", release), ("incident", incident), ("command", command), ("link", link), ("short", commit.map { String($0.prefix(8)) })] {
            if let value { context[key] = value }
        }
        return context
    }

    /// A mail's subject: `[rewind] critical escalated: api`.
    var mailSubject: String { "[rewind] \(severity.name) \(kind.rawValue): \(app)" }

    /// A mail's text: what happened, then each field on a line of its own.
    var mailText: String {
        var lines = ["\(app): \(kind.rawValue) (\(severity.name))", "", reason, ""]
        for (key, value) in [("Trigger", trigger), ("Commit", commit), ("Release", release), ("Incident", incident), ("To roll back", command), ("Link", link)] {
            if let value { lines.append("\(key): \(value)") }
        }
        lines.append("Time: \(Clock.iso8601UTC(milliseconds: Clock.wallMilliseconds()))")
        return lines.joined(separator: "\n") + "\n"
    }

    /// A PagerDuty Events API v2 body: `trigger` when a human must act (an
    /// escalation, a rollback that failed), `resolve` when the rollback is
    /// verified; nil for every other event. The dedup key is the app and
    /// the release the incident is about.
    func pagerDuty(routingKey: String, source: String) -> JSON? {
        let action: String
        switch kind {
        case .escalated, .failed: action = "trigger"
        case .completed: action = "resolve"
        default: return nil
        }
        let dedup = "rewind/\(app)/\(release ?? commit ?? "unknown")"
        var fields: [(String, JSON)] = [("routing_key", .string(routingKey)), ("event_action", .string(action)), ("dedup_key", .string(dedup))]
        if action == "trigger" {
            let summary = String("\(app): \(kind == .escalated ? "needs a human" : "rollback failed"): \(reason)".prefix(1_024))
            fields.append(("payload", .object([("summary", .string(summary)), ("source", .string(source)), ("severity", .string("critical")),
                                               ("component", .string(app)), ("group", .string("rewind")), ("class", .string(kind.rawValue)),
                                               ("custom_details", json)])))
            fields.append(("client", .string("Rewind")))
            if let link { fields.append(("links", .array([.object([("href", .string(link)), ("text", .string("Rewind: \(app)"))])]))) }
        }
        return .object(fields)
    }
}

/// The routes file's Mustache templates of one target, compiled when the
/// file is loaded (text: values are not HTML-escaped).
public struct NotificationTemplates: Sendable {
    let text: MustacheTemplate?
    let subject: MustacheTemplate?

    /// Compiles the templates; an error names the file, field, line and column.
    public static func compile(text: (text: String, line: Int?)?, subject: (text: String, line: Int?)?, file: String, field: String) throws(RewindError) -> NotificationTemplates? {
        guard text != nil || subject != nil else { return nil }
        func one(_ template: (text: String, line: Int?)?, _ key: String) throws(RewindError) -> MustacheTemplate? {
            guard let template else { return nil }
            do {
                return try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + template.text)
            } catch {
                var where_ = template.line.map { ":\($0)" } ?? ""
                var why = "\(error)"
                if let parse = error as? MustacheTemplate.ParserError {
                    where_ = template.line.map { ":\($0 + parse.context.lineNumber - 1)" } ?? ""
                    why = "\(parse.error) at line \(parse.context.lineNumber) of the template, column \(parse.context.columnNumber)"
                }
                throw RewindError(.usage, "\(file)\(where_): \(field).template.\(key): the template does not parse: \(why)",
                                  hint: "Mustache: {{app}}, {{reason}}, {{#command}}…{{/command}}; every field of the JSON event is there by name")
            }
        }
        return NotificationTemplates(text: try one(text, "text"), subject: try one(subject, "subject"))
    }
}
