import ArgumentParser
import DeployModel
import FoundationEssentials
import Reconciler
import Rollback
import SystemSupport

/// What `rewind promote|abort|pause|resume` share: the request is left in
/// the running reconciler's state directory, which acts on it within a
/// tick and answers; the answer is printed.
struct RolloutControl: ParsableArguments {
    @Argument(help: "The app whose rollout to act on.", completion: AppNames.completion)
    var app: String

    @Option(help: "Why; recorded in the note (and, for abort, the rollback commit's Rewind-Reason).")
    var reason: String?

    @Option(help: "Who acts, recorded as the actor (default: $USER@host).")
    var actor: String?

    @Option(help: "The state directory (default: <git dir>/rewind/state).")
    var stateDir: String?

    @Option(help: "How long to wait for the reconciler's answer, e.g. 30s.")
    var timeout: String = "30s"

    @Option(help: "Output format: table (text) or json.")
    var format: OutputFormat = .table

    @OptionGroup var repoOptions: RepoOptions

    func validate() throws {
        guard Duration(parsing: timeout) != nil else { throw ValidationError("--timeout '\(timeout)' is not a duration (e.g. 30s)") }
        if let reason, reason.utf8.count > Bounded.maxReasonLength { throw ValidationError("--reason is longer than \(Bounded.maxReasonLength) bytes") }
        if let actor, actor.isEmpty || actor.utf8.count > 256 || actor.contains(where: { $0.isNewline || $0 == " " }) {
            throw ValidationError("--actor must be one word of at most 256 bytes, such as dana@example.com")
        }
    }

    func send(_ action: RolloutRequest.Action) throws {
        try runReporting(format: format) {
            let repo = try repoOptions.openWithMirror(sync: false).repo
            let store = StateStore(directory: stateDir ?? Reconciler.defaultStateDirectory(repo))
            guard let config = try? DesiredState.load(repo, commit: repo.tip()).config, config.app(named: app) != nil else {
                throw RewindError(.notFound, "no app '\(Bounded.text(app, limit: 64))' in the tip's rewind.yaml", hint: "`rewind status` lists the apps")
            }
            guard store.runningPid() != nil else {
                throw RewindError(.refused, "no reconciler runs on \(store.directory): a rollout moves only while one runs",
                                  hint: "start `rewind reconcile` (or `rewind serve`) on this repository, or pass --state-dir")
            }
            let user = Environment.value("USER") ?? "operator"
            let request = RolloutRequest(id: ProcessProbe.launchToken(), action: action, reason: reason, actor: actor ?? "\(user)@\(Clock.hostName())")
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            FileIO.makeDirectory(store.requestsDirectory)
            guard let data = try? encoder.encode(request), FileIO.writeAtomically(store.requestFile(app), Array(data)) else {
                throw RewindError(.internalFailure, "cannot write \(store.requestFile(app))", hint: "check that the state directory is writable")
            }
            let deadline = Clock.monotonicMilliseconds() + (Duration(parsing: timeout)?.milliseconds ?? 30_000)
            while Clock.monotonicMilliseconds() < deadline {
                if let bytes = FileIO.read(store.answerFile(app)), let answer = try? JSONDecoder().decode(RolloutAnswer.self, from: Data(bytes)), answer.id == request.id {
                    FileIO.removeTree(store.answerFile(app))
                    return try report(answer, action)
                }
                Clock.sleep(milliseconds: 20)
            }
            FileIO.removeTree(store.requestFile(app))
            throw RewindError(.contention, "the reconciler did not answer the \(action.rawValue) of \(app) within \(timeout)",
                              hint: "see the reconciler's log; nothing was asked of it any more")
        }
    }

    private func report(_ answer: RolloutAnswer, _ action: RolloutRequest.Action) throws {
        if format == .json {
            Terminal.print(JSON.object([("app", .string(app)), ("action", .string(action.rawValue)), ("ok", .bool(answer.ok)),
                                        ("message", .string(answer.message)), ("commit", .optional(answer.commit))]).pretty)
            if !answer.ok { throw ExitCode(1) }
            return
        }
        guard answer.ok else { throw RewindError(.refused, answer.message) }
        Terminal.print(answer.message)
    }
}

/// `rewind promote APP`.
struct PromoteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Skip a canary's remaining steps (or a blue-green's scaleDownDelay): the new version takes all traffic and the old one stops.")
    @OptionGroup var control: RolloutControl
    func run() throws { try control.send(.promote) }
}

/// `rewind abort APP`.
struct AbortCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "abort",
        abstract: "Take a rollout's new version out of traffic at once, then write the rollback commit (trigger manual).")
    @OptionGroup var control: RolloutControl
    func run() throws { try control.send(.abort) }
}

/// `rewind pause APP`.
struct PauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause",
        abstract: "Hold a rollout at its current weights (analysis goes on, and a breach still aborts).")
    @OptionGroup var control: RolloutControl
    func run() throws { try control.send(.pause) }
}

/// `rewind resume APP`.
struct ResumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Go on with a paused rollout: the step's remaining time runs again.")
    @OptionGroup var control: RolloutControl
    func run() throws { try control.send(.resume) }
}
