import ArgumentParser
import DeployModel
import FoundationEssentials
import ReconcilerStatus
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
    var timeout = Duration(milliseconds: 30_000)

    @Option(help: "Output format: table (text) or json.")
    var format: OutputFormat = .table

    @OptionGroup var repoOptions: RepoOptions

    func validate() throws {
        if let reason, reason.utf8.count > Bounded.maxReasonLength { throw ValidationError("--reason is longer than \(Bounded.maxReasonLength) bytes") }
        if let actor, actor.isEmpty || actor.utf8.count > 256 || actor.contains(where: { $0.isNewline || $0 == " " }) {
            throw ValidationError("--actor must be one word of at most 256 bytes, such as dana@example.com")
        }
    }

    func send(_ action: RolloutRequest.Action) throws {
        try runReporting(format: format) {
            let repo = try repoOptions.openWithMirror(sync: false).repo
            let store = StateStore(repo, directory: stateDir)
            guard let config = try? DesiredState.load(repo, commit: repo.tip()).config, config.app(named: app) != nil else {
                throw RewindError(.notFound, "no app '\(Bounded.text(app, limit: 64))' in the tip's rewind.yaml", hint: "`rewind status` lists the apps")
            }
            guard store.runningPid() != nil else {
                throw RewindError(.refused, "no reconciler runs on \(store.directory): a rollout moves only while one runs",
                                  hint: "start `rewind reconcile` (or `rewind serve`) on this repository, or pass --state-dir")
            }
            let user = Environment.value("USER") ?? "operator"
            let request = RolloutRequest(id: ProcessProbe.launchToken(), action: action, reason: reason, actor: actor ?? "\(user)@\(Clock.hostName())")
            try store.post(request, app: app)
            let deadline = Clock.monotonicMilliseconds() + timeout.milliseconds
            while Clock.monotonicMilliseconds() < deadline {
                if let answer = store.answer(to: request.id, app: app) { return try report(answer, action) }
                Clock.sleep(milliseconds: 20)
            }
            store.withdraw(app: app)
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
