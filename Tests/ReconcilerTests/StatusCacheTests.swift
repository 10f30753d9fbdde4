import Foundation
import Testing
import ReconcilerStatus
import TestSupport
import SystemSupport
import Rollback
@testable import Reconciler

/// `rewind serve` builds a status for every page, request and event with a
/// `StatusCache`: it must say exactly what a fresh build says, including
/// right after an app's state file changes.
@Suite struct StatusCacheTests {
    @Test func aCachedStatusIsTheFreshOneEvenAfterAStateFileChanges() throws {
        try withFixtureRepo("three-apps") { fixture in
            try withTemporaryDirectory { dir in
                let repo = try DeployRepository(path: fixture.path, branch: nil)
                let store = StateStore(directory: dir)
                var state = ReconcilerState()
                for (name, health) in [("api", Health.healthy), ("worker", .healthy), ("web", .starting)] {
                    var app = AppState()
                    app.health = health
                    state.apps[name] = app
                }
                try store.save(state, previous: nil)
                // Old files (cached), then one rewritten now (read again).
                let past = Date().addingTimeInterval(-10)
                for name in ["api", "worker", "web"] { try FileManager.default.setAttributes([.modificationDate: past], ofItemAtPath: "\(dir)/apps/\(name).json") }
                let cache = StatusCache()
                let health = { (report: StatusReport) in report.apps.map { "\($0.name)=\($0.health.rawValue)" } }
                let first = try StatusReport.build(repo: repo, stateDirectory: dir, cache: cache)
                #expect(health(first) == health(try StatusReport.build(repo: repo, stateDirectory: dir)))
                var next = state
                next.apps["api"]?.health = .failed
                try store.save(next, previous: state)
                let cached = try StatusReport.build(repo: repo, stateDirectory: dir, cache: cache)
                #expect(health(cached) == ["api=failed", "worker=healthy", "web=starting"])
                #expect(health(cached) == health(try StatusReport.build(repo: repo, stateDirectory: dir)))
                // A new tip: the desired state is parsed again.
                try fixture.git("commit", "-q", "--allow-empty", "-m", "empty")
                let moved = try StatusReport.build(repo: repo, stateDirectory: dir, cache: cache)
                #expect(moved.tip == (try fixture.tip()))
            }
        }
    }
}
