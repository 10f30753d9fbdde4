@testable import DeployModel
import GitKit
import Platforms
@testable import Reconciler
import ReconcilerStatus
import Testing

/// `reduce` is pure: a state and an outcome give the next state and the
/// effects that follow, with no reconciler, repository or clock.
@Suite struct ReduceTests {
    let instance = Instance(tree: OID(hex: String(repeating: "a", count: 40))!, commit: OID(hex: String(repeating: "b", count: 40))!, version: "1.0.0", pid: 42, port: 8080, startedAt: 0)

    func names(_ effects: [Effect]) -> [String] {
        effects.map { effect in
            switch effect {
            case .followProxy(let app): return "proxy \(app)"
            case .log(let level, _): return "log \(level)"
            case .readFailed(_, let logged): return "readFailed logged=\(logged)"
            case .readSucceeded: return "readSucceeded"
            case .probeNow(let app): return "probe \(app)"
            default: return "\(effect)".components(separatedBy: "(").first ?? "?"
            }
        }
    }

    @Test func aRestartIsScheduledAfterItsBackoffAndLogged() {
        var state = ReconcilerState()
        state.apps["api"] = AppState()
        state.apps["api"]?.instance = instance
        state.apps["api"]?.health = .healthy
        let r = Reconciler.reduce(state, .supervision(.restarting(app: "api", why: "exited with status 1", backoffMilliseconds: 2_000, exits: [900])), now: 1_000)
        let app = r.state.apps["api"]
        #expect(app?.health == .restarting)
        #expect(app?.nextRestartAt == 3_000)
        #expect(app?.restarts == 1 && app?.exits == [900])
        #expect(app?.lastError == "exited with status 1; restarting in 2s")
        #expect(names(r.effects) == ["log warning"], "an app without a proxy has no proxy to follow")
        #expect(state.apps["api"]?.health == .healthy, "the state passed in is unchanged")
    }

    @Test func theProxyFollowsAChangeOfAnAppBehindItButNotItsOwnProblem() {
        var state = ReconcilerState()
        var app = AppState()
        app.instance = instance
        app.traffic = TrafficSettings(listenPort: 9000, strategy: .canary)
        state.apps["web"] = app
        let release = OID(hex: String(repeating: "c", count: 40))!
        #expect(names(Reconciler.reduce(state, .release(.running(app: "web", release: release)), now: 0).effects) == ["proxy web"])
        let problem = Reconciler.reduce(state, .traffic(.problem(app: "web", "proxy: refused")), now: 0)
        #expect(problem.state.apps["web"]?.trafficError == "proxy: refused")
        #expect(names(problem.effects).isEmpty, "the outcome of a sync does not sync again")
        // Nothing changed: nothing follows.
        #expect(names(Reconciler.reduce(state, .release(.pending(app: "web", nil)), now: 0).effects).isEmpty)
    }

    @Test func aBranchThatCannotBeReadIsLoggedOnceAndClearedByTheNextRead() {
        let first = Reconciler.reduce(ReconcilerState(), .gate(.observe, .retry("connection refused"), tip: nil, apps: ""), now: 0)
        #expect(first.state.lastError == "connection refused")
        #expect(names(first.effects) == ["readFailed logged=true"])
        let again = Reconciler.reduce(first.state, .gate(.observe, .retry("connection refused"), tip: nil, apps: ""), now: 0)
        #expect(names(again.effects) == ["readFailed logged=false"])
        let read = Reconciler.reduce(again.state, .gate(.observe, .proceed, tip: nil, apps: ""), now: 0)
        #expect(read.state.lastError == nil)
        #expect(names(read.effects) == ["readSucceeded"])
    }

    @Test func aFailedReleaseIsRecordedNotedAndCountedOnce() {
        var state = ReconcilerState()
        state.apps["api"] = AppState()
        let release = OID(hex: String(repeating: "d", count: 40))!
        let tree = OID(hex: String(repeating: "e", count: 40))!
        let r = Reconciler.reduce(state, .release(.failed(Failure(app: "api", release: release, reason: "not healthy within 1s"), tree: tree, version: "2.0.0")), now: 5)
        let app = r.state.apps["api"]
        #expect(app?.health == .failed && app?.failedTree == tree && app?.undecidedFailure == release)
        #expect(names(r.effects) == ["note", "releaseApplied", "notify", "log error"])
        guard case .notify(let event, _) = r.effects[2] else { Issue.record("no notification"); return }
        #expect(event.kind == .releaseFailed && event.release == release.hex && event.reason == "api 2.0.0: not healthy within 1s", "\(event)")
        guard case .note(let entries, let on) = r.effects.first else { Issue.record("no note"); return }
        #expect(on == release && entries.first?.summary.contains("version=2.0.0") == true, "\(entries)")
    }

    @Test func aRestartedProcessIsProbedAtOnce() {
        let r = Reconciler.reduce(ReconcilerState(), .supervision(.restarted(app: "api", instance)), now: 0)
        #expect(r.state.apps["api"]?.health == .starting)
        #expect(names(r.effects) == ["probe api", "log info"])
    }
}
