import DeployModel
import GitKit
import Rollback
import SystemSupport

/// What the automatic rollback policy decided for a failed release.
enum AutoRollbackDecision: Equatable {
    case rollback(to: KnownGood)
    /// Not rolled back; the reason says why, and a human takes over.
    case escalate(String)
}

/// The policy of DESIGN.md, as a pure function of its inputs.
struct AutoRollbackPolicy {
    let policy: RollbackPolicy

    /// - Parameters:
    ///   - releaseTime: when the failed release was committed (seconds).
    ///   - isRollback: the failed release is itself a rollback.
    ///   - lastGood: the release that ran healthy before it.
    ///   - recent: times of automatic rollbacks of this app in the last hour (seconds).
    func decide(app: String, releaseTime: Int64, isRollback: Bool, failedTree: String, lastGood: KnownGood?, recent: [Int64], now: Int64) -> AutoRollbackDecision {
        if isRollback {
            return .escalate("rollback did not recover: likely not caused by the release; a human is needed (automation never rolls back a rollback)")
        }
        let age = now - releaseTime
        if age * 1000 > policy.window.milliseconds {
            return .escalate("not rolled back automatically: the release is \(Duration(milliseconds: age * 1000)) old, older than the policy window of \(policy.window)")
        }
        guard let lastGood, lastGood.tree != failedTree else {
            return .escalate("not rolled back automatically: no earlier healthy release of \(app) is known to return to")
        }
        if let last = recent.max(), (now - last) * 1000 < policy.cooldown.milliseconds {
            return .escalate("not rolled back automatically: the last automatic rollback of \(app) was \(Duration(milliseconds: (now - last) * 1000)) ago, within the cooldown of \(policy.cooldown)")
        }
        if recent.count >= policy.maxPerHour {
            return .escalate("not rolled back automatically: \(recent.count) automatic rollbacks of \(app) in the last hour reach maxPerHour (\(policy.maxPerHour))")
        }
        return .rollback(to: lastGood)
    }
}

extension Reconciler {
    /// Step 8: rolls a failed release back by commit when the policy allows,
    /// through the same code as `rewind rollback`. True when a commit was written.
    func automaticRollback(_ failure: Failure) -> Bool {
        guard let desired, let commit = try? repo.git.commit(failure.release) else { return false }
        let name = failure.app
        let app = state.apps[name] ?? AppState()
        let now = Clock.wallMilliseconds()
        update(name) { $0.lastRollback = RollbackTimeline(failedRelease: failure.release.hex, failedAt: now, reason: failure.reason) }
        let decision = AutoRollbackPolicy(policy: desired.config.policy).decide(
            app: name, releaseTime: commit.committer.time, isRollback: isRollback(commit), failedTree: app.failedTree ?? "",
            lastGood: app.lastGood, recent: recentAutomaticRollbacks(of: name, since: now / 1000 - 3600), now: now / 1000)
        switch decision {
        case .escalate(let why):
            escalate(failure, why)
            return false
        case .rollback(let good):
            return writeRollback(failure, to: good)
        }
    }

    private func writeRollback(_ failure: Failure, to good: KnownGood) -> Bool {
        let name = failure.app
        flushNotes()
        guard let target = OID(hex: good.commit) else { return false }
        var request = RollbackRequest(.rollback(apps: [name], all: false, to: .revision(target.hex)), reason: "\(name) release \(failure.release.short) failed: \(failure.reason)")
        request.trigger = .analysis
        request.artifactRoot = options.artifactRoot
        do {
            // A handle of its own: the writer keeps new objects in memory
            // for the rest of its handle's life, and the notes this
            // reconciler writes later must reach the disk.
            let writerRepo = try DeployRepository(path: options.repoPath, branch: repo.branchRef)
            switch try CommitWriter(repo: writerRepo).run(request) {
            case .written(let written?, _, _):
                let now = Clock.wallMilliseconds()
                update(name) { app in
                    app.lastRollback?.rollbackCommit = written.hex
                    app.lastRollback?.committedAt = now
                }
                note([NoteRecorder.Entry(outcome: "rolled-back", app: name, fields: [("by", written.short), ("to", good.version)])], on: failure.release)
                logger.notice("rolled back \(name) to \(good.version) with commit \(written.short)")
                return true
            case .written(nil, _, _):
                return false
            case .alreadyDone(let why):
                logger.info("no automatic rollback of \(name): \(why)")
                return false
            }
        } catch let error as RewindError {
            escalate(failure, "automatic rollback refused: \(error.message)\(error.hint.map { " (\($0))" } ?? "")")
            return false
        } catch {
            escalate(failure, "automatic rollback failed: \(error)")
            return false
        }
    }

    private func escalate(_ failure: Failure, _ why: String) {
        update(failure.app) { $0.needsHuman = why }
        note([NoteRecorder.Entry(outcome: "escalated", app: failure.app, fields: [("reason", why)])], on: failure.release)
        logger.critical("\(failure.app): \(why)")
    }

    /// Commit times (seconds) of automatic rollbacks (any trigger but manual)
    /// of `app` on the branch since `since`.
    func recentAutomaticRollbacks(of app: String, since: Int64) -> [Int64] {
        var times: [Int64] = []
        var next = try? repo.tip()
        var steps = 0
        while let id = next, steps < 5_000, let commit = try? repo.git.commit(id), commit.committer.time >= since {
            if let trailers = RollbackTrailers.parse(commit.message), trailers.trigger != .manual, trailers.apps.contains(app) {
                times.append(commit.committer.time)
            }
            next = commit.parents.first
            steps += 1
        }
        return times
    }
}
