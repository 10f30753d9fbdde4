@testable import DeployModel
import GitKit
import Platforms
@testable import Reconciler
import ReconcilerStatus
import Rollback
import Foundation
import Testing

/// The rollout controller's decisions are pure: an app's state, its
/// settings and the time give the steps to record and do, in order.
@Suite struct RolloutControllerTests {
    static func oid(_ c: Character) -> OID { OID(hex: String(repeating: c, count: 40))! }
    let stable = Instance(tree: oid("1"), commit: oid("2"), version: "1.0.0", pid: 41, port: 8080, startedAt: 0)
    let canary = Instance(tree: oid("3"), commit: oid("4"), version: "2.0.0", pid: 42, port: 8081, startedAt: 0)
    let release = oid("4")

    func app(_ strategy: TrafficSettings.Strategy = .canary, step: Int = 0, weight: Int = 10, startedAt: Int64 = 1_000, pausedAt: Int64? = nil) -> AppState {
        var app = AppState()
        app.instance = canary
        app.release = release
        app.health = .healthy
        app.rollout = Rollout(strategy: strategy, stable: stable, stableRelease: Self.oid("2"), step: step, weight: weight, stepStartedAt: startedAt)
        app.rollout?.pausedAt = pausedAt
        return app
    }

    var traffic: TrafficSettings {
        var traffic = TrafficSettings(listenPort: 9000, strategy: .canary)
        traffic.steps = [10, 50, 100]
        traffic.interval = Duration(milliseconds: 60_000)
        traffic.scaleDownDelay = Duration(milliseconds: 30_000)
        return traffic
    }

    static func label(_ step: Step) -> String {
        switch step {
        case .record(.traffic(.aborted(_, let stable, let stableRelease))): return "record aborted: \(stable.version) from \(stableRelease?.hex.prefix(1) ?? "-")"
        case .record(.traffic(.rollout(_, let rollout?, let note, _))):
            return "record rollout step \(rollout.step) at \(rollout.weight)% from \(rollout.stepStartedAt)\(rollout.paused ? " paused" : "") noting \(note?.outcome.rawValue ?? "-")"
        case .record(.traffic(.rollout(_, nil, let note, _))): return "record rollout ended noting \(note?.outcome.rawValue ?? "-") \(note?.summary ?? "")"
        case .record(.release(.failed(let failure, _, let version))): return "record failed \(version ?? "?"): \(failure.reason)"
        case .record(.release(.running(_, let release))): return "record running \(release.hex.prefix(1))"
        case .record(.rollback(.decided(let failure))): return "record decided \(failure.app)"
        case .record(.noted(let entries, let commit)): return "record note on \(commit.hex.prefix(1)): \(entries.map(\.summary).joined())"
        case .record(let outcome): return "record \(outcome)"
        case .retire(_, let instance): return "retire \(instance.version)"
        case let .takenOut(_, instance, stable, fields, _, detectedAt):
            return "taken out \(instance.version) for \(stable) since \(detectedAt): \(fields.map { "\($0.0)=\($0.1)" }.joined(separator: " "))"
        case .rollBack(let failures): return "roll back \(failures.map(\.app).joined())"
        case let .operatorRollback(_, target, undoing, request): return "operator rollback to \(target?.prefix(1) ?? "-") undoing \(undoing.hex.prefix(1)) by \(request.actor)"
        case .verify(_, let release): return "verify \(release.hex.prefix(1))"
        }
    }

    func labels(_ steps: [Step]) -> [String] { steps.map(Self.label) }

    @Test func anAutomaticAbortMovesTrafficFirstThenStopsTheCanaryThenFailsItsReleaseForThePolicy() {
        let steps = RolloutController.abort("api", app(), reason: "query errors = 0.2 > 0.05", detectedAt: 5_000, by: nil)
        #expect(labels(steps) == ["record aborted: 1.0.0 from 2", "taken out 2.0.0 for 1.0.0 since 5000: weight=10 version=2.0.0 reason=query errors = 0.2 > 0.05",
                                  "retire 2.0.0", "record failed 2.0.0: query errors = 0.2 > 0.05", "roll back api"])
    }

    @Test func anOperatorsAbortIsDecidedAndWritesTheOperatorsRollback() {
        let request = RolloutRequest(id: "r1", action: .abort, reason: "bad latency", actor: "alice")
        let steps = RolloutController.abort("api", app(), reason: "aborted by alice", detectedAt: 5_000, by: request)
        #expect(Array(labels(steps).suffix(3)) == ["record failed 2.0.0: aborted by alice: bad latency", "record decided api", "operator rollback to 2 undoing 4 by alice"])
    }

    @Test func aCanaryStepsAfterEachIntervalAndIsPromotedAfterItsLastStepBelow100() {
        #expect(labels(RolloutController.advance("api", app(), traffic, now: 60_999)).isEmpty, "not yet")
        #expect(labels(RolloutController.advance("api", app(), traffic, now: 61_000)) == ["record rollout step 1 at 50% from 61000 noting step"])
        #expect(labels(RolloutController.advance("api", app(step: 1, weight: 50), traffic, now: 61_000)) == [
            "record rollout ended noting promoted version=2.0.0 from=50%", "retire 1.0.0"])
        #expect(labels(RolloutController.advance("api", app(pausedAt: 2_000), traffic, now: 100_000)).isEmpty, "paused")
    }

    @Test func blueGreenIsPromotedAfterItsScaleDownDelay() {
        #expect(labels(RolloutController.advance("api", app(.blueGreen, weight: 100), traffic, now: 30_999)).isEmpty)
        #expect(labels(RolloutController.advance("api", app(.blueGreen, weight: 100), traffic, now: 31_000)) == [
            "record rollout ended noting promoted version=2.0.0 from=blue-green", "retire 1.0.0"])
    }

    @Test func aResumedCanaryKeepsTheTimeItHadLeftInItsStep() {
        let request = RolloutRequest(id: "r2", action: .pause, reason: nil, actor: "bob")
        #expect(labels(RolloutController.pause("api", app(), request, now: 20_000)) == ["record rollout step 0 at 10% from 1000 paused noting paused"])
        #expect(labels(RolloutController.pause("api", app(pausedAt: 20_000), request, now: 30_000)).isEmpty, "paused already")
        // Paused 40 s after its step began, resumed 100 s later: the step began 100 s later too.
        #expect(labels(RolloutController.resume("api", app(startedAt: 1_000, pausedAt: 41_000), request, now: 141_000)) == [
            "record rollout step 0 at 10% from 101000 noting resumed"])
        #expect(labels(RolloutController.resume("api", app(), request, now: 141_000)).isEmpty, "not paused")
    }

    @Test func aTipBackAtTheStableTreeSwitchesTrafficBackAndVerifiesTheRollback() {
        let rollback = Self.oid("9")
        #expect(labels(RolloutController.switchBack("api", app(), to: rollback)) == [
            "record aborted: 1.0.0 from 9", "retire 2.0.0", "record note on 4: weight=10 version=2.0.0 reason=the branch returned to 1.0.0",
            "record running 9", "verify 9"])
        #expect(labels(RolloutController.cancel("api", app())) == ["record aborted: 1.0.0 from 2", "retire 2.0.0"])
    }

    @Test func aRolloutsStableReleaseIsStoredAsTheHexStateFilesAlwaysHeld() throws {
        let rollout = try #require(app().rollout)
        let data = try JSONEncoder().encode(rollout)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("\"stableRelease\":\"\(Self.oid("2").hex)\""), "the form a String field wrote before: \(text)")
        #expect(try JSONDecoder().decode(Rollout.self, from: data) == rollout)
    }

    @Test func anAppWithoutARolloutGetsNoSteps() {
        var plain = app()
        plain.rollout = nil
        #expect(RolloutController.abort("api", plain, reason: "x", detectedAt: 0, by: nil).isEmpty)
        #expect(RolloutController.promote("api", plain, by: nil).isEmpty)
        #expect(RolloutController.advance("api", plain, traffic, now: 1_000_000).isEmpty)
    }
}
