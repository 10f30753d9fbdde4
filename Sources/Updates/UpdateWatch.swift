import Artifacts
import DeployModel
import GitKit
import Logging
import ReconcilerStatus
import Rollback
import Synchronization
import SystemSupport

/// `serve`'s watch of every app's `updates:`, on a thread of its own: each
/// app is checked when its interval has passed, and at once when the
/// registry reports a push to its repository (`POST /hooks/registry`).
/// Each check's result is kept in `<state>/updates.json` for status and
/// the UI.
public final class UpdateWatch: Sendable {
    let repoPath: String
    let branch: String?
    let stateDirectory: String?
    let artifacts: ArtifactStore
    let logger: Logger
    /// Called after an update commit is written (a mirror pushes it).
    let onWrite: @Sendable () -> Void
    /// Called when a check writes (or proposes on a branch) a new update: the app and the check.
    let onProposed: @Sendable (String, UpdateCheck) -> Void
    /// Repositories a notification named since the loop last looked.
    private let pushed = Mutex<Set<String>>([])
    private let changes = Atomic<Int>(0)

    public init(repoPath: String, branch: String?, stateDirectory: String?, artifacts: ArtifactStore, logger: Logger, onWrite: @escaping @Sendable () -> Void = {},
                onProposed: @escaping @Sendable (String, UpdateCheck) -> Void = { _, _ in }) {
        (self.repoPath, self.branch, self.stateDirectory, self.artifacts, self.logger, self.onWrite) = (repoPath, branch, stateDirectory, artifacts, logger, onWrite)
        self.onProposed = onProposed
    }

    /// A push to `repository` (`team/api`): the apps that follow it are
    /// checked at once. Returns at once.
    public func notify(repository: String) {
        pushed.withLock { _ = $0.insert(repository) }
        changes.add(1, ordering: .releasing)
    }

    /// Starts the loop on a background thread; it ends when `stop` is requested.
    public func start(stop: any StopCondition) {
        BackgroundThread.start { self.run(stop: stop) }
    }

    /// How soon a check that found the current release still soaking runs again.
    static let waitingRecheck: Int64 = 5_000

    /// How soon a check that failed (the registry down, or a tag it lists
    /// before it serves the manifest, as during a push) runs again: 1 s, 2 s... up to the interval.
    static let failedRecheck = Backoff(base: 1_000, cap: 3_600_000)

    /// What the loop knows of one app between checks.
    struct Watched {
        var policy: UpdatePolicy
        var due: Int64
        var last: UpdateCheck.State?
        /// Checks in a row that failed.
        var failures = 0
    }

    /// Runs until `stop` is requested, on the calling thread.
    public func run(stop: any StopCondition) {
        let repo: DeployRepository
        do {
            repo = try DeployRepository(path: repoPath, branch: branch)
        } catch {
            logger.error("updates: cannot open the repository: \(error)")
            return
        }
        let store = StateStore(repo, directory: stateDirectory)
        let proposer = UpdateProposer(repo: repo, store: store, artifacts: artifacts)
        var watched: [String: Watched] = [:]
        var seenTip: OID?
        var seenChanges = -1
        while !stop.requested {
            let now = Clock.monotonicMilliseconds()
            if let tip = try? repo.tip(), tip != seenTip {
                seenTip = tip
                watched = policies(repo, tip: tip, keeping: watched, now: now)
            }
            let count = changes.load(ordering: .acquiring)
            if count != seenChanges {
                seenChanges = count
                let repositories = pushed.withLock { all in defer { all.removeAll() }; return all }
                for (name, item) in watched where repositories.contains(item.policy.repository.repository) { watched[name]?.due = now }
            }
            for name in watched.keys.sorted() {
                guard let item = watched[name], item.due <= now, !stop.requested else { continue }
                let check = proposer.check(name)
                store.recordUpdateCheck(app: name, check)
                if check.state != item.last || check.state == .proposed { log(name, check) }
                if check.state == .proposed {
                    onWrite()
                    if !check.message.hasPrefix("already proposed") { onProposed(name, check) }
                }
                watched[name]?.last = check.state
                watched[name]?.failures = check.state == .failed ? item.failures + 1 : 0
                watched[name]?.due = Clock.monotonicMilliseconds() + Self.recheck(after: check.state, failures: item.failures + 1, interval: item.policy.interval.milliseconds)
            }
            _ = stop.wait(milliseconds: 20)
        }
    }

    /// When the next check runs: a version that waits for a soak to end is
    /// proposed soon after it ends, and a failed check is tried again soon,
    /// not a whole interval later.
    static func recheck(after state: UpdateCheck.State, failures: Int, interval: Int64) -> Int64 {
        switch state {
        case .waiting: min(interval, waitingRecheck)
        case .failed: min(interval, failedRecheck.delay(attempt: failures))
        default: interval
        }
    }

    /// The apps with `updates:` at `tip`; an app already watched keeps its
    /// next check unless its policy changed. A tip whose rewind.yaml does
    /// not parse keeps what was watched.
    private func policies(_ repo: DeployRepository, tip: OID, keeping old: [String: Watched], now: Int64) -> [String: Watched] {
        guard let tipTree = try? repo.git.commit(tip).tree, let config = try? repo.config(tree: tipTree) else { return old }
        var result: [String: Watched] = [:]
        for app in config.apps {
            guard let tree = try? repo.appTree(app, in: tipTree), let policy = repo.appSpec(appTree: tree, app: app)?.updates else { continue }
            if let known = old[app.name], known.policy == policy {
                result[app.name] = known
            } else {
                result[app.name] = Watched(policy: policy, due: now, last: nil)
            }
        }
        return result
    }

    private func log(_ app: String, _ check: UpdateCheck) {
        switch check.state {
        case .proposed: logger.notice("updates: \(app): \(check.message)")
        case .failed: logger.warning("updates: \(app): \(check.message)")
        default: logger.info("updates: \(app): \(check.state.rawValue): \(check.message)")
        }
    }
}
