import GitKit
import SystemSupport

/// What a rollback commit says about itself, as git trailers
/// (`git interpret-trailers --parse` reads them).
public struct RollbackTrailers: Sendable, Equatable {
    /// `update` and `allow` are not rollbacks: an update commit moves an
    /// app to a newer artifact (`updates:`), an allow commit lets a version
    /// that was rolled back be proposed again (it changes no file).
    public enum Action: String, Sendable, CaseIterable { case revert, rollback, pin, unpin, update, allow }
    public enum TriggerKind: String, Sendable, CaseIterable, Codable {
        /// `ui`: a signed-in person in `rewind serve`'s web UI (`Rewind-Actor` names them).
        /// `registry`: `serve`'s watch of an app's `updates:` (a poll or a push notification).
        case manual, alert, analysis, api, ui, registry

        /// Automation's own rollbacks (an alert, the reconciler's analysis).
        public var isAutomatic: Bool { self == .alert || self == .analysis }
    }

    public var action: Action
    /// The restored commits: one, or one per app in the order of `apps`.
    public var targets: [OID]
    public var apps: [String]
    public var reason: String?
    public var trigger: TriggerKind
    public var alert: String?
    public var fingerprint: String?
    /// Guards a human overrode with `--force`, in words.
    public var forced: [String] = []
    /// Who acted, when it is not the commit's author: `rewind@HOST` for
    /// automation, the API token's name for the API.
    public var actor: String?
    /// The actor acted through a break-glass account (`Rewind-Break-Glass: yes`).
    public var breakGlass = false
    /// An update's artifact digests before and after (`Rewind-Old-Digest`,
    /// `Rewind-New-Digest`) and the tag it follows (`Rewind-Tag`).
    public var oldDigest: String?
    public var newDigest: String?
    public var tag: String?
    /// The digest an allow commit lets be proposed again (`Rewind-Allow`).
    public var allowed: String?

    /// Creates trailers.
    public init(action: Action, targets: [OID], apps: [String], reason: String?, trigger: TriggerKind = .manual,
                alert: String? = nil, fingerprint: String? = nil, forced: [String] = []) {
        self.action = action
        self.targets = targets
        self.apps = apps
        self.reason = reason
        self.trigger = trigger
        self.alert = alert
        self.fingerprint = fingerprint
        self.forced = forced
    }

    /// The trailer block, one `Key: value` per line. With one target per
    /// app, each `Rewind-Target` names its app after the commit
    /// (`Rewind-Target: <sha> api`), so the pairing does not hang on order.
    public var rendered: String {
        var lines = ["Rewind-Action: \(action.rawValue)"]
        if targets.count > 1 && targets.count == apps.count {
            lines += zip(targets, apps).map { "Rewind-Target: \($0.hex) \($1)" }
        } else {
            lines += targets.map { "Rewind-Target: \($0.hex)" }
        }
        lines += apps.map { "Rewind-App: \($0)" }
        if let reason, !reason.isEmpty { lines.append("Rewind-Reason: \(Self.oneLine(reason, limit: Bounded.maxReasonLength))") }
        lines.append("Rewind-Trigger: \(trigger.rawValue)")
        if let alert { lines.append("Rewind-Alert: \(Self.oneLine(alert))") }
        if let fingerprint { lines.append("Rewind-Fingerprint: \(Self.oneLine(fingerprint))") }
        lines += forced.map { "Rewind-Forced: \(Self.oneLine($0, limit: Bounded.maxReasonLength))" }
        if let actor, !actor.isEmpty { lines.append("Rewind-Actor: \(Self.oneLine(actor))") }
        if breakGlass { lines.append("Rewind-Break-Glass: yes") }
        for (key, value) in [("Rewind-Old-Digest", oldDigest), ("Rewind-New-Digest", newDigest), ("Rewind-Tag", tag), ("Rewind-Allow", allowed)] {
            if let value { lines.append("\(key): \(Self.oneLine(value))") }
        }
        return lines.joined(separator: "\n")
    }

    /// The restored commit for one app: its own when there is one per app,
    /// else the single target.
    public func target(for app: String) -> OID? {
        if targets.count == apps.count, targets.count > 1, let i = apps.firstIndex(of: app) { return targets[i] }
        return targets.first
    }

    /// Trailers may not span lines; collapse any whitespace run to one space,
    /// and cut the value visibly at `limit` characters.
    static func oneLine(_ text: String, limit: Int = Bounded.maxValueLength) -> String {
        Bounded.text(text.split(whereSeparator: { $0.isNewline || $0 == "\t" }).joined(separator: " ").trimmingCharacters(), limit: limit)
    }

    /// Reads Rewind's trailers from the last paragraph of a message; nil when
    /// there is no `Rewind-Action`.
    public static func parse(_ message: String) -> RollbackTrailers? {
        var fields: [(String, String)] = []
        for line in lastParagraph(message) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = String(line[..<colon])
            let value = String(line[line.index(after: colon)...]).trimmingCharacters()
            fields.append((key, value))
        }
        guard let actionText = fields.first(where: { $0.0 == "Rewind-Action" })?.1, let action = Action(rawValue: actionText) else { return nil }
        func one(_ key: String) -> String? { fields.first { $0.0 == key }?.1 }
        // `Rewind-Target: <sha>` or `Rewind-Target: <sha> <app>`: pairs that
        // name their app are put in the order of the apps.
        let targetWords = fields.filter { $0.0 == "Rewind-Target" }.map { $0.1.split(separator: " ", maxSplits: 1).map(String.init) }
        // An app named twice (a hand-written message) is one app.
        var apps: [String] = []
        for app in fields.filter({ $0.0 == "Rewind-App" }).map(\.1) where !apps.contains(app) { apps.append(app) }
        var targets = targetWords.compactMap { $0.first.flatMap(OID.init(hex:)) }
        let named = Dictionary(targetWords.compactMap { words -> (String, OID)? in
            guard words.count == 2, let id = OID(hex: words[0]) else { return nil }
            return (words[1], id)
        }, uniquingKeysWith: { a, _ in a })
        if !named.isEmpty, apps.allSatisfy({ named[$0] != nil }) { targets = apps.compactMap { named[$0] } }
        var parsed = RollbackTrailers(
            action: action,
            targets: targets,
            apps: apps,
            reason: one("Rewind-Reason"),
            trigger: one("Rewind-Trigger").flatMap(TriggerKind.init(rawValue:)) ?? .manual,
            alert: one("Rewind-Alert"),
            fingerprint: one("Rewind-Fingerprint"),
            forced: fields.filter { $0.0 == "Rewind-Forced" }.map(\.1))
        parsed.actor = one("Rewind-Actor")
        parsed.breakGlass = one("Rewind-Break-Glass") == "yes"
        (parsed.oldDigest, parsed.newDigest, parsed.tag, parsed.allowed) = (one("Rewind-Old-Digest"), one("Rewind-New-Digest"), one("Rewind-Tag"), one("Rewind-Allow"))
        return parsed
    }

    private static func lastParagraph(_ message: String) -> [Substring] {
        let lines = message.split(separator: "\n", omittingEmptySubsequences: false)
        var end = lines.count
        while end > 0 && lines[end - 1].allSatisfy(\.isWhitespace) { end -= 1 }
        var start = end
        while start > 0 && !lines[start - 1].allSatisfy(\.isWhitespace) { start -= 1 }
        return Array(lines[start..<end])
    }

    /// The commit named by git's own revert message, `This reverts commit <sha>.`
    public static func gitRevertTarget(_ message: String) -> OID? {
        let marker = Array("This reverts commit ".utf8)
        let bytes = Array(message.utf8)
        guard let start = bytes.firstRange(of: marker)?.upperBound, start + 40 <= bytes.count else { return nil }
        return OID(hex: String(decoding: bytes[start..<(start + 40)], as: UTF8.self))
    }

    /// True when the message's trailers let its commit through a change
    /// window (`Rewind-Override: freeze`), which the audit lists.
    public static func overridesFreeze(_ message: String) -> Bool {
        lastParagraph(message).contains { line in
            guard let colon = line.firstIndex(of: ":") else { return false }
            return line[..<colon] == "Rewind-Override" && line[line.index(after: colon)...].trimmingCharacters() == "freeze"
        }
    }

    /// Text whose presence in a message means it may be a rollback.
    static let messageMarkers = ["Rewind-Action:", "This reverts commit "]

    /// True when a message may carry Rewind's trailers (a cheap byte search).
    public static func mayCarryTrailers(_ message: String) -> Bool {
        Array(message.utf8).firstRange(of: Array("Rewind-Action:".utf8)) != nil
    }
}
