import FoundationEssentials
import Hummingbird
import ReconcilerStatus
import Rollback
import SystemSupport

extension Routes {
    /// `POST /api/v1/apps/{app}/promote|abort|pause|resume` (operators):
    /// `rewind promote|abort|pause|resume APP` over HTTP. The request goes
    /// to serve's own reconciler, which acts within a tick and answers:
    /// 200 with its answer, 409 when it refuses (no rollout under way), 503
    /// when it does not answer within 30 s (the request is taken back).
    func addRolloutRoutes(_ router: Router<ServeContext>) {
        for action in RolloutRequest.Action.allCases {
            on(router, .post, "api/v1/apps/:app/\(action.rawValue)", "api/v1/apps/\(action.rawValue)", .write(.operator)) { request, context in
                let input = try RollbackInput.parse(try await body(request))
                guard let app = context.parameters.get("app"), let actor = context.actor else { throw RequestError(404, "no app in the path") }
                if input.to != nil || input.version != nil || input.force || input.dryRun {
                    throw RequestError(400, "\(action.rawValue) takes only 'reason' (no 'to', 'version', 'force' or 'dryRun')")
                }
                let id = try await desk.post(action, app: app, reason: input.reason, as: actor)
                let deadline = Clock.monotonicMilliseconds() + Self.rolloutAnswerTimeout
                while Clock.monotonicMilliseconds() < deadline {
                    if let answer = await desk.answer(to: id, app: app) {
                        return json(answer.ok ? 200 : 409, .object([("app", .string(app)), ("action", .string(action.rawValue)), ("ok", .bool(answer.ok)),
                                                                     ("message", .string(answer.message)), ("commit", .optional(answer.commit))]))
                    }
                    try await Task.sleep(for: .milliseconds(20))
                }
                await desk.withdraw(app: app)
                throw RequestError(503, "the reconciler did not answer the \(action.rawValue) of \(app) within \(Self.rolloutAnswerTimeout / 1000) s; nothing is asked of it any more")
            }
        }
    }

    static let rolloutAnswerTimeout: Int64 = 30_000
}

extension RollbackDesk {
    /// Leaves a rollout request for serve's reconciler; its id. 404 for an
    /// app the tip does not have.
    func post(_ action: RolloutRequest.Action, app: String, reason: String?, as actor: Actor) throws(RequestError) -> String {
        if let reason, reason.utf8.count > Bounded.maxReasonLength { throw RequestError(400, "'reason' is longer than \(Bounded.maxReasonLength) bytes") }
        _ = try appStatus(app)
        guard store.runningPid() != nil else { throw RequestError(409, "no reconciler runs on \(store.directory): a rollout moves only while one runs") }
        let request = RolloutRequest(id: ProcessProbe.launchToken(), action: action, reason: reason, actor: actor.name)
        do { try store.post(request, app: app) } catch { logger.error("\(error)"); throw RequestError(500, RequestError.publicText(error)) }
        return request.id
    }

    func answer(to id: String, app: String) -> RolloutAnswer? { store.answer(to: id, app: app) }

    func withdraw(app: String) { store.withdraw(app: app) }
}
