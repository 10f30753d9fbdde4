import DeployModel
import FoundationEssentials
import GitKit
import Platforms
import ReconcilerStatus
import Rollback
import SystemSupport
import Traffic

/// `rewind promote`, `abort`, `pause` and `resume`: requests an operator
/// leaves in the state directory, answered by the reconciler between passes.
extension Reconciler {
    /// Answers the operators' requests left in the state directory.
    func answerRequests() {
        let mono = clock.monotonicMilliseconds()
        guard mono >= nextRequestLook else { return }
        nextRequestLook = mono + 100
        for file in FileIO.list(store.requestsDirectory) where file.hasSuffix(".json") && !file.hasSuffix(".answer.json") {
            let app = String(file.dropLast(5))
            let path = "\(store.requestsDirectory)/\(file)"
            guard let bytes = FileIO.read(path) else { continue }
            FileIO.removeTree(path)
            guard let request = try? JSONDecoder().decode(RolloutRequest.self, from: Data(bytes)) else {
                logger.warning("ignoring \(path): not a rollout request")
                continue
            }
            let answer = handle(request, app: app)
            // The notes it left are in git before the operator hears back.
            flushNotes()
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            if let data = try? encoder.encode(answer) { _ = FileIO.writeAtomically(store.answerFile(app), Array(data)) }
        }
    }

    private func handle(_ request: RolloutRequest, app name: String) -> RolloutAnswer {
        func answer(_ ok: Bool, _ message: String, commit: OID? = nil) -> RolloutAnswer { RolloutAnswer(id: request.id, ok: ok, message: message, commit: commit?.hex) }
        guard let app = state.apps[name], desired?.contains(name) == true else { return answer(false, "\(name) is not an app the reconciler runs") }
        guard let rollout = app.rollout, let instance = app.instance, app.release != nil else {
            return answer(false, "\(name) has no rollout in progress" + (app.traffic == nil ? " (its app.yaml has no traffic:)" : ""))
        }
        let now = clock.wallMilliseconds()
        logger.notice("\(name): \(request.action.rawValue) by \(request.actor)")
        switch request.action {
        case .promote:
            carryOut(RolloutController.promote(name, app, by: request))
            return answer(true, "\(name) \(instance.version) promoted: it takes all traffic, and \(rollout.stable.version) was stopped")
        case .abort:
            let commit = abortRollout(name, reason: "aborted by \(request.actor)", detectedAt: now, by: request)
            return answer(commit != nil, commit.map { "\(name) \(instance.version) aborted: \(rollout.stable.version) serves all traffic; rollback commit \($0.short)" }
                ?? "\(name) \(instance.version) was taken out of traffic, but the rollback commit could not be written (see the reconciler's log)", commit: commit)
        case .pause:
            guard !rollout.paused else { return answer(false, "\(name)'s rollout is paused already") }
            carryOut(RolloutController.pause(name, app, request, now: now))
            return answer(true, "\(name)'s rollout is paused at \(rollout.weight)% for \(instance.version); analysis goes on")
        case .resume:
            guard rollout.pausedAt != nil else { return answer(false, "\(name)'s rollout is not paused") }
            carryOut(RolloutController.resume(name, app, request, now: now))
            return answer(true, "\(name)'s rollout resumes at \(rollout.weight)% for \(instance.version)")
        }
    }

    /// The rollback commit of `rewind abort`: trigger manual, the operator as actor.
    func writeOperatorRollback(_ name: String, to target: String?, undoing: OID, request: RolloutRequest) -> OID? {
        var rollback = RollbackRequest(.rollback(apps: [name], all: false, to: target.map { .revision($0) }),
                                       reason: "abort of the \(name) rollout" + (request.reason.map { ": \($0)" } ?? ""),
                                       by: RequestAuthor(trigger: .manual, actor: request.actor, artifactRoot: options.artifactRoot, artifacts: rollbackArtifacts))
        rollback.undoing = [name: undoing.hex]
        do {
            flushNotes()
            var writer = CommitWriter(repo: try DeployRepository(path: options.repoPath, branch: repo.branchRef))
            writer.limits = options.limits
            guard case .written(let commit?, _, _) = try writer.run(rollback) else { return nil }
            options.onWrite()
            logger.notice("\(name): rollback commit \(commit.short) written for the abort")
            return commit
        } catch {
            escalate(Failure(app: name, release: undoing, reason: "aborted"), "the abort's rollback commit could not be written: \(error)")
            return nil
        }
    }

}
