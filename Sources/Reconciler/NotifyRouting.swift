import DeployModel
import Remote
import Rollback
import SystemSupport
import WebClient

/// `--notify-routes FILE`: the routes file, and the secrets the targets
/// name (each read from its own file, never shown).
public struct NotifyRouting: Sendable {
    public let routes: NotificationRoutes
    public let targets: [Notifier.Target]

    /// Reads and checks the routes file and every secret file it names.
    /// An error names the file, line and field, or the secret's file (never its content).
    public static func load(file: String, caFile: String? = nil) throws(RewindError) -> NotifyRouting {
        guard let text = FileIO.readText(file) else {
            throw RewindError(.usage, "cannot read the notification routes file \(file)", hint: "check that it exists and is readable by Rewind")
        }
        let (parsed, diagnostics) = NotificationRoutes.parse(text, file: file)
        guard let routes = parsed else {
            throw RewindError(.usage, diagnostics.filter { $0.severity == .error }.map(\.description).joined(separator: "\n"),
                              hint: "fix the routes file; `rewind notify test ROUTE --notify-routes \(file)` sends a sample once it loads")
        }
        var targets: [Notifier.Target] = []
        for spec in routes.targets {
            let takes: @Sendable (RollbackEvent) -> Bool = { event in
                routes.routes.contains { $0.targets.contains(spec.name) && $0.takes(event: event.kind.rawValue, app: event.app) }
            }
            let place = "\(file): targets.\(spec.name)"
            var target: Notifier.Target
            switch spec.kind {
            case .webhook, .slack:
                var text = spec.url ?? ""
                if spec.url == nil { text = try secret(spec.urlFile ?? "", field: "\(place).urlFile") }
                // Not echoed: a webhook URL's path is often its secret.
                guard let url = WebURL(text) else {
                    throw RewindError(.usage, "\(place): the URL is not an http:// or https:// URL with a host", hint: "the URL itself is not shown: it may hold a secret")
                }
                target = Notifier.Target(name: spec.name, url: url, format: spec.kind == .slack ? .slack : .json, takes: takes)
            case .pagerduty:
                let key = try secret(spec.routingKeyFile ?? "", field: "\(place).routingKeyFile")
                guard key.utf8.count <= 256, key.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
                    throw RewindError(.usage, "\(place).routingKeyFile: the routing key must be one word of printable characters", hint: "the file holds only the integration's routing key")
                }
                var text = spec.url ?? "https://events.pagerduty.com/v2/enqueue"
                if let file = spec.urlFile { text = try secret(file, field: "\(place).urlFile") }
                guard let url = WebURL(text) else { throw RewindError(.usage, "\(place): the URL is not an http:// or https:// URL with a host") }
                target = Notifier.Target(name: spec.name, url: url, format: .pagerDuty(routingKey: key), takes: takes)
            case .email:
                guard let server = spec.server, let from = spec.from else { continue }
                let password = try spec.passwordFile.map { path throws(RewindError) in try secret(path, field: "\(place).passwordFile") }
                target = Notifier.Target(name: spec.name, server: SMTPServer(host: server.host, port: server.port, user: spec.user, password: password, caFile: caFile),
                                         from: from, to: spec.to, takes: takes)
            }
            target.templates = try NotificationTemplates.compile(text: spec.textTemplate, subject: spec.subjectTemplate, file: file, field: "targets.\(spec.name)")
            targets.append(target)
        }
        return NotifyRouting(routes: routes, targets: targets)
    }

    /// The first line of a secret's file (`Secret.fromFile`), its errors
    /// prefixed with the routes file's field that names it.
    private static func secret(_ path: String, field: String) throws(RewindError) -> String {
        do {
            return try Secret.fromFile(path, what: "secret").reveal()
        } catch let error as RewindError {
            throw RewindError(error.code, "\(field): \(error.message)", hint: error.hint)
        } catch {
            throw RewindError(.usage, "\(field): cannot read \(path)")
        }
    }
}
