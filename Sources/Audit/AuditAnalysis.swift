import DeployModel
import GitKit
import Rollback
import SystemSupport

/// The audit's reading of the facts: per-release facts and rollback rows.
struct Analysis {
    let facts: AuditFacts

    /// The first failure of `app`'s release: its `failed` note, or the
    /// alert's `startsAt` when that is earlier (but not before the release
    /// was committed: an alert already firing then is dated from the release).
    func failure(_ app: String, _ commit: OID, committed: Int64) -> Int64? {
        guard let failed = facts.event(.failed, app, on: commit) else { return nil }
        if let starts = failed.note.value("startsAt").flatMap(Dates.parse) { return max(committed, min(starts, failed.time)) }
        return failed.time
    }

    func releaseFacts(_ app: String) -> [ReleaseFacts] {
        let list = facts.history.of(app)
        let commitTimes = Dictionary(list.map { ($0.commit, $0.time * 1000) }, uniquingKeysWith: { a, _ in a })
        var result: [ReleaseFacts] = []
        result.reserveCapacity(list.count)
        for (i, release) in list.enumerated() {
            let failedAt = failure(app, release.commit, committed: release.time * 1000)
            let failed = release.kind == .deploy && (failedAt != nil || release.rolledBackBy != nil)
            var recovery: Int64?
            if failed, let start = failedAt ?? release.rolledBackBy.flatMap({ commitTimes[$0] }) {
                for later in list[(i + 1)...] {
                    if let healthy = facts.event(.healthy, app, on: later.commit)?.time, healthy >= start {
                        recovery = healthy - start
                        break
                    }
                }
            }
            result.append(ReleaseFacts(time: release.time * 1000, kind: release.kind, failedAt: failedAt,
                                       healthyAt: facts.event(.healthy, app, on: release.commit)?.time, failed: failed, recovery: recovery))
        }
        return result
    }

    /// One row per rollback commit of the history.
    func rollbackRows() -> [RollbackRow] {
        var byCommit: [OID: [(app: String, index: Int)]] = [:]
        var order: [OID] = []
        for app in facts.config.apps.map(\.name) {
            for (i, release) in facts.history.of(app).enumerated() where release.kind == .rollback || release.kind == .pin {
                if byCommit[release.commit] == nil { order.append(release.commit) }
                byCommit[release.commit, default: []].append((app, i))
            }
        }
        return order.compactMap { commit in row(commit, byCommit[commit] ?? []) }.sorted { ($0.time, $0.commit.hex) < ($1.time, $1.commit.hex) }
    }

    /// The row of one rollback commit: `members` are its releases (app, index in the app's list).
    func row(_ commit: OID, _ members: [(app: String, index: Int)]) -> RollbackRow? {
        guard let first = members.first else { return nil }
        let firstRelease = facts.history.of(first.app)[first.index]
        let message = facts.commit(commit)?.message ?? ""
        let trailers = RollbackTrailers.parse(message)
        let kind: String
        switch trailers?.action {
        case .revert?: kind = "revert"
        case .rollback?: kind = "rollback"
        case .pin?: kind = "pin"
        case .unpin?: kind = "unpin"
        case .update?, .allow?: return nil  // deploys, not rollbacks
        case nil: kind = firstRelease.kind == .pin ? "pin" : "git-revert"
        }
        let time = firstRelease.time * 1000
        let moment = self.moment(of: commit, members, committedAt: time)
        let apps = members.map { member(commit, $0.app, index: $0.index, moment: moment) }
        let outcomes = apps.map(\.outcome)
        let outcome = outcomes.contains("escalated") ? "escalated" : outcomes.allSatisfy { $0 == "verified" } ? "verified" : "unknown"
        let recoveries = apps.map(\.recovery)
        var row = RollbackRow(
            commit: commit, time: time, kind: kind, trigger: trailers?.trigger.rawValue ?? "manual", alert: trailers?.alert,
            reason: trailers?.reason ?? (trailers == nil ? firstLine(message) : nil), author: firstRelease.author.isEmpty ? (facts.commit(commit)?.author.name ?? "") : firstRelease.author,
            actor: trailers?.actor, forced: trailers?.forced ?? [], apps: apps.map(\.row),
            detectMilliseconds: apps.compactMap(\.detect).min(), decisionMilliseconds: apps.compactMap(\.decision).min(),
            recoveryMilliseconds: recoveries.contains(where: { $0 == nil }) ? nil : recoveries.compactMap { $0 }.max(),
            outcome: outcome)
        row.breakGlass = trailers?.breakGlass ?? false
        return row
    }

    /// The moment of the rollback to the millisecond: the `rolled-back`
    /// note automation writes on the release it undid, naming this commit;
    /// else the commit's time (whole seconds).
    private func moment(of commit: OID, _ members: [(app: String, index: Int)], committedAt time: Int64) -> Int64 {
        let rolledBackAt = members.compactMap { app, index -> Int64? in
            let list = facts.history.of(app)
            guard index > 0, let event = facts.event(.rolledBack, app, on: list[index - 1].commit),
                  let by = event.note.value("by"), by.count >= 4, commit.hex.hasPrefix(by) else { return nil }
            return event.time
        }.min()
        return rolledBackAt.flatMap { $0 >= time && $0 < time + 1000 ? $0 : nil } ?? time
    }

    /// One app of a rollback commit: what it went from and to, the release
    /// it undid, the times to detect, decide and recover, and its outcome.
    private func member(_ commit: OID, _ app: String, index: Int, moment: Int64)
        -> (row: RollbackApp, detect: Int64?, decision: Int64?, recovery: Int64?, outcome: String) {
        let list = facts.history.of(app)
        let release = list[index]
        var bad: Release? = index > 0 ? list[index - 1] : nil
        if release.reverts, let target = release.target, let reverted = list[..<index].last(where: { $0.commit == target }) { bad = reverted }
        // A pin leaves the app's files as they are: its version is the pinned release's.
        let to = release.kind == .pin ? (list[..<index].last { $0.commit == release.target }.flatMap { facts.version(app, tree: $0.tree) } ?? release.version) : release.version
        let row = RollbackApp(app: app, from: release.previousVersion, to: to, badRelease: bad?.commit, target: release.target)
        var detect: Int64?, decision: Int64?
        if let bad, let failedAt = failure(app, bad.commit, committed: bad.time * 1000) {
            let appliedAt = facts.event(.applied, app, on: bad.commit)?.time ?? bad.time * 1000
            detect = max(0, failedAt - appliedAt)
            decision = max(0, moment - failedAt)
        }
        let recovery = facts.event(.healthy, app, on: commit).map { max(0, $0.time - moment) }
        let outcome = facts.event(.escalated, app, on: commit) != nil ? "escalated" : facts.event(.verified, app, on: commit) != nil ? "verified" : "unknown"
        return (row, detect, decision, recovery, outcome)
    }

    private func firstLine(_ message: String) -> String? {
        message.split(separator: "\n", maxSplits: 1).first.map(String.init)
    }
}
