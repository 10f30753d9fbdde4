import ArgumentParser
import GitKit
import Rollback
import SystemSupport

/// `rewind releases [APP]`: numbered releases per app.
struct ReleasesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "releases",
        abstract: "List each app's releases: commits on the branch's first-parent chain that changed the app.")

    @OptionGroup var options: RepoOptions

    @Argument(help: "Only this app.")
    var app: String?

    @Option(help: "Output format: table or json.")
    var format: OutputFormat = .table

    @Option(help: "Show the newest N releases of each app (0: all).")
    var limit: Int = 20

    @Flag(help: "Ignore and do not update the release index in the git directory.")
    var noCache = false

    func validate() throws {
        guard limit >= 0 else { throw ValidationError("--limit must be 0 (all) or a positive number") }
    }

    func run() throws {
        try runReporting {
            let repo = try options.open()
            let tip = try repo.tip()
            let config = try repo.config(tree: try repo.git.commit(tip).tree)
            if let app, config.app(named: app) == nil {
                throw RewindError(.notFound, "unknown app '\(app)'", hint: "apps in rewind.yaml: \(config.apps.map(\.name).joined(separator: ", "))")
            }
            let history = try ReleaseHistory.load(repo, config: config, tip: tip, useCache: !noCache, limit: limit == 0 ? nil : limit)
            let names = app.map { [$0] } ?? config.apps.map(\.name)
            let shown = names.map { ($0, history.of($0), history.totals[$0] ?? 0) }
            if format == .json {
                Terminal.write(1, Self.json(shown))
            } else {
                Terminal.print(table(shown))
            }
        }
    }

    private func table(_ shown: [(String, [Release], Int)]) -> String {
        var rows: [[String]] = []
        for (_, releases, _) in shown {
            for r in releases {
                var note = r.summary
                if let target = r.target, r.kind != .deploy { note = "(\(r.reverts ? "reverts" : "back to") \(target.short)) " + note }
                if let by = r.rolledBackBy { note = "[rolled back by \(by.short)] " + note }
                rows.append([r.app, "#\(r.number)", r.commit.short, Dates.iso8601(r.time, offsetMinutes: r.offsetMinutes), r.kind.rawValue,
                             "\(r.previousVersion ?? "-") -> \(r.version ?? "-")", r.author, String(note.prefix(72))])
            }
        }
        return Table.render(["APP", "RELEASE", "COMMIT", "DATE", "KIND", "VERSION", "AUTHOR", "NOTE"], rows)
    }

    /// The JSON listing, written straight into bytes (thousands of releases).
    static func json(_ shown: [(String, [Release], Int)]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(shown.reduce(64) { $0 + $1.1.count * 700 })
        out.append(91)
        for (a, (name, releases, total)) in shown.enumerated() {
            if a > 0 { out.append(44) }
            out.put(#"{"app":"#); JSON.escape(name, into: &out)
            out.put(#","total":"#); out += String(total).utf8
            out.put(#","releases":["#)
            for (i, r) in releases.enumerated() {
                if i > 0 { out.append(44) }
                out.put(#"{"number":"#); out += String(r.number).utf8
                out.put(#","commit":"#); hex(r.commit, &out)
                out.put(#","kind":""#); out += r.kind.rawValue.utf8; out.append(34)
                out.put(#","versionBefore":"#); optional(r.previousVersion, &out)
                out.put(#","version":"#); optional(r.version, &out)
                out.put(#","tree":"#); hex(r.tree, &out)
                out.put(#","previousTree":"#); hex(r.previousTree, &out)
                out.put(#","author":"#); JSON.escape(r.author, into: &out)
                out.put(#","email":"#); JSON.escape(r.email, into: &out)
                out.put(#","date":""#); Dates.appendISO8601(r.time, offsetMinutes: r.offsetMinutes, into: &out); out.append(34)
                out.put(#","target":"#); hex(r.target, &out)
                out.put(#","reverts":"#); out += (r.reverts ? "true" : "false").utf8
                out.put(#","rolledBackBy":"#); hex(r.rolledBackBy, &out)
                out.put(#","summary":"#); JSON.escape(r.summary, into: &out)
                out.append(125)
            }
            out += "]}".utf8
        }
        out += "]\n".utf8
        return out
    }

    private static func optional(_ text: String?, _ out: inout [UInt8]) {
        if let text { JSON.escape(text, into: &out) } else { out += "null".utf8 }
    }

    private static func hex(_ id: OID?, _ out: inout [UInt8]) {
        guard let id else { out += "null".utf8; return }
        out.append(34)
        id.appendHex(to: &out)
        out.append(34)
    }
}

extension Array where Element == UInt8 {
    /// Appends a literal's bytes.
    mutating func put(_ text: StaticString) {
        text.withUTF8Buffer { append(contentsOf: $0) }
    }
}
