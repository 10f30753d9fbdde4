import ArgumentParser
import GitKit
import Rollback
import SystemSupport

/// `rewind diff REV1 REV2 [APP]`: what changes between two releases.
struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show what changes between two revisions, app by app: versions and the unified diff of each app's files.")

    @Argument(help: "The state to compare from: a revision, or APP#N (the app's release N).")
    var from: String

    @Argument(help: "The state to compare to (same forms).")
    var to: String

    @Argument(help: "Only this app.", completion: AppNames.completion)
    var app: String?

    @Option(help: "Output format: table (text) or json.")
    var format: OutputFormat = .table

    // Last: the shared repository options come after the command's own in --help.
    @OptionGroup var options: RepoOptions

    func run() throws {
        try runReporting(format: format) {
            let repo = try options.open()
            let old = try ShowCommand.resolve(from, in: repo)
            let new = try ShowCommand.resolve(to, in: repo)
            let oldTree = try gitStep("reading \(old.short)") { try repo.git.commit(old).tree }
            let newTree = try gitStep("reading \(new.short)") { try repo.git.commit(new).tree }
            let (config, warning) = try repo.configForListing(at: new, naming: "")
            if let warning { Terminal.error(warning) }
            var apps = config.apps
            if let app {
                guard let ref = config.app(named: app) else {
                    throw RewindError(.notFound, "unknown app '\(Bounded.text(app))'", hint: "apps in rewind.yaml at \(new.short): \(config.apps.map(\.name).joined(separator: ", "))")
                }
                apps = [ref]
            }
            var changes: [(app: String, from: String?, to: String?, diff: String)] = []
            for ref in apps {
                let before = try repo.appTree(ref, in: oldTree)
                let after = try repo.appTree(ref, in: newTree)
                guard before != after else { continue }
                let diff = try gitStep("comparing \(ref.path)") { try repo.git.unifiedDiff(from: oldTree, to: newTree, paths: [ref.path]) }
                changes.append((ref.name, repo.appSpec(appTree: before, app: ref)?.version, repo.appSpec(appTree: after, app: ref)?.version, diff))
            }
            if format == .json {
                Terminal.print(JSON.object([
                    ("from", .string(old.hex)), ("to", .string(new.hex)),
                    ("apps", .array(changes.map { .object([("app", .string($0.app)), ("versionBefore", .optional($0.from)), ("version", .optional($0.to)),
                                                           ("diff", .string($0.diff))]) })),
                ]).pretty)
                return
            }
            if changes.isEmpty {
                Terminal.print("No app changes between \(old.short) and \(new.short)\(app.map { " for \($0)" } ?? "").")
                return
            }
            for change in changes {
                Terminal.print("\(change.app): \(change.from ?? "-") -> \(change.to ?? "-")\n" + Colour.diff(change.diff.withoutTrailingNewlines) + "\n")
            }
        }
    }
}
