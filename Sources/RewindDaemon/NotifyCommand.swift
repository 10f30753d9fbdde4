import ArgumentParser
import DeployModel
import Reconciler
import RewindCLI
import Rollback
import SystemSupport
import WebClient

/// `rewind notify test ROUTE`: a sample event to every target of a route,
/// now, without retries; what each target answered.
struct NotifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notify",
        abstract: DaemonHandOver.abstract("notify"),
        subcommands: [Test.self])

    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "test",
            abstract: "Send a sample event to every target of ROUTE and say what each answered (exit 1 when one did not take it).")

        @Argument(help: "The route's name (its `name:` in the routes file; route-N for the Nth without one).")
        var route: String

        @Option(help: "The notification routes file.")
        var notifyRoutes: String

        @Option(help: "The event to send (default: the route's first, else escalated).")
        var event: String?

        @Option(help: "The app the sample is about (default: the route's first app, else example).")
        var app: String?

        @Option(help: "A PEM file of certificate authorities to trust for https targets, besides the system's.")
        var caFile: String?

        @Option(help: "Output format: table (text) or json.")
        var format: OutputFormat = .table

        func run() throws {
            try runReporting(format: format) {
                let routing = try NotifyRouting.load(file: notifyRoutes, caFile: caFile)
                guard let chosen = routing.routes.routes.first(where: { $0.name == route }) else {
                    let names = routing.routes.routes.map(\.name)
                    let near = Spelling.nearest(route, in: names).map { "did you mean '\($0)'? " } ?? ""
                    throw RewindError(.notFound, "no route '\(Bounded.text(route, limit: 64))' in \(notifyRoutes)", hint: "\(near)the routes are \(names.joined(separator: ", "))")
                }
                let name = event ?? chosen.events.first ?? "escalated"
                guard let kind = RollbackEvent.Kind(rawValue: name) else {
                    throw RewindError(.usage, "unknown event '\(Bounded.text(name, limit: 64))'", hint: "the events are \(RollbackEvent.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                var sample = RollbackEvent(kind, app: app ?? chosen.apps.first ?? "example", trigger: "test", commit: String(repeating: "0", count: 40),
                                           reason: "a test of route \(chosen.name) from `rewind notify test`")
                sample.release = String(repeating: "0", count: 40)
                if kind == .suggested { sample.command = "rewind rollback \(sample.app) --reason 'test'" }
                let indices = routing.targets.indices.filter { chosen.targets.contains(routing.targets[$0].name) }
                let notifier = Notifier(targets: routing.targets, transport: WebTransport(caFile: caFile), background: false,
                                        uiURL: routing.routes.uiURL) { _ in }
                var rows: [(target: String, ok: Bool, result: String)] = []
                for i in indices {
                    switch notifier.deliverNow(sample, to: i) {
                    case .success(let status): rows.append((routing.targets[i].name, (200..<300).contains(status), "HTTP \(status)"))
                    case .failure(let why): rows.append((routing.targets[i].name, false, why.description))
                    }
                }
                if format == .json {
                    Terminal.print(JSON.object([("route", .string(chosen.name)), ("event", .string(kind.rawValue)), ("targets", .array(rows.map { row in
                        .object([("target", .string(row.target)), ("ok", .bool(row.ok)), ("result", .string(row.result))])
                    }))]).pretty)
                } else {
                    for row in rows { Terminal.print("\(row.target): \(row.ok ? "delivered" : "NOT DELIVERED") (\(row.result))") }
                }
                if rows.contains(where: { !$0.ok }) { throw ExitCode(1) }
            }
        }
    }
}
