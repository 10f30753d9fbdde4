import ArgumentParser
import DeployModel
import GitKit
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

    @Flag(help: "Also check that every OCI or download artifact a rollback could still return to (the states within policy.window, and the one before) is in its registry: exit 1 naming the missing ones. Registry settings: REWIND_PLAIN_HTTP_REGISTRIES, REWIND_REGISTRY_AUTH.")
    var artifacts = false

    // Last: the shared repository options come after the command's own in --help.
    @OptionGroup var options: RepoOptions

    func validate() throws {
        if worktree && revision != nil { throw ValidationError("--worktree checks the working tree; it takes no revision") }
        if worktree && artifacts { throw ValidationError("--artifacts checks the history of a commit; it does not combine with --worktree") }
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
            var checked: [ArtifactRelease] = []
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
                if artifacts {
                    checked = Self.rollbackArtifacts(repo, state: state, commit: commit)
                    failure = Self.missing(checked)
                }
                if strict, !state.warnings.isEmpty {
                    failure = RewindError(.invalidState, "\(worktree ? "the working tree" : "commit \(commit.short)") has \(state.warnings.count) warning\(state.warnings.count == 1 ? "" : "s"), errors under --strict",
                                          hint: "fix the fields named above")
                }
            } catch let error as RewindError where error.code == .invalidState {
                diagnostics = error.diagnostics
                failure = error
            }
            show(commit: commit, apps: apps, diagnostics: diagnostics, checked: checked, valid: failure == nil)
            if let failure {
                if format == .table { Terminal.error("error: \(failure.message)\nhint: \(failure.hint ?? "")") }
                throw ExitCode(exitStatus(for: failure.code))
            }
            if format == .table, artifacts { Terminal.print("every artifact a rollback could return to is in its registry (\(checked.count) checked)") }
        }
    }

    /// The report: JSON, or the diagnostics, the artifacts checked and the verdict in words.
    private func show(commit: OID, apps: [LoadedApp], diagnostics: [Diagnostic], checked: [ArtifactRelease], valid: Bool) {
        if format == .json {
            let json = JSON.object([
                ("commit", worktree ? .null : .string(commit.hex)),
                ("valid", .bool(valid)),
                ("apps", .array(apps.map { .object([("name", .string($0.ref.name)), ("version", .string($0.spec.version)), ("tree", .string($0.treeID.hex))]) })),
                ("diagnostics", .array(diagnostics.map(Self.json))),
            ] + (artifacts ? [("artifacts", .array(checked.map(\.json)))] : []))
            Terminal.print(json.pretty)
            return
        }
        for d in diagnostics { Terminal.error(d.description) }
        for release in checked { Terminal.print("\(release.problem == nil ? "ok" : "missing"): \(release.app) \(release.version) \(release.artifact): \(release.problem ?? release.found)") }
        if valid {
            Terminal.print("\(worktree ? "working tree" : commit.short): valid (\(apps.count) apps: \(apps.map { "\($0.ref.name) \($0.spec.version)" }.joined(separator: ", ")))")
        }
    }

    /// The refusal of `--artifacts` when some are missing.
    static func missing(_ checked: [ArtifactRelease]) -> RewindError? {
        let missing = checked.filter { $0.problem != nil }
        guard !missing.isEmpty else { return nil }
        return RewindError(.refused, "\(missing.count) artifact\(missing.count == 1 ? "" : "s") a rollback could return to \(missing.count == 1 ? "is" : "are") missing: "
                           + missing.map { "\($0.app) \($0.version)" }.joined(separator: ", "),
                           hint: "publish them again, or shorten the registry's retention only past policy.window; a rollback to them would be refused")
    }

    static func json(_ d: Diagnostic) -> JSON {
        .object([
            ("severity", .string(d.severity.rawValue)), ("file", .string(d.file)),
            ("line", d.line.map { .number(Int64($0)) } ?? .null), ("column", d.column.map { .number(Int64($0)) } ?? .null),
            ("field", .string(d.field)), ("message", .string(d.message)), ("hint", .optional(d.hint)),
        ])
    }

    /// One release's artifact as `--artifacts` found it.
    struct ArtifactRelease {
        let app: String
        let version: String
        let artifact: String
        let found: String
        let problem: String?

        var json: JSON {
            .object([("app", .string(app)), ("version", .string(version)), ("artifact", .string(artifact)), ("present", .bool(problem == nil)),
                     ("detail", .string(problem ?? found))])
        }
    }

    /// The OCI and download artifacts of what a rollback could return to,
    /// each asked of its registry (not of any cache: this is for CI).
    static func rollbackArtifacts(_ repo: DeployRepository, state: DesiredState, commit: OID) -> [ArtifactRelease] {
        let scratch = FileIO.temporaryDirectory(prefix: "rewind-validate")
        defer { FileIO.removeTree(scratch) }
        let check = DaemonArtifactCheck(stateDirectory: scratch)
        var seen = Set<String>()
        var releases: [ArtifactRelease] = []
        let trees = RollbackReach.trees(repo, apps: state.config.apps, from: commit, window: state.config.policy.window, nowMilliseconds: Clock.wallMilliseconds())
        for (app, tree) in trees {
            guard let spec = repo.appSpec(appTree: tree, app: app), let artifact = spec.artifact, artifact.path == nil,
                  seen.insert("\(app.name) \(artifact)").inserted else { continue }
            switch check.availability(of: artifact) {
            case .cached(let place), .published(let place):
                releases.append(ArtifactRelease(app: app.name, version: spec.version, artifact: "\(artifact)", found: place, problem: nil))
            case .missing(let why):
                releases.append(ArtifactRelease(app: app.name, version: spec.version, artifact: "\(artifact)", found: "", problem: why))
            }
        }
        return releases
    }
}
