import ArgumentParser
import DeployModel
import Rollback
import SystemSupport

/// `rewind validate [REV]`: is this commit a valid desired state?
struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check rewind.yaml, every app.yaml and the pins at a revision (default: the branch tip).")

    @Argument(help: "The revision to check.")
    var revision: String?

    @Flag(help: "Check the working tree's files as they are, committed or not (as `git add -A` would stage them): for pre-commit hooks.")
    var worktree = false

    @Flag(help: "Warnings (unknown fields) are errors.")
    var strict = false

    // Last: the shared repository options come after the command's own in --help.
    @OptionGroup var options: RepoOptions

    func validate() throws {
        if worktree && revision != nil { throw ValidationError("--worktree checks the working tree; it takes no revision") }
    }

    @Option(help: "Output format: table or json.")
    var format: OutputFormat = .table

    func run() throws {
        try runReporting(format: format) {
            let repo = try options.open()
            let commit = try revision.map(repo.resolve) ?? repo.tip()
            var diagnostics: [Diagnostic] = []
            var failure: RewindError?
            var apps: [LoadedApp] = []
            do {
                let state: DesiredState
                if worktree {
                    guard !repo.git.isBare else { throw RewindError(.usage, "--worktree needs a working tree; \(options.repo) is a bare repository") }
                    // Objects for the working tree's files stay in memory: nothing on disk changes.
                    try gitStep("preparing to stage objects") { try repo.git.stageObjectsInMemory() }
                    defer { repo.git.discardStagedObjects() }
                    let tree = try gitStep("reading the working tree") { try repo.git.workingTreeTree() }
                    state = try DesiredState.load(repo, tree: tree, commit: commit, what: "the working tree", limits: AppLimits())
                } else {
                    state = try DesiredState.load(repo, commit: commit)
                }
                diagnostics = state.warnings
                apps = state.apps
                if strict, !state.warnings.isEmpty {
                    failure = RewindError(.invalidState, "\(worktree ? "the working tree" : "commit \(commit.short)") has \(state.warnings.count) warning\(state.warnings.count == 1 ? "" : "s"), errors under --strict",
                                          hint: "fix the fields named above")
                }
            } catch let error as RewindError where error.code == .invalidState {
                diagnostics = error.diagnostics
                failure = error
            }
            if format == .json {
                let json = JSON.object([
                    ("commit", worktree ? .null : .string(commit.hex)),
                    ("valid", .bool(failure == nil)),
                    ("apps", .array(apps.map { .object([("name", .string($0.ref.name)), ("version", .string($0.spec.version)), ("tree", .string($0.treeID.hex))]) })),
                    ("diagnostics", .array(diagnostics.map(Self.json))),
                ])
                Terminal.print(json.pretty)
            } else {
                for d in diagnostics { Terminal.error(d.description) }
                if failure == nil {
                    Terminal.print("\(worktree ? "working tree" : commit.short): valid (\(apps.count) apps: \(apps.map { "\($0.ref.name) \($0.spec.version)" }.joined(separator: ", ")))")
                }
            }
            if let failure {
                if format == .table { Terminal.error("error: \(failure.message)\nhint: \(failure.hint ?? "")") }
                throw ExitCode(exitStatus(for: failure.code))
            }
        }
    }

    static func json(_ d: Diagnostic) -> JSON {
        .object([
            ("severity", .string(d.severity.rawValue)), ("file", .string(d.file)),
            ("line", d.line.map { .number(Int64($0)) } ?? .null), ("column", d.column.map { .number(Int64($0)) } ?? .null),
            ("field", .string(d.field)), ("message", .string(d.message)), ("hint", .optional(d.hint)),
        ])
    }
}
