import DeployModel
import GitKit
import SystemSupport

/// The one automatic rollback: the reconciler's failed releases and the
/// alert desk's firing alerts both come here. It decides each failure by
/// the policy (with the branch's history of automatic rollbacks), writes
/// **one** commit for the ones it allows (an app whose rollback a guard
/// refuses is left out and refused alone), and reports what became of each.
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
    /// Checks OCI and download targets (the cache, then the registry).
    public var artifacts: (any ArtifactAvailability)?
    public var limits = AppLimits()
    /// Who writes the commit (`Rewind-Actor: rewind@HOST`): a fleet host's name, else the machine's.
    public var host = Clock.hostName()

    public init(repoPath: String, branch: String?, trigger: RollbackTrailers.TriggerKind) {
        self.repoPath = repoPath
        self.branch = branch
        self.trigger = trigger
    }

    /// Decides and rolls back `failures` together; `history` reads the
    /// branch (release times, earlier automatic rollbacks); `now` is wall ms.
    public func run(_ failures: [FailedRelease], policy: RollbackPolicy, history: DeployRepository, now: Int64) -> RollbackReport {
        var report = RollbackReport()
        let recentRollbacks = RollbackHistory.automaticRollbacks(history, from: try? history.tip(), since: now / 1000 - 3600)
        var approved: [FailedRelease] = []
        for failure in failures {
            guard let commit = try? history.git.commit(failure.release) else {
                report.verdicts.append((failure, .failed("release \(failure.release.short) of \(failure.app) is not in the repository")))
                continue
            }
            let decision = AutoRollbackPolicy(policy: policy).decide(
                app: failure.app, releaseTime: commit.committer.time, isRollback: CommitKind(commit).returnsToEarlier, failedTree: failure.failedTree,
                lastGood: failure.lastGood, recent: recentRollbacks.filter { $0.trailers.apps.contains(failure.app) }.map(\.commit.committer.time),
                now: now / 1000, requireKnownGood: requireKnownGood)
            switch decision {
            case .escalate(let why):
                report.verdicts.append((failure, .escalated(why)))
            case .rollback:
                approved.append(failure)
            }
        }
        guard !approved.isEmpty else { return report }
        do {
            // A handle of its own: the writer keeps new objects in memory for
            // the rest of its handle's life, and notes the caller writes
            // later through its own handle must reach the disk.
            var writer = CommitWriter(repo: try DeployRepository(path: repoPath, branch: branch))
            writer.limits = limits
            if approved.count > 1 {
                // One app's guard must not hold back the others: plan each
                // alone first; the ones refused are refused alone.
                approved = approved.filter { failure in
                    do {
                        _ = try writer.run(request(for: [failure]), dryRun: true)
                        return true
                    } catch {
                        report.verdicts.append((failure, verdict(error)))
                        return false
                    }
                }
                guard !approved.isEmpty else { return report }
            }
            TestHook.killPoint("before-rollback-commit")
            switch try writer.run(request(for: approved)) {
            case .written(let written?, _, _):
                report.verdicts += approved.map { ($0, .committed(written)) }
            case .written(nil, _, _):
                report.verdicts += approved.map { ($0, .failed("the rollback was planned but not written")) }
            case .alreadyDone(let why):
                report.verdicts += approved.map { ($0, .alreadyDone(why)) }
            }
        } catch {
            report.verdicts += approved.map { ($0, verdict(error)) }
        }
        return report
    }

    private func request(for approved: [FailedRelease]) -> RollbackRequest {
        let targets: TargetSpec?
        if approved.count == 1 {
            targets = approved[0].lastGood.map { .revision($0.commit.hex) }
        } else {
            targets = .perApp(Dictionary(approved.compactMap { failure in failure.lastGood.map { (failure.app, $0.commit.hex) } }, uniquingKeysWith: { a, _ in a }))
        }
        var request = RollbackRequest(.rollback(apps: approved.map(\.app), all: false, to: targets), reason: approved.map(\.summary).joined(separator: "; "),
                                      by: RequestAuthor(trigger: trigger, actor: "rewind@\(host)", artifactRoot: artifactRoot, artifacts: artifacts))
        request.alert = alert
        request.fingerprint = fingerprint
        request.undoing = Dictionary(approved.map { ($0.app, $0.release.hex) }, uniquingKeysWith: { a, _ in a })
        return request
    }

    /// A refusal (escalated: a human takes over) or a failure (retried).
    private func verdict(_ error: any Error) -> RollbackVerdict {
        guard let error = error as? RewindError, error.code != .contention else { return .failed("\(error)") }
        return .refused("automatic rollback refused: \(error.message)\(error.hint.map { " (\($0))" } ?? "")")
    }
}

/// A release that ran healthy: what an automatic rollback returns to.
public struct KnownGood: Sendable, Codable, Equatable {
    public var commit: OID
    public var tree: OID
    public var version: String

    public init(commit: OID, tree: OID, version: String) {
        self.commit = commit
        self.tree = tree
        self.version = version
    }
}

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
    public func decide(app: String, releaseTime: Int64, isRollback: Bool, failedTree: OID?, lastGood: KnownGood?, recent: [Int64], now: Int64,
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
    /// How far back a walk of the history goes at most (first parents).
    public static let walkLimit = 5_000

    /// Automatic rollbacks (`CommitKind.isAutomaticRollback`) on the
    /// first-parent chain from `tip`, newest first, back to `stop`
    /// (excluded), the first commit older than `since` (seconds), or
    /// `walkLimit` commits: the policy's cooldown and hourly count, and
    /// `rewind wait`'s "automation rolled it back".
    public static func automaticRollbacks(_ repo: DeployRepository, from tip: OID?, until stop: OID? = nil, since: Int64? = nil) -> [(commit: Commit, trailers: RollbackTrailers)] {
        var found: [(commit: Commit, trailers: RollbackTrailers)] = []
        var next = tip
        var steps = 0
        while let id = next, id != stop, steps < walkLimit, let commit = try? repo.git.commit(id) {
            if let since, commit.committer.time < since { break }
            let kind = CommitKind(commit)
            if kind.isAutomaticRollback, let trailers = kind.trailers { found.append((commit, trailers)) }
            next = commit.parents.first
            steps += 1
        }
        return found
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
    public let failedTree: OID?

    public init(app: String, release: OID, reason: String, summary: String, lastGood: KnownGood?, failedTree: OID?) {
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

/// What `AutomaticRollback.run` decided and did, failure by failure, in
/// the order given: everything its caller records (notes, state, metrics,
/// notifications, the escalation) comes from here.
public struct RollbackReport: Sendable {
    public var verdicts: [(failure: FailedRelease, verdict: RollbackVerdict)] = []

    public init() {}

    /// The commit written, if any.
    public var written: OID? {
        verdicts.lazy.compactMap { if case .committed(let commit) = $0.verdict { commit } else { nil } }.first
    }
}
