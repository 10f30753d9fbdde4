import ArgumentParser
import DeployModel
import GitKit
import ReconcilerStatus
import Rollback
import SystemSupport

/// `rewind wait`: until the apps run the tip's desired state and are healthy.
struct WaitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait",
        abstract: "Wait until apps run the tip's desired state and are healthy (like kubectl rollout status).",
        discussion: """
            Exits 0 when every app named (default: all) runs the tip's desired state and is healthy; \
            7 when a human must act (an escalation, a halted reconciler, a refused tip); 8 when a \
            release failed or automation rolled it back; 9 when --timeout passed first. Reads the \
            reconciler's state directory; a reconciler must be running to make progress.

            With --soak, wait on once the apps are healthy, through the soak window (policy.soak \
            of rewind.yaml, or the duration given): exit 8 if a release failed or was rolled back \
            meanwhile, 0 if the apps came through healthy. For CI: `git push && rewind wait --soak 2m` \
            fails the job when automation rolled the release back. --timeout bounds the wait for \
            health; the soak window comes on top of it.
            """)

    @Argument(help: "Apps to wait for (default: every app).", completion: AppNames.completion)
    var apps: [String] = []

    @Flag(help: "Wait for health only (with --synced: both, the default).")
    var healthy = false

    @Flag(help: "Wait for the desired state to be applied only (with --healthy: both, the default).")
    var synced = false

    @OptionGroup var waiting: WaitOptions

    @Option(help: ArgumentHelp(
        "After the apps are healthy, keep watching them through this soak window (alone: policy.soak of rewind.yaml).",
        valueName: "duration"))
    var soak: SoakWindow?

    @Option(help: "Output format: table (text) or json.")
    var format: OutputFormat = .table

    // Last: the shared repository options come after the command's own in --help.
    @OptionGroup var repoOptions: RepoOptions

    func run() throws {
        try runReporting(format: format) {
            let repo = try repoOptions.openWithMirror(sync: false).repo
            let condition = WaitCondition(apps: apps, synced: synced || !healthy, healthy: healthy || !synced)
            let since = try repo.tip()
            let soakMilliseconds = try soak.map { try $0.milliseconds(repo, tip: since) }
            try waiting.wait(for: condition, in: repo, since: since, format: format, soakMilliseconds: soakMilliseconds)
        }
    }
}

/// How long, and on which state directory, a command waits.
struct WaitOptions: ParsableArguments {
    @Option(help: "Give up after this long (exit 9), e.g. 90s, 5m.")
    var timeout = Self.defaultTimeout
    static let defaultTimeout = Duration(milliseconds: 300_000)

    @Option(help: "The state directory (default: <git dir>/rewind/state).")
    var stateDir: String?

    func validate() throws {
    }

    /// Reads the status again whenever the reconciler writes it (and every
    /// 50 ms besides) until `condition` holds, fails, or the
    /// timeout passes; prints each change, then the outcome. Throws the
    /// outcome's exit code when it is not 0.
    /// With `soakMilliseconds`, a `done` counts only once that long has
    /// passed since the apps were first healthy (the deadline moves on by as much).
    func wait(for condition: WaitCondition, in repo: DeployRepository, since: OID, format: OutputFormat, soakMilliseconds: Int64? = nil) throws {
        var deadline = Clock.monotonicMilliseconds() + timeout.milliseconds
        var healthySince: Int64?
        var shown: [String: String] = [:]
        var verdict = WaitVerdict.waiting([:])
        var report: StatusReport?
        let stop = SignalStop()
        let written = StateStore(repo, directory: stateDir).watch()
        while true {
            let current = try statusReport(repo, stateDirectory: stateDir)
            report = current
            let rolledBack = (try? repo.tip()).map { condition.automaticRollbacks(repo, since: since, tip: $0) } ?? [:]
            verdict = condition.judge(current, rolledBack: rolledBack)
            if verdict == .done, let soak = soakMilliseconds {
                let now = Clock.monotonicMilliseconds()
                if healthySince == nil {
                    healthySince = now
                    deadline += soak
                    if format == .table { Terminal.print("healthy; soaking for \(Duration(milliseconds: soak))") }
                }
                if let start = healthySince, now - start < soak {
                    if written.wait(milliseconds: 50, stop: stop) == .stopped { throw ExitCode(130) }
                    continue
                }
            }
            guard case .waiting(let apps) = verdict else { break }
            if format == .table {
                for (app, what) in apps.sorted(by: { $0.key < $1.key }) where shown[app] != what {
                    Terminal.print("waiting for \(app.isEmpty ? "" : "\(app): ")\(what)")
                }
                if current.reconcilerPid == nil && shown.isEmpty { Terminal.print("note: no reconciler is running on this state directory; nothing will change until one does") }
            }
            shown = apps
            if Clock.monotonicMilliseconds() >= deadline { break }
            if written.wait(milliseconds: 50, stop: stop) == .stopped { throw ExitCode(130) }
        }
        let (result, message) = Self.outcome(verdict, condition, names: condition.apps.isEmpty ? (report?.apps.map(\.name) ?? []) : condition.apps,
                                             since: since, timeout: timeout, soakMilliseconds: soakMilliseconds)
        if format == .json {
            Terminal.print(JSON.object([("result", .string(result)), ("message", .string(message)),
                                        ("apps", .array((report?.apps ?? []).filter { condition.apps.isEmpty || condition.apps.contains($0.name) }.map(\.json)))]).pretty)
        } else if verdict == .done {
            Terminal.print(message)
        } else {
            Terminal.error("error: \(message)")
        }
        if verdict.exitCode != 0 { throw ExitCode(verdict.exitCode) }
    }

    /// The result word and message a verdict ends with.
    static func outcome(_ verdict: WaitVerdict, _ condition: WaitCondition, names: [String], since: OID, timeout: Duration, soakMilliseconds: Int64?) -> (String, String) {
        switch verdict {
        case .done:
            let what = [condition.synced ? "\(names.count == 1 ? "runs" : "run") the desired state of \(since.short)" : nil,
                        condition.healthy ? "healthy" : nil,
                        soakMilliseconds.map { "through a soak of \(Duration(milliseconds: $0))" }].compactMap { $0 }.joined(separator: ", ")
            return ("done", "\(names.joined(separator: ", ")): " + what)
        case .waiting(let apps):
            return ("timeout", "timed out after \(timeout) waiting for " + apps.sorted(by: { $0.key < $1.key }).map { "\($0.key): \($0.value)" }.joined(separator: "; "))
        case .failed(_, let why):
            return ("failed", why)
        case .needsHuman(let why):
            return ("needs-human", "a human must act: \(why)")
        }
    }
}

/// `--soak` with a duration, or alone (`policy`): rewind.yaml's policy.soak.
struct SoakWindow: ExpressibleByArgument {
    /// nil: policy.soak of the tip's rewind.yaml.
    let duration: Duration?

    init?(argument: String) {
        if argument == "policy" {
            duration = nil
            return
        }
        guard let value = Duration(argument: argument) else { return nil }
        duration = value
    }

    var defaultValueDescription: String { "policy" }

    func milliseconds(_ repo: DeployRepository, tip: OID) throws -> Int64 {
        if let duration { return duration.milliseconds }
        return try repo.config(tree: repo.git.commit(tip).tree).policy.soak.milliseconds
    }

    /// `--soak` takes an optional value, which ArgumentParser cannot say:
    /// a bare `--soak` (last, or before an option or an app) becomes `--soak policy`.
    static func expandBareFlag(_ arguments: [String]) -> [String] {
        var out: [String] = []
        for (index, argument) in arguments.enumerated() {
            out.append(argument)
            guard argument == "--soak" else { continue }
            let next = index + 1 < arguments.count ? arguments[index + 1] : nil
            if next.map({ $0 != "policy" && Duration(argument: $0) == nil }) ?? true { out.append("policy") }
        }
        return out
    }
}

extension WaitOptions {
    /// These options as ArgumentParser would read them (QuickLine).
    static func quick(_ line: inout QuickLine) -> Self {
        var options = Self()
        options.timeout = line.option("--timeout") ?? Self.defaultTimeout
        options.stateDir = line.option("--state-dir")
        return options
    }
}
