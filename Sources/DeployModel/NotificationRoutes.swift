import SystemSupport

/// The notification routes file (`--notify-routes FILE`): named targets,
/// and routes that send some events (by name, app and severity) to some
/// targets. Secrets (webhook URLs, PagerDuty routing keys) come from files
/// the routes file names, never from the routes file itself.
///
///     targets:
///       oncall: {type: pagerduty, routingKeyFile: /etc/rewind/pagerduty-key}
///       chat: {type: slack, urlFile: /etc/rewind/slack-webhook}
///     routes:
///       - name: page
///         events: [escalated, rollback-failed, rollback-completed]
///         apps: [api]
///         severity: critical
///         targets: [oncall, chat]
///     deadLetters: /var/lib/rewind/notifications-dead.jsonl
///     uiURL: https://rewind.example.com
public struct NotificationRoutes: Sendable, Equatable {
    /// How bad an event is; a route takes events of its severity and worse.
    public enum Severity: Int, Sendable, Comparable, CaseIterable {
        case info, warning, critical
        public var name: String { ["info", "warning", "critical"][rawValue] }
        public static func < (a: Severity, b: Severity) -> Bool { a.rawValue < b.rawValue }
    }

    /// Every event Rewind sends, with its severity.
    public static let events: [(name: String, severity: Severity)] = [
        ("deployed", .info), ("failed", .warning), ("rollback-started", .warning), ("rollback-completed", .info),
        ("rollback-failed", .critical), ("escalated", .critical), ("suggested", .warning), ("commit-refused", .warning),
        ("freeze-held", .info), ("update-proposed", .info),
    ]

    public static func severity(of event: String) -> Severity { events.first { $0.name == event }?.severity ?? .info }

    public struct Target: Sendable, Equatable {
        public enum Kind: String, Sendable, CaseIterable { case webhook, slack, pagerduty, email }
        public let name: String
        public let kind: Kind
        /// The URL inline (`url`), or the file that holds it (`urlFile`); PagerDuty's defaults to its Events API v2.
        public let url: String?
        public let urlFile: String?
        /// PagerDuty: the file holding the integration's routing key.
        public let routingKeyFile: String?
        /// Email: the SMTP server (host and port; STARTTLS is required), sender, recipients, and the user and password file for AUTH.
        public var server: (host: String, port: Int)? = nil
        public var from: String? = nil
        public var to: [String] = []
        public var user: String? = nil
        public var passwordFile: String? = nil
        /// Mustache templates of the text (slack, email) and the subject (email), with their lines in the file.
        public var textTemplate: (text: String, line: Int?)? = nil
        public var subjectTemplate: (text: String, line: Int?)? = nil

        public static func == (a: Target, b: Target) -> Bool {
            a.name == b.name && a.kind == b.kind && a.url == b.url && a.urlFile == b.urlFile && a.routingKeyFile == b.routingKeyFile
                && a.server?.host == b.server?.host && a.server?.port == b.server?.port && a.from == b.from && a.to == b.to && a.user == b.user && a.passwordFile == b.passwordFile
                && a.textTemplate?.text == b.textTemplate?.text && a.subjectTemplate?.text == b.subjectTemplate?.text
        }
    }

    public struct Route: Sendable, Equatable {
        public let name: String
        /// Event names (empty: every event).
        public let events: [String]
        /// App names (empty: every app).
        public let apps: [String]
        public let severity: Severity
        public let targets: [String]

        /// True when the route takes this event of this app.
        public func takes(event: String, app: String) -> Bool {
            (events.isEmpty || events.contains(event)) && (apps.isEmpty || apps.contains(app)) && NotificationRoutes.severity(of: event) >= severity
        }
    }

    public var targets: [Target] = []
    public var routes: [Route] = []
    /// Where deliveries given up are written, one JSON line each (nil: `<state>/notifications-dead.jsonl`).
    public var deadLetters: String?
    /// The web UI's address for links (a suggested rollback's page); nil: no link.
    public var uiURL: String?

    public init() {}

    /// The targets a route of `route` names, in order.
    public func targets(of route: Route) -> [Target] { route.targets.compactMap { name in targets.first { $0.name == name } } }

    /// Parses a routes file; nil when it has an error (each with field, line and a hint).
    public static func parse(_ text: String, file: String) -> (routes: NotificationRoutes?, diagnostics: [Diagnostic]) {
        let reader = YAMLReader(file: file)
        guard let root = reader.compose(text), let map = reader.mapping(root, field: "") else { return (nil, reader.diagnostics) }
        reader.warnUnknown(map, known: ["targets", "routes", "deadLetters", "uiURL"], parent: "")
        var parsed = NotificationRoutes()
        parsed.deadLetters = reader.string(map, "deadLetters", parent: "")
        parsed.uiURL = reader.string(map, "uiURL", parent: "")
        var declared: [String] = []
        if let node = reader.value(map, "targets", parent: "", required: true), let targets = reader.mapping(node, field: "targets") {
            declared = targets.compactMap { $0.key.string }
            for (key, value) in targets {
                guard let name = key.string, RepoConfig.isValidAppName(name) else {
                    reader.error(key, field: "targets", "target name '\(key.string ?? "?")' is not valid", hint: "use lower-case letters, digits and dashes")
                    continue
                }
                if let target = parseTarget(reader, name, value) { parsed.targets.append(target) }
            }
            if parsed.targets.isEmpty && reader.diagnostics.allSatisfy({ $0.severity != .error }) {
                reader.error(node, field: "targets", "no target is defined", hint: "add one, e.g. chat: {type: slack, urlFile: /etc/rewind/slack-webhook}")
            }
        }
        if let node = reader.value(map, "routes", parent: "", required: true) {
            guard case .sequence(let items) = node else {
                reader.error(node, field: "routes", "expected a list of routes")
                return (nil, reader.diagnostics)
            }
            for (i, item) in items.enumerated() {
                if let route = parseRoute(reader, item, index: i, targets: declared) { parsed.routes.append(route) }
            }
            if items.isEmpty { reader.error(node, field: "routes", "no route is defined", hint: "add one: - {events: [escalated], targets: [chat]}") }
            var names: Set<String> = []
            for (i, route) in parsed.routes.enumerated() where !names.insert(route.name).inserted {
                reader.error(items[i], field: "routes[\(i)].name", "route name '\(route.name)' is used twice", hint: "give each route its own name: `rewind notify test` names one")
            }
        }
        let failed = reader.diagnostics.contains { $0.severity == .error }
        return (failed ? nil : parsed, reader.diagnostics)
    }

    private static func parseTarget(_ reader: YAMLReader, _ name: String, _ node: Node) -> Target? {
        let field = "targets.\(name)"
        guard let map = reader.mapping(node, field: field) else { return nil }
        reader.warnUnknown(map, known: ["type", "url", "urlFile", "routingKeyFile", "server", "from", "to", "user", "passwordFile", "template"], parent: field)
        guard let typeNode = reader.value(map, "type", parent: field, required: true) else { return nil }
        guard let kind = typeNode.string.flatMap(Target.Kind.init(rawValue:)) else {
            let near = Spelling.nearest(typeNode.string ?? "", in: Target.Kind.allCases.map(\.rawValue)).map { "did you mean '\($0)'? " } ?? ""
            reader.error(typeNode, field: "\(field).type", "unknown target type '\(typeNode.string ?? "?")'",
                         hint: "\(near)the types are \(Target.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        let url = reader.string(map, "url", parent: field)
        let urlFile = reader.string(map, "urlFile", parent: field)
        let keyFile = reader.string(map, "routingKeyFile", parent: field)
        if let url, !(url.hasPrefix("https://") || url.hasPrefix("http://")) {
            reader.error(reader.value(map, "url", parent: field), field: "\(field).url", "'url' must be an http:// or https:// URL", hint: "or name a file holding it with urlFile")
        }
        let templates = parseTemplate(reader, map, field: field, kind: kind)
        switch kind {
        case .webhook, .slack:
            if (url == nil) == (urlFile == nil) {
                reader.error(node, field: field, "a \(kind.rawValue) target needs exactly one of 'url' and 'urlFile'", hint: "urlFile keeps a webhook's secret path out of this file")
                return nil
            }
            if keyFile != nil { reader.error(reader.value(map, "routingKeyFile", parent: field), field: "\(field).routingKeyFile", "routingKeyFile is for pagerduty targets") }
        case .pagerduty:
            if keyFile == nil {
                reader.error(node, field: "\(field).routingKeyFile", "a pagerduty target needs 'routingKeyFile'", hint: "the file holds the Events API v2 integration's routing key")
                return nil
            }
        case .email:
            var target = parseEmail(reader, name, map, node)
            target?.textTemplate = templates.text
            target?.subjectTemplate = templates.subject
            return target
        }
        var target = Target(name: name, kind: kind, url: url, urlFile: urlFile, routingKeyFile: keyFile)
        target.textTemplate = templates.text
        return target
    }

    /// `template: {text: ..., subject: ...}`: Mustache templates of a Slack
    /// message's text, or of a mail's text and subject (checked when the
    /// file is loaded, where the template engine is).
    private static func parseTemplate(_ reader: YAMLReader, _ map: Node.Mapping, field: String, kind: Target.Kind)
        -> (text: (text: String, line: Int?)?, subject: (text: String, line: Int?)?) {
        guard let node = reader.value(map, "template", parent: field) else { return (nil, nil) }
        guard kind == .slack || kind == .email else {
            reader.error(node, field: "\(field).template", "a \(kind.rawValue) target has no template", hint: "templates are for slack (text) and email (text, subject) targets; webhook and pagerduty bodies are JSON")
            return (nil, nil)
        }
        guard let inner = reader.mapping(node, field: "\(field).template") else { return (nil, nil) }
        reader.warnUnknown(inner, known: kind == .email ? ["text", "subject"] : ["text"], parent: "\(field).template")
        func one(_ key: String) -> (text: String, line: Int?)? {
            guard let text = reader.string(inner, key, parent: "\(field).template") else { return nil }
            return (text, reader.value(inner, key, parent: "\(field).template")?.mark.line)
        }
        let text = one("text"), subject = kind == .email ? one("subject") : nil
        if text == nil && subject == nil { reader.error(node, field: "\(field).template", "the template is empty", hint: kind == .email ? "give text, subject or both" : "give text") }
        return (text, subject)
    }

    private static func parseEmail(_ reader: YAMLReader, _ name: String, _ map: Node.Mapping, _ node: Node) -> Target? {
        let field = "targets.\(name)"
        var target = Target(name: name, kind: .email, url: nil, urlFile: nil, routingKeyFile: nil)
        for key in ["url", "urlFile", "routingKeyFile"] where reader.value(map, key, parent: field) != nil {
            reader.error(reader.value(map, key, parent: field), field: "\(field).\(key)", "\(key) is not for email targets", hint: "an email target has server, from, to, user and passwordFile")
        }
        if let text = reader.string(map, "server", parent: field, required: true) {
            let parts = text.split(separator: ":")
            if parts.count == 2, !parts[0].isEmpty, let port = Int(parts[1]), (1...65535).contains(port) {
                target.server = (String(parts[0]), port)
            } else {
                reader.error(reader.value(map, "server", parent: field), field: "\(field).server", "'\(Bounded.printable(text))' is not host:port", hint: "e.g. smtp.example.com:587 (STARTTLS is required)")
            }
        }
        target.from = reader.string(map, "from", parent: field, required: true)
        target.to = reader.stringList(map, "to", parent: field) ?? []
        if target.to.isEmpty { reader.error(node, field: "\(field).to", "an email target needs at least one recipient in 'to'") }
        for (i, address) in ([target.from].compactMap { $0 } + target.to).enumerated() where !isAddress(address) {
            reader.error(node, field: i == 0 && target.from != nil ? "\(field).from" : "\(field).to", "'\(Bounded.printable(address))' is not a mail address", hint: "write it as name@example.com")
        }
        target.user = reader.string(map, "user", parent: field)
        target.passwordFile = reader.string(map, "passwordFile", parent: field)
        if (target.user == nil) != (target.passwordFile == nil) {
            reader.error(node, field: field, "'user' and 'passwordFile' go together", hint: "both for a server that wants AUTH, neither for one that does not")
        }
        return target.server == nil || target.from == nil || target.to.isEmpty ? nil : target
    }

    /// A mail address as SMTP takes it between < and >: local@domain, no spaces, brackets or line breaks.
    static func isAddress(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && !parts[1].isEmpty && text.utf8.count <= 254
            && text.unicodeScalars.allSatisfy { $0.value > 32 && $0.value < 127 && !"<>()[],;:\\\"".unicodeScalars.contains($0) }
    }

    private static func parseRoute(_ reader: YAMLReader, _ node: Node, index: Int, targets: [String]) -> Route? {
        let field = "routes[\(index)]"
        guard let map = reader.mapping(node, field: field) else { return nil }
        reader.warnUnknown(map, known: ["name", "events", "apps", "severity", "targets"], parent: field)
        let known = events.map(\.name)
        let events = reader.stringList(map, "events", parent: field) ?? []
        for (i, event) in events.enumerated() where !known.contains(event) {
            let near = Spelling.nearest(event, in: known).map { "did you mean '\($0)'? " } ?? ""
            reader.error(reader.value(map, "events", parent: field), field: "\(field).events[\(i)]", "unknown event '\(event)'", hint: "\(near)the events are \(known.joined(separator: ", "))")
        }
        var severity = Severity.info
        if let text = reader.string(map, "severity", parent: field) {
            if let given = Severity.allCases.first(where: { $0.name == text }) {
                severity = given
            } else {
                reader.error(reader.value(map, "severity", parent: field), field: "\(field).severity", "unknown severity '\(text)'", hint: "one of info, warning, critical (the least an event must be)")
            }
        }
        for (i, event) in events.enumerated() where known.contains(event) && Self.severity(of: event) < severity {
            reader.error(reader.value(map, "events", parent: field), field: "\(field).events[\(i)]",
                         "\(event) is \(Self.severity(of: event).name), under the route's severity \(severity.name): it would never be sent",
                         hint: "lower the route's severity, or send \(event) through a route of its own")
        }
        let names = reader.stringList(map, "targets", parent: field) ?? []
        if names.isEmpty { reader.error(node, field: "\(field).targets", "a route needs at least one target", hint: "name targets of the targets: section") }
        for (i, name) in names.enumerated() where !targets.contains(name) {
            let near = Spelling.nearest(name, in: targets).map { "did you mean '\($0)'? " } ?? ""
            reader.error(reader.value(map, "targets", parent: field), field: "\(field).targets[\(i)]", "unknown target '\(name)'", hint: "\(near)the targets are \(targets.joined(separator: ", "))")
        }
        let apps = reader.stringList(map, "apps", parent: field) ?? []
        let name = reader.string(map, "name", parent: field) ?? "route-\(index + 1)"
        return Route(name: name, events: events, apps: apps, severity: severity, targets: names)
    }
}
