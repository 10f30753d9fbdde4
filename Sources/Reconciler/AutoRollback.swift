import DeployModel
import GitKit
import Rollback
import SystemSupport

/// What the automatic rollback policy decided for a failed release.
public enum AutoRollbackDecision: Equatable, Sendable {
    case rollback(to: KnownGood?)
    /// Not rolled back; the reason says why, and a human takes over.
    case escalate(String)
}

/// The policy of DESIGN.md, as a pure function of its inputs.
public struct AutoRollbackPolicy: Sendable {
    public let policy: RollbackPolicy

    /// The policy of a rewind.yaml.
    public init(policy: RollbackPolicy) { self.policy = policy }

    /// - Parameters:
    ///   - releaseTime: when the failed release was committed (seconds).
    ///   - isRollback: the failed release is itself a rollback.
    ///   - lastGood: the release that ran healthy before it.
    ///   - recent: times of automatic rollbacks of this app in the last hour (seconds).
    ///   - requireKnownGood: escalate when no earlier healthy release is known
    ///     (the reconciler); false lets the rollback choose its default target (alerts).
    public func decide(app: String, releaseTime: Int64, isRollback: Bool, failedTree: String, lastGood: KnownGood?, recent: [Int64], now: Int64,
                       requireKnownGood: Bool = true) -> AutoRollbackDecision {
        if isRollback {
            return .escalate("rollback did not recover: likely not caused by the release; a human is needed (automation never rolls back a rollback)")
        }
        let age = now - releaseTime
        if age * 1000 > policy.window.milliseconds {
            return .escalate("not rolled back automatically: the release is \(Duration(milliseconds: age * 1000)) old, older than the policy window of \(policy.window)")
        }
        if requireKnownGood && (lastGood == nil || lastGood?.tree == failedTree) {
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

/// What the branch's history says about automatic rollbacks and releases.
public enum RollbackHistory {
    /// Commit times (seconds) of automatic rollbacks (any trigger but manual)
    /// of `app` on the branch since `since`.
    public static func automaticRollbacks(_ repo: DeployRepository, app: String, since: Int64) -> [Int64] {
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

    /// The commit that introduced `tree` for this app: the oldest commit of
    /// the run of first-parent commits ending at `tip` that all have it.
    public static func releaseCommit(_ repo: DeployRepository, _ ref: AppRef, tree: OID, tip: OID) -> OID {
        var commit = tip
        for _ in 0..<10_000 {
            guard let parent = try? repo.git.commit(commit).parents.first,
                  let parentTree = try? repo.git.commit(parent).tree,
                  (try? repo.appTree(ref, in: parentTree)) == tree else { break }
            commit = parent
        }
        return commit
    }

    /// True for a rollback commit: Rewind's trailers (but unpin), or git's revert message.
    public static func isRollback(_ commit: Commit) -> Bool {
        if let trailers = RollbackTrailers.parse(commit.message) { return trailers.action != .unpin }
        return RollbackTrailers.gitRevertTarget(commit.message) != nil
    }
}

extension Reconciler {
    /// Step 8 for one failure (supervision, analysis): see `automaticRollback(_:)` for several.
    func automaticRollback(_ failure: Failure) -> Bool { automaticRollback([failure]) }

    /// Step 8: every failure found together (one pass over a release, one
    /// round of supervision) goes to the policy, through the same code as
    /// `rewind rollback`. The apps it allows are rolled back by **one**
    /// commit, a target for each; each app it refuses, or whose rollback a
    /// guard refuses, is escalated with the reason. No failed app is left
    /// behind unsaid. True when a commit was written.
    func automaticRollback(_ failures: [Failure]) -> Bool {
        guard let desired else { return false }
        var approved: [(failure: Failure, good: KnownGood)] = []
        for failure in failures {
            guard let commit = try? repo.git.commit(failure.release) else { continue }
            let name = failure.app
            let app = state.apps[name] ?? AppState()
            let now = clock.wallMilliseconds()
            update(name) { $0.lastRollback = RollbackTimeline(failedRelease: failure.release.hex, failedAt: now, reason: failure.reason) }
            let decision = AutoRollbackPolicy(policy: desired.config.policy).decide(
                app: name, releaseTime: commit.committer.time, isRollback: isRollback(commit), failedTree: app.failedTree ?? "",
                lastGood: app.lastGood, recent: RollbackHistory.automaticRollbacks(repo, app: name, since: now / 1000 - 3600), now: now / 1000)
            switch decision {
            case .escalate(let why): escalate(failure, why)
            case .rollback(let good?): approved.append((failure, good))
            case .rollback(nil): continue
            }
        }
        guard !approved.isEmpty else {
            decided(failures)
            return false
        }
        flushNotes()
        TestHook.killPoint("before-rollback-commit")
        defer { decided(failures) }
        return writeRollback(approved)
    }

    /// The failures' rollbacks are decided (written, already done, or escalated).
    private func decided(_ failures: [Failure]) {
        for failure in failures where state.apps[failure.app]?.undecidedFailure == failure.release.hex {
            update(failure.app) { $0.undecidedFailure = nil }
        }
    }

    private func request(for approved: [(failure: Failure, good: KnownGood)]) -> RollbackRequest {
        let names = approved.map(\.failure.app)
        let reason = approved.map { "\($0.failure.app) release \($0.failure.release.short) failed: \($0.failure.reason)" }.joined(separator: "; ")
        let targets = approved.count == 1 ? TargetSpec.revision(approved[0].good.commit)
                                          : .perApp(Dictionary(approved.map { ($0.failure.app, $0.good.commit) }, uniquingKeysWith: { a, _ in a }))
        var request = RollbackRequest(.rollback(apps: names, all: false, to: targets), reason: reason)
        request.trigger = .analysis
        request.artifactRoot = options.artifactRoot
        request.undoing = Dictionary(approved.map { ($0.failure.app, $0.failure.release.hex) }, uniquingKeysWith: { a, _ in a })
        return request
    }

    private func writeRollback(_ candidates: [(failure: Failure, good: KnownGood)]) -> Bool {
        do {
            // A handle of its own: the writer keeps new objects in memory
            // for the rest of its handle's life, and the notes this
            // reconciler writes later must reach the disk.
            let writerRepo = try DeployRepository(path: options.repoPath, branch: repo.branchRef)
            var writer = CommitWriter(repo: writerRepo)
            writer.limits = options.limits
            var approved = candidates
            if approved.count > 1 {
                // One app's guard must not hold back the others: plan each
                // alone first, and escalate the ones refused.
                approved = approved.filter { candidate in
                    do {
                        _ = try writer.run(request(for: [candidate]), dryRun: true)
                        return true
                    } catch {
                        escalate(candidate.failure, refusal(error))
                        return false
                    }
                }
                guard !approved.isEmpty else { return false }
            }
            switch try writer.run(request(for: approved)) {
            case .written(let written?, _, _):
                recordRollback(approved, commit: written)
                return true
            case .written(nil, _, _):
                return false
            case .alreadyDone(let why):
                for (failure, _) in approved {
                    options.observer.automaticRollback(app: failure.app, trigger: "analysis", outcome: "already-done", millisecondsToCommit: nil)
                    logger.info("no automatic rollback of \(failure.app): \(why)")
                }
                return false
            }
        } catch {
            for (failure, _) in candidates { escalate(failure, refusal(error)) }
            return false
        }
    }

    private func refusal(_ error: any Error) -> String {
        if let error = error as? RewindError { return "automatic rollback refused: \(error.message)\(error.hint.map { " (\($0))" } ?? "")" }
        return "automatic rollback failed: \(error)"
    }

    /// The commit's timings, notes and notifications, for each app it rolled back.
    private func recordRollback(_ approved: [(failure: Failure, good: KnownGood)], commit written: OID) {
        let now = clock.wallMilliseconds()
        for (failure, good) in approved {
            let name = failure.app
            update(name) { app in
                app.lastRollback?.rollbackCommit = written.hex
                app.lastRollback?.committedAt = now
            }
            note([NoteRecorder.Entry(outcome: .rolledBack, app: name, fields: [("by", written.short), ("to", good.version)])], on: failure.release)
            options.observer.automaticRollback(app: name, trigger: "analysis", outcome: "committed",
                                               millisecondsToCommit: state.apps[name]?.lastRollback.map { now - $0.failedAt })
            logger.notice("rolled back \(name) to \(good.version) with commit \(written.short)")
            options.notifier?.send(RollbackEvent(.started, app: name, trigger: "analysis", commit: written.hex, reason: failure.reason))
        }
        options.onWrite()
    }

    private func escalate(_ failure: Failure, _ why: String) {
        update(failure.app) { $0.needsHuman = why }
        options.observer.automaticRollback(app: failure.app, trigger: "analysis", outcome: "escalated", millisecondsToCommit: nil)
        if let commit = try? repo.git.commit(failure.release), isRollback(commit) {
            options.notifier?.send(RollbackEvent(.failed, app: failure.app, trigger: "analysis", commit: failure.release.hex, reason: failure.reason))
        }
        options.notifier?.send(RollbackEvent(.escalated, app: failure.app, trigger: "analysis", commit: failure.release.hex, reason: why))
        note([NoteRecorder.Entry(outcome: .escalated, app: failure.app, fields: [("reason", why)])], on: failure.release)
        logger.critical("\(failure.app): \(why)")
    }
}
