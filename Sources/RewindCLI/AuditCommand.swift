import ArgumentParser
import Audit
import DeployModel
import GitKit
import Rollback
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// The formats of `rewind audit`.
enum AuditFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, markdown, html
}

/// The formats of `rewind incident`.
enum IncidentFormat: String, ExpressibleByArgument, CaseIterable {
    case markdown, json
}

/// `rewind audit`: the rollback history, DORA metrics and rollback metrics.
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Report rollbacks, DORA metrics and rollback metrics for a range of history, from git alone.",
        discussion: """
        Reads the branch's releases, the rollback commits' trailers and the notes under refs/notes/rewind once. \
        The README defines every metric; --format json carries every number with its definition.
        """)

    @Argument(help: "Only these apps (default: all).", completion: AppNames.completion)
    var apps: [String] = []

    @Option(help: "Start of the range: a date (2026-11-01), an RFC 3339 time, or an age (30d, 2w). Default: 30 days ago.")
    var since: String?

    @Option(help: "End of the range (a date includes that day), RFC 3339 time, age, or 'now'. Default: now.")
    var until: String?

    @Option(help: "Output format: table, json, markdown or html (one self-contained file).")
    var format: AuditFormat = .table

    @Option(help: "Write the report to this file (replaced atomically) instead of stdout.")
    var output: String?

    @Option(help: "A deploy this soon after one of the app's failed releases is a fix-forward (rework). Default: 24h.")
    var reworkWindow: String?

    @Flag(help: "Ignore and do not update the release index and the audit's digest in the git directory.")
    var noCache = false

    @OptionGroup var options: RepoOptions

    func run() throws {
        try runReporting(format: format == .json ? .json : .table) {
            let query = try AuditQuery(apps: apps, since: since, until: until, reworkWindow: reworkWindow, naming: ("--since", "--until", "--rework-window"))
            let repo = try options.open()
            let report = try AuditReport.build(try AuditDigest.load(repo, useCache: !noCache), query).withFreezeOverrides(repo)
            let bytes: [UInt8]
            switch format {
            case .table: bytes = Array((report.table + "\n").utf8)
            case .json: bytes = report.json.bytes(indent: 2) + [10]  // bytes as written: a large report is not copied into a String
            case .markdown: bytes = Array(report.markdown.utf8)
            case .html: bytes = Array(report.html.utf8)
            }
            try emit(bytes, to: output)
            if output != nil || format != .table { for warning in report.warnings { Terminal.error("warning: \(warning)") } }
        }
    }
}

/// Writes a report to stdout, or atomically to `path`.
func emit(_ bytes: [UInt8], to path: String?) throws {
    guard let path else {
        Terminal.write(1, bytes)
        return
    }
    let directory = path.contains("/") ? String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)]) : "."
    var info = stat()
    guard stat(directory.isEmpty ? "/" : directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, FileIO.writeAtomically(path, bytes) else {
        throw RewindError(.usage, "cannot write \(path)", hint: "check that its directory exists and is writable; nothing was written")
    }
}
