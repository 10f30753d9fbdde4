import DeployModel
import GitKit
import Remote
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

/// A release that failed, as `AutomaticRollback` takes it.
public struct FailedRelease: Sendable {
    public let app: String
    public let release: OID
    /// Why it failed, as notes and notifications say it.
    public let reason: String
    /// What the rollback commit's reason says of it.
    public let summary: String
    /// The release to return to; nil lets the rollback choose its default target.
    public let lastGood: KnownGood?
    /// The app's tree in the failed release.
    public let failedTree: String

    public init(app: String, release: OID, reason: String, summary: String, lastGood: KnownGood?, failedTree: String) {
        self.app = app
        self.release = release
        self.reason = reason
        self.summary = summary
        self.lastGood = lastGood
        self.failedTree = failedTree
    }
}

/// What became of one failed release.
public enum RollbackVerdict: Sendable, Equatable {
    /// Rolled back by this commit.
    case committed(OID)
    /// Someone rolled it back already (the reason says who).
    case alreadyDone(String)
    /// The policy did not allow it: a human takes over.
    case escalated(String)
    /// A guard or the planner refused the rollback: a human takes over.
    case refused(String)
    /// Git or the file system failed; trying again may work.
    case failed(String)
}

/// Where escalations are written down: the reconciler's state, or the alert
/// desk's escalations file; both add an `escalated` note.
public protocol EscalationLog {
    func escalated(_ failure: FailedRelease, _ why: String)
}

/// The one automatic rollback: the reconciler's failed releases and the
/// alert desk's firing alerts both come here. It decides each failure by
/// the policy (with the branch's history of automatic rollbacks), writes
/// **one** commit for the ones it allows (an app whose rollback a guard
/// refuses is left out and refused alone), and records each escalation.
/// Commits go through `CommitWriter`, as `rewind rollback`'s do.
public struct AutomaticRollback {
    public let repoPath: String
    public let branch: String?
    public var trigger: RollbackTrailers.TriggerKind
    /// Escalate when no earlier healthy release is known (the reconciler);
    /// alerts let the rollback choose its default target.
    public var requireKnownGood = true
    public var alert: String?
    public var fingerprint: String?
    public var artifactRoot: String?
    public var limits = AppLimits()
    /// Called after the decisions and before the commit is written.
    public var willWrite: () -> Void = {}

    public init(repoPath: String, branch: String?, trigger: RollbackTrailers.TriggerKind) {
        self.repoPath = repoPath
        self.branch = branch
        self.trigger = trigger
    }

    /// Decides and rolls back `failures` together; `history` reads the
    /// branch (release times, earlier automatic rollbacks); `now` is wall ms.
    public func run(_ failures: [FailedRelease], policy: RollbackPolicy, history: DeployRepository, now: Int64,
                    escalations: any EscalationLog) -> [(FailedRelease, RollbackVerdict)] {
        var verdicts: [(FailedRelease, RollbackVerdict)] = []
        var approved: [FailedRelease] = []
        for failure in failures {
            guard let commit = try? history.git.commit(failure.release) else {
                verdicts.append((failure, .failed("release \(failure.release.short) of \(failure.app) is not in the repository")))
                continue
            }
            let decision = AutoRollbackPolicy(policy: policy).decide(
                app: failure.app, releaseTime: commit.committer.time, isRollback: RollbackHistory.isRollback(commit), failedTree: failure.failedTree,
                lastGood: failure.lastGood, recent: RollbackHistory.automaticRollbacks(history, app: failure.app, since: now / 1000 - 3600),
                now: now / 1000, requireKnownGood: requireKnownGood)
            switch decision {
            case .escalate(let why):
                escalations.escalated(failure, why)
                verdicts.append((failure, .escalated(why)))
            case .rollback:
                approved.append(failure)
            }
        }
        guard !approved.isEmpty else { return verdicts }
        do {
            // A handle of its own: the writer keeps new objects in memory for
            // the rest of its handle's life, and notes the caller writes
            // later through its own handle must reach the disk.
            var writer = CommitWriter(journaling: try DeployRepository(path: repoPath, branch: branch))
            writer.limits = limits
            if approved.count > 1 {
                // One app's guard must not hold back the others: plan each
                // alone first; the ones refused are refused alone.
                approved = approved.filter { failure in
                    do {
                        _ = try writer.run(request(for: [failure]), dryRun: true)
                        return true
                    } catch {
                        verdicts.append((failure, verdict(error, failure, escalations)))
                        return false
                    }
                }
                guard !approved.isEmpty else { return verdicts }
            }
            willWrite()
            switch try writer.run(request(for: approved)) {
            case .written(let written?, _, _):
                verdicts += approved.map { ($0, .committed(written)) }
            case .written(nil, _, _):
                verdicts += approved.map { ($0, .failed("the rollback was planned but not written")) }
            case .alreadyDone(let why):
                verdicts += approved.map { ($0, .alreadyDone(why)) }
            }
        } catch {
            verdicts += approved.map { ($0, verdict(error, $0, escalations)) }
        }
        return verdicts
    }

    private func request(for approved: [FailedRelease]) -> RollbackRequest {
        let targets: TargetSpec?
        if approved.count == 1 {
            targets = approved[0].lastGood.map { .revision($0.commit) }
        } else {
            targets = .perApp(Dictionary(approved.compactMap { failure in failure.lastGood.map { (failure.app, $0.commit) } }, uniquingKeysWith: { a, _ in a }))
        }
        var request = RollbackRequest(.rollback(apps: approved.map(\.app), all: false, to: targets), reason: approved.map(\.summary).joined(separator: "; "))
        request.trigger = trigger
        request.alert = alert
        request.fingerprint = fingerprint
        request.artifactRoot = artifactRoot
        request.undoing = Dictionary(approved.map { ($0.app, $0.release.hex) }, uniquingKeysWith: { a, _ in a })
        request.actor = "rewind@\(Clock.hostName())"
        return request
    }

    /// A refusal (escalated: a human takes over) or a failure (retried).
    private func verdict(_ error: any Error, _ failure: FailedRelease, _ escalations: any EscalationLog) -> RollbackVerdict {
        guard let error = error as? RewindError, error.code != .contention else { return .failed("\(error)") }
        let why = "automatic rollback refused: \(error.message)\(error.hint.map { " (\($0))" } ?? "")"
        escalations.escalated(failure, why)
        return .refused(why)
    }
}

extension Reconciler {
    /// Step 8 for one failure (supervision, analysis): see `automaticRollback(_:)` for several.
    func automaticRollback(_ failure: Failure) -> Bool { automaticRollback([failure]) }

    /// Step 8: every failure found together (one pass over a release, one
    /// round of supervision) goes to `AutomaticRollback`, the service serve's
    /// alert desk uses too: one commit for the apps it allows, an escalation
    /// for each of the others. No failed app is left behind unsaid. True
    /// when a commit was written.
    func automaticRollback(_ failures: [Failure]) -> Bool {
        guard let desired else { return false }
        failures.forEach { record(.failureNoticed($0)) }
        var service = AutomaticRollback(repoPath: options.repoPath, branch: repo.branchRef, trigger: .analysis)
        service.artifactRoot = options.artifactRoot
        service.limits = options.limits
        service.willWrite = { [self] in
            flushNotes()
            TestHook.killPoint("before-rollback-commit")
        }
        let failed = failures.map { failure in
            let app = state.apps[failure.app] ?? AppState()
            return FailedRelease(app: failure.app, release: failure.release, reason: failure.reason,
                                 summary: "\(failure.app) release \(failure.release.short) failed: \(failure.reason)",
                                 lastGood: app.lastGood, failedTree: app.failedTree ?? "")
        }
        var wrote = false
        for (failed, verdict) in service.run(failed, policy: desired.config.policy, history: repo, now: clock.wallMilliseconds(), escalations: self) {
            let failure = Failure(app: failed.app, release: failed.release, reason: failed.reason)
            switch verdict {
            case .committed(let commit):
                if let good = failed.lastGood { record(.rolledBack(failure, commit: commit, to: good)) }
                wrote = true
            case .alreadyDone(let why):
                record(.rollbackAlreadyDone(failure, why))
            case .escalated, .refused:
                break  // recorded through `escalated(_:_:)`
            case .failed(let why):
                record(.escalated(failure, "automatic rollback failed: \(why)"))
            }
            record(.decided(failure))
        }
        if wrote { options.onWrite() }
        return wrote
    }
}

extension Reconciler: EscalationLog {
    public func escalated(_ failure: FailedRelease, _ why: String) {
        record(.escalated(Failure(app: failure.app, release: failure.release, reason: failure.reason), why))
    }
}
