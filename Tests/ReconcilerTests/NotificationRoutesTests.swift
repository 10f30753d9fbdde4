import DeployModel
import Foundation
@testable import Reconciler
import ReconcilerDoubles
import Rollback
import Synchronization
import SystemSupport
import Testing
import TestSupport
import WebClient

/// The routes file (`--notify-routes`): parsing with file:line errors, and
/// which event reaches which target in which format, on a fake transport.
@Suite struct NotificationRoutesTests {
    static let routesFile = """
        targets:
          oncall: {type: pagerduty, routingKeyFile: KEYFILE, url: "http://127.0.0.1:9/pagerduty"}
          chat: {type: slack, urlFile: CHATFILE}
          audit: {type: webhook, url: "http://127.0.0.1:9/audit"}
        routes:
          - name: page
            events: [escalated, rollback-failed, rollback-completed]
            apps: [api]
            targets: [oncall, chat]
          - name: loud
            severity: warning
            targets: [chat]
          - name: everything
            targets: [audit]
        deadLetters: DEAD
        uiURL: https://rewind.example.com/
        """

    /// Writes the routes file and its secrets into `dir`; the file's path.
    static func write(in dir: String, routes text: String = routesFile) throws -> String {
        try writeFile(dir + "/pd-key", "R0UTINGKEY0123456789abcdef\n")
        try writeFile(dir + "/chat-url", "http://127.0.0.1:9/slack-secret-path\n")
        let path = dir + "/notify.yaml"
        try writeFile(path, text.replacingOccurrences(of: "KEYFILE", with: dir + "/pd-key").replacingOccurrences(of: "CHATFILE", with: dir + "/chat-url")
            .replacingOccurrences(of: "DEAD", with: dir + "/dead.jsonl"))
        return path
    }

    @Test func eachEventGoesWhereItsRoutesSendItInTheTargetsFormat() throws {
        try withTemporaryDirectory { dir in
            let routing = try NotifyRouting.load(file: try Self.write(in: dir))
            #expect(routing.targets.map(\.name) == ["oncall", "chat", "audit"])
            let transport = FakeTransport()
            let notifier = Notifier(targets: routing.targets, transport: transport, background: false, deadLetters: dir + "/dead.jsonl",
                                    uiURL: routing.routes.uiURL) { _ in }
            func sent(_ event: RollbackEvent) -> [String: String] {
                transport.sent.withLock { $0.removeAll() }
                notifier.send(event)
                while notifier.deliverDue() {}
                return Dictionary(transport.sent.withLock { $0.map { ($0.path, $0.body) } }, uniquingKeysWith: { a, _ in a })
            }
            var escalated = RollbackEvent(.escalated, app: "api", trigger: "analysis", commit: String(repeating: "a", count: 40), reason: "no earlier release")
            escalated.release = String(repeating: "a", count: 40)
            let paged = sent(escalated)
            #expect(Set(paged.keys) == ["/pagerduty", "/slack-secret-path", "/audit"])
            let trigger = try JSONSerialization.jsonObject(with: Data((paged["/pagerduty"] ?? "").utf8)) as? [String: Any] ?? [:]
            #expect(trigger["event_action"] as? String == "trigger" && trigger["routing_key"] as? String == "R0UTINGKEY0123456789abcdef")
            #expect(trigger["dedup_key"] as? String == "rewind/api/\(String(repeating: "a", count: 40))")
            let payload = trigger["payload"] as? [String: Any] ?? [:]
            #expect(payload["severity"] as? String == "critical" && payload["component"] as? String == "api" && (payload["summary"] as? String)?.contains("no earlier release") == true)
            #expect((trigger["links"] as? [[String: Any]])?.first?["href"] as? String == "https://rewind.example.com/releases/\(String(repeating: "a", count: 40))")
            #expect(paged["/audit"]?.contains("\"severity\":\"critical\"") == true)

            // The verified rollback resolves what the escalation triggered: the same dedup key.
            var verified = RollbackEvent(.completed, app: "api", trigger: "manual", commit: String(repeating: "b", count: 40), reason: "api is healthy again")
            verified.release = String(repeating: "a", count: 40)
            let resolved = sent(verified)
            #expect(Set(resolved.keys) == ["/pagerduty", "/slack-secret-path", "/audit"])
            let resolve = try JSONSerialization.jsonObject(with: Data((resolved["/pagerduty"] ?? "").utf8)) as? [String: Any] ?? [:]
            #expect(resolve["event_action"] as? String == "resolve" && resolve["dedup_key"] as? String == trigger["dedup_key"] as? String && resolve["payload"] == nil)

            // Another app: only the routes without `apps`; an info event: not the warning route; PagerDuty only pages and resolves.
            #expect(Set(sent(RollbackEvent(.escalated, app: "web", trigger: "alert", reason: "x")).keys) == ["/slack-secret-path", "/audit"])
            #expect(Set(sent(RollbackEvent(.deployed, app: "api", trigger: "reconciler", reason: "api 1.1.0 is healthy")).keys) == ["/audit"])
            #expect(Set(sent(RollbackEvent(.releaseFailed, app: "web", trigger: "reconciler", reason: "crashed")).keys) == ["/slack-secret-path", "/audit"])
            var suggested = RollbackEvent(.suggested, app: "web", trigger: "analysis", reason: "trigger latency: 0.9 > 0.5")
            suggested.command = "rewind rollback web --reason 'latency'"
            let offer = sent(suggested)
            #expect(offer["/slack-secret-path"]?.contains("To roll back: `rewind rollback web --reason 'latency'`") == true, "\(offer)")
            #expect(offer["/slack-secret-path"]?.contains("<https://rewind.example.com/apps/web/rollback>") == true, "\(offer)")
            #expect(offer["/audit"]?.contains("\"command\":\"rewind rollback web --reason 'latency'\"") == true)
            #expect(transport.mails.withLock { $0 }.isEmpty, "no email target here")
        }
    }

    @Test func anEmailTargetGetsAMailWithTheEventsSubjectAndFields() {
        let transport = FakeTransport()
        let server = SMTPServer(host: "smtp.example.com", port: 587, user: "rewind", password: "s3cret", caFile: nil)
        let target = Notifier.Target(name: "mail", server: server, from: "rewind@example.com", to: ["oncall@example.com"]) { $0.severity >= .critical }
        let notifier = Notifier(targets: [target], transport: transport, background: false, uiURL: "https://rewind.example.com") { _ in }
        notifier.send(RollbackEvent(.deployed, app: "api", trigger: "reconciler", reason: "api 1.1.0 is healthy"))
        var escalated = RollbackEvent(.escalated, app: "api", trigger: "analysis", commit: String(repeating: "f", count: 40), reason: "no earlier release")
        escalated.incident = "api 1.1.0 failed"
        notifier.send(escalated)
        while notifier.deliverDue() {}
        let mails = transport.mails.withLock { $0 }
        #expect(mails.count == 1, "the info event is under the target's routes")
        #expect(mails.first?.subject == "[rewind] critical escalated: api" && mails.first?.to == ["oncall@example.com"])
        let body = mails.first?.body ?? ""
        #expect(body.contains("no earlier release") && body.contains("Incident: api 1.1.0 failed") && body.contains("Link: https://rewind.example.com/releases/\(String(repeating: "f", count: 40))"), "\(body)")
    }

    /// Mustache templates of a Slack message and of a mail's subject and
    /// text, in the routes file: fields by name, sections for what may be
    /// absent, nothing HTML-escaped; a template that does not parse names its line.
    @Test func templatesShapeTheTextOfSlackAndEmail() throws {
        try withTemporaryDirectory { dir in
            try writeFile(dir + "/pw", "pw\n")
            try writeFile(dir + "/notify.yaml", """
                targets:
                  chat:
                    type: slack
                    url: "http://127.0.0.1:9/chat"
                    template:
                      text: "{{app}} {{event}} ({{severity}}): {{reason}}{{#command}} | run: {{command}}{{/command}}"
                  mail:
                    type: email
                    server: "smtp.example.com:587"
                    from: rewind@example.com
                    to: [oncall@example.com]
                    template:
                      subject: "ROLLBACK NEEDED? {{app}} {{short}}"
                      text: "Release {{release}} of {{app}}:\\n{{reason}}\\n"
                routes:
                  - targets: [chat, mail]

                """)
            let routing = try NotifyRouting.load(file: dir + "/notify.yaml")
            let transport = FakeTransport()
            let notifier = Notifier(targets: routing.targets, transport: transport, background: false) { _ in }
            var suggested = RollbackEvent(.suggested, app: "api", trigger: "analysis", commit: String(repeating: "9", count: 40), reason: "p99 <500ms> & rising")
            suggested.command = "rewind rollback api --reason 'latency'"
            suggested.release = String(repeating: "9", count: 40)
            notifier.send(suggested)
            notifier.send(RollbackEvent(.deployed, app: "web", trigger: "reconciler", reason: "web 2.0.0 is healthy"))
            while notifier.deliverDue() {}
            let chat = transport.sent.withLock { $0.map(\.body) }
            #expect(chat == [#"{"text":"api suggested (warning): p99 <500ms> & rising | run: rewind rollback api --reason 'latency'"}"#,
                             #"{"text":"web deployed (info): web 2.0.0 is healthy"}"#], "\(chat)")
            let mails = transport.mails.withLock { $0 }
            #expect(mails.first?.subject == "ROLLBACK NEEDED? api 99999999" && mails.first?.body == "Release \(String(repeating: "9", count: 40)) of api:\np99 <500ms> & rising\n",
                    "\(mails.map { ($0.subject, $0.body) })")

            try writeFile(dir + "/bad.yaml", "targets:\n  chat:\n    type: slack\n    url: \"http://x/y\"\n    template:\n      text: \"{{#command}} run {{command}}\"\nroutes:\n  - targets: [chat]\n")
            #expect { _ = try NotifyRouting.load(file: dir + "/bad.yaml") } throws: { "\($0)".contains("bad.yaml:6: targets.chat.template.text: the template does not parse") }
            try writeFile(dir + "/hook.yaml", "targets:\n  hook:\n    type: webhook\n    url: \"http://x/y\"\n    template: {text: \"{{app}}\"}\nroutes:\n  - targets: [hook]\n")
            #expect { _ = try NotifyRouting.load(file: dir + "/hook.yaml") } throws: { "\($0)".contains("hook.yaml:5:15: error: targets.hook.template: a webhook target has no template") }
        }
    }

    @Test func whatCannotBeDeliveredGoesToTheDeadLettersWithoutItsSecrets() throws {
        try withTemporaryDirectory { dir in
            let routing = try NotifyRouting.load(file: try Self.write(in: dir))
            let transport = FakeTransport(answers: ["/pagerduty": Array(repeating: 0, count: 10)])
            let now = Mutex<Int64>(0)
            let lines = Mutex<[String]>([])
            let notifier = Notifier(targets: routing.targets, transport: transport, background: false, deadLetters: dir + "/dead.jsonl",
                                    clock: { now.withLock { $0 } }, log: { line in lines.withLock { $0.append(line) } })
            var escalated = RollbackEvent(.escalated, app: "api", trigger: "analysis", reason: "no earlier release")
            escalated.release = String(repeating: "c", count: 40)
            notifier.send(escalated)
            for _ in 0..<20 {
                while notifier.deliverDue() {}
                now.withLock { $0 += 8_000 }
            }
            let dead = try String(contentsOfFile: dir + "/dead.jsonl", encoding: .utf8).split(separator: "\n")
            #expect(dead.count == 1)
            let letter = try JSONSerialization.jsonObject(with: Data(dead[0].utf8)) as? [String: Any] ?? [:]
            #expect(letter["target"] as? String == "oncall" && letter["attempts"] as? Int == 6)
            #expect((letter["event"] as? [String: Any])?["event"] as? String == "escalated")
            #expect(!dead[0].contains("R0UTINGKEY") && !dead[0].contains("127.0.0.1:9"), "\(dead[0])")
            #expect(lines.withLock { $0 }.last?.contains("notification target 'oncall' (http://127.0.0.1:9) gave up after 6 attempts") == true, "\(lines.withLock { $0 })")
            #expect(lines.withLock { $0 }.allSatisfy { !$0.contains("R0UTINGKEY") && !$0.contains("slack-secret-path") })
        }
    }

    @Test func aMistakeInTheRoutesFileNamesTheFieldAndLine() throws {
        let cases: [(String, String)] = [
            ("targets:\n  chat: {type: slak, url: \"http://x/y\"}\nroutes:\n  - targets: [chat]\n", "notify.yaml:2:16: error: targets.chat.type: unknown target type 'slak' (did you mean 'slack'?"),
            ("targets:\n  chat: {type: slack}\nroutes:\n  - targets: [chat]\n", "notify.yaml:2:9: error: targets.chat: a slack target needs exactly one of 'url' and 'urlFile'"),
            ("targets:\n  pd: {type: pagerduty}\nroutes:\n  - targets: [pd]\n", "targets.pd.routingKeyFile: a pagerduty target needs 'routingKeyFile'"),
            ("targets:\n  chat: {type: slack, url: \"http://x/y\"}\nroutes:\n  - targets: [chta]\n", "notify.yaml:4:14: error: routes[0].targets[0]: unknown target 'chta' (did you mean 'chat'?"),
            ("targets:\n  chat: {type: slack, url: \"http://x/y\"}\nroutes:\n  - events: [escalate]\n    targets: [chat]\n", "routes[0].events[0]: unknown event 'escalate' (did you mean 'escalated'?"),
            ("targets:\n  chat: {type: slack, url: \"http://x/y\"}\nroutes:\n  - severity: loud\n    targets: [chat]\n", "routes[0].severity: unknown severity 'loud'"),
            ("targets:\n  chat: {type: slack, url: \"http://x/y\"}\nroutes:\n  - events: [deployed]\n    severity: critical\n    targets: [chat]\n",
             "routes[0].events[0]: deployed is info, under the route's severity critical: it would never be sent"),
            ("targets:\n  chat: {type: slack, url: \"ftp://x/y\"}\nroutes:\n  - targets: [chat]\n", "targets.chat.url: 'url' must be an http:// or https:// URL"),
            ("targets:\n  chat: {type: slack, url: \"http://x/y\"}\nroutes:\n  - {name: a, targets: [chat]}\n  - {name: a, targets: [chat]}\n", "routes[1].name: route name 'a' is used twice"),
            ("targets:\n  chat: {type: slack, url: \"http://x/y\"}\nroutes: []\n", "routes: no route is defined"),
            ("routes:\n  - targets: [chat]\n", "targets: required field is missing"),
            ("targets: [\n", "malformed YAML"),
            ("targets:\n  mail: {type: email, server: smtp.example.com, from: a@b.c, to: [d@e.f]}\nroutes:\n  - targets: [mail]\n",
             "targets.mail.server: 'smtp.example.com' is not host:port (e.g. smtp.example.com:587 (STARTTLS is required))"),
            ("targets:\n  mail: {type: email, server: \"smtp:587\", from: a@b.c}\nroutes:\n  - targets: [mail]\n", "targets.mail.to: an email target needs at least one recipient"),
            ("targets:\n  mail: {type: email, server: \"smtp:587\", from: a@b.c, to: [\"x <y@z>\"]}\nroutes:\n  - targets: [mail]\n", "targets.mail.to: 'x <y@z>' is not a mail address"),
            ("targets:\n  mail: {type: email, server: \"smtp:587\", from: a@b.c, to: [d@e.f], user: me}\nroutes:\n  - targets: [mail]\n", "targets.mail: 'user' and 'passwordFile' go together"),
        ]
        for (text, expected) in cases {
            let (routes, diagnostics) = NotificationRoutes.parse(text, file: "notify.yaml")
            #expect(routes == nil, "\(text)")
            #expect(diagnostics.contains { $0.description.contains(expected) }, "\(expected) in \(diagnostics)")
        }
        try withTemporaryDirectory { dir in
            // A secret's file that is missing or empty: named, never shown.
            try writeFile(dir + "/empty", "\n")
            for (target, expected) in [("{type: pagerduty, routingKeyFile: \(dir)/nope}", "targets.pd.routingKeyFile: cannot read the secret file \(dir)/nope"),
                                       ("{type: pagerduty, routingKeyFile: \(dir)/empty}", "targets.pd.routingKeyFile: the secret file \(dir)/empty is empty")] {
                try writeFile(dir + "/notify.yaml", "targets:\n  pd: \(target)\nroutes:\n  - targets: [pd]\n")
                #expect { _ = try NotifyRouting.load(file: dir + "/notify.yaml") } throws: { "\($0)".contains(expected) }
            }
            try writeFile(dir + "/chat-url", "not a url with a secret-path\n")
            try writeFile(dir + "/notify.yaml", "targets:\n  chat: {type: slack, urlFile: \(dir)/chat-url}\nroutes:\n  - targets: [chat]\n")
            #expect { _ = try NotifyRouting.load(file: dir + "/notify.yaml") } throws: { "\($0)".contains("targets.chat: the URL is not an http") && !"\($0)".contains("secret-path") }
        }
    }
}
