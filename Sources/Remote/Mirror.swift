import FoundationEssentials
import GitKit
import Rollback
import Synchronization
import SystemSupport

/// A mirror of a remote deployment repository in Rewind's state directory.
/// Rewind reads and writes the mirror only, through libgit2, and keeps it in
/// step with the remote:
///
/// - `refs/rewind/remote/heads/*` and `refs/rewind/remote/notes/*` are what
///   the remote had at the last fetch;
/// - `refs/heads/*` are the branches Rewind follows: the remote's, plus the
///   rollback commits Rewind wrote that the remote has not accepted yet (each
///   recorded with its request in the outbox);
/// - `refs/notes/rewind` holds Rewind's notes, merged with the remote's.
///
/// A push is never forced. When the remote rejects one (it moved), Rewind
/// fetches, plans the queued rollbacks again on the remote's tip (a rollback
/// someone else already made is dropped as "already rolled back") and pushes
/// again, a bounded number of times.
public final class Mirror: Sendable {
    public let url: RemoteURL
    /// The mirror's directory (a bare repository).
    public let path: String
    public let access: RemoteAccess
    /// Rollbacks go to branches starting with this prefix (protected followed branch); nil: to the followed branch.
    public let proposalPrefix: String?
    /// How many push attempts one sync makes before leaving commits queued.
    public let maxPushAttempts = 6

    /// The error of this process's last sync; nil after one that worked.
    private let lastFailure = Mutex<(error: String, timedOut: Bool)?>(nil)

    /// True when this process's last sync found the host stalled (a
    /// deadline passed): a one-shot command does not wait for it again.
    public var lastSyncTimedOut: Bool { lastFailure.withLock { $0?.timedOut ?? false } }

    /// What a sync that is not tried would report: the last failure, and
    /// the commits still queued.
    public func skippedSync() -> SyncReport {
        var report = SyncReport()
        report.error = lastFailure.withLock { $0 }.map { "not tried again: \($0.error)" }
        report.unpushed = outbox.entries().count
        return report
    }

    /// Where everything fetched from the remote is kept.
    static let trackingRefs = "refs/rewind/remote/"
    static let remoteHeads = "refs/rewind/remote/heads/"
    static let remoteNotes = "refs/rewind/remote/notes/rewind"
    /// Each fleet host's status (`refs/rewind/hosts/NAME`, written by that host only) and where the others' are fetched to.
    public static let hostRefs = "refs/rewind/hosts/"
    public static let remoteHostRefs = "refs/rewind/remote/hosts/"

    /// The notes a mirror fetches, merges and pushes: Rewind's outcome notes
    /// and its incident reports, each with its remote-tracking reference.
    static let notesRefs = ReleaseNote.notesRefs

    /// Where the remote's notes of `reference` are kept.
    static func remoteNotes(_ reference: String) -> String {
        reference == ReleaseNote.notesRef ? remoteNotes : "refs/rewind/remote/notes/" + reference.dropFirst("refs/notes/".count)
    }

    /// Opens the mirror at `path` for `url`, creating it when absent. Refuses
    /// a mirror that follows another URL. With `proposalPrefix`, rollbacks
    /// are proposed on branches of their own instead of the followed branch.
    public init(url: RemoteURL, path: String, access: RemoteAccess, proposalPrefix: String? = nil) throws {
        self.url = url
        self.path = path.hasSuffix("/") ? String(path.dropLast()) : path
        self.access = access
        self.proposalPrefix = proposalPrefix?.isEmpty == false ? proposalPrefix : nil
        if let caFile = access.caFile {
            try gitStep("trusting \(caFile)") { try Repository.trustCertificateAuthorities(file: caFile) }
        }
        let git: Repository
        if FileIO.exists(self.path + "/HEAD") {
            git = try gitStep("opening the mirror \(self.path)") { try Repository.open(self.path) }
            if let existing = git.configValue("rewind.remote"), existing != url.text {
                throw RewindError(.usage, "the mirror \(self.path) follows \(existing), not \(url.text)",
                                  hint: "pass another --mirror directory for this repository")
            }
        } else {
            git = try gitStep("creating the mirror \(self.path)") { try Repository.create(at: self.path, bare: true) }
        }
        // Written only when it changes: many processes open the same mirror,
        // and git's config file takes one writer at a time.
        try gitStep("configuring the mirror") {
            for (name, value) in [("rewind.remote", url.text), ("rewind.proposalPrefix", proposalPrefix ?? "")] where (git.configValue(name) ?? "") != value {
                try git.setConfigValue(name, value)
            }
        }
    }

    /// The outbox of rollback commits the remote has not accepted yet.
    public var outbox: Outbox { Outbox(gitDirectory: path + "/") }

    /// True once the mirror holds the remote's branches.
    public var hasFetched: Bool {
        (try? Repository.open(path).references(matching: Self.remoteHeads + "*").isEmpty == false) ?? false
    }

    /// Fetches, brings the local branches up to date (planning queued
    /// rollbacks again where the remote moved), and pushes what is queued.
    /// Never throws: what went wrong is in the report, and in the status file.
    @discardableResult
    public func sync() -> SyncReport {
        var report = SyncReport()
        let startedAt = Clock.wallMilliseconds()
        // Another process may be syncing, and stalled: wait for it no longer
        // than a stalled sync of our own would take.
        let patience = access.deadlines.connectMilliseconds + access.deadlines.idleMilliseconds
        // A sync by another process that fails while we wait has just found
        // the host down or stalled: trying again at once would fail the same way.
        let failedMeanwhile = { () -> SyncReport? in
            guard let other = RemoteSyncStatus.read(gitDirectory: self.path + "/"), other.lastAttemptAt >= startedAt, let error = other.lastError else { return nil }
            var report = SyncReport()
            report.error = error
            report.timedOut = other.lastErrorTimedOut ?? false
            return report
        }
        let lock = FileIO.withLock(path + "/rewind/sync.lock", timeoutMilliseconds: patience, stopWaiting: failedMeanwhile) { waited -> SyncReport in
            if waited, let report = failedMeanwhile() { return report }
            var report = SyncReport()
            do {
                let git = try Repository.open(path)
                // A rejected push is a lost race: fetch, plan again, push again.
                // Unless the remote did not move: then the server refuses it.
                var seen: [(name: String, target: OID)]?
                let pushed = try retryLostRaces(attempts: maxPushAttempts, backoff: Backoff(base: 200, cap: 3_200, randomized: true)) { _ -> Bool? in
                    try fetch(git, &report)
                    let remote = try git.references(matching: Self.trackingRefs + "*")
                    if report.lastRejection != nil, let seen, seen.elementsEqual(remote, by: { $0 == $1 }) { return false }
                    seen = remote
                    try Interruption.deferring { try integrate(git, &report) }
                    return try publish(git, &report) ? nil : true
                }
                if pushed != true { report.error = rejectedError(refused: pushed == false, report.lastRejection) }
            } catch {
                report.error = Self.describe(error)
                report.timedOut = (error as? GitError)?.code == .timedOut
            }
            let queued = outbox.entries()
            report.unpushed = queued.count
            if let error = report.error {
                for var entry in queued where entry.lastError != error {
                    entry.lastError = error
                    outbox.put(entry)
                }
            }
            writeStatus(report)
            return report
        }
        switch lock {
        case .done(let outcome), .gaveUp(let outcome): report = outcome
        case .timedOut:
            report.timedOut = true
            report.error = "another sync of \(path) has been under way for \(patience / 1000) s (the git host is slow or stalled); using the mirror as last fetched"
        case .failed: report.error = "cannot lock \(path)/rewind/sync.lock"
        }
        if report.error != nil { report.unpushed = outbox.entries().count }
        lastFailure.withLock { $0 = report.error.map { ($0, report.timedOut) } }
        return report
    }

    /// Why the queued commits were not pushed: the server refused them (the
    /// remote had not moved since the rejected push), or others kept moving
    /// the remote through every attempt. `last` is the server's last reason.
    private func rejectedError(refused: Bool, _ last: String?) -> String {
        let reason = last.map { Bounded.printable($0, limit: 200) } ?? "no reason given"
        let queued = "the commits stay queued and are pushed on the next sync"
        if refused {
            return "the remote refused the push (\(reason)) though nothing else had changed it, so this is not a race with another writer: "
                + "check the git host's hooks, branch protection and disk; \(queued)"
        }
        return "the remote rejected the push \(maxPushAttempts) times while others kept moving it (last: \(reason)); \(queued)"
    }

    /// Fetches the remote's branches and notes into the remote-tracking references.
    private func fetch(_ git: Repository, _ report: inout SyncReport) throws {
        try git.fetch(url: url.text, refspecs: ["+refs/heads/*:\(Self.remoteHeads)*", "+\(Self.hostRefs)*:\(Self.remoteHostRefs)*"]
                      + Self.notesRefs.map { "+\($0):\(Self.remoteNotes($0))" }, hooks: access.hooks(for: url))
        report.fetched = true
    }

    /// Moves each local branch to the remote's tip, keeps local commits the
    /// remote lacks (queued), and plans them again where the two diverged.
    private func integrate(_ git: Repository, _ report: inout SyncReport) throws {
        let remote = try git.references(matching: Self.remoteHeads + "*")
        for (name, remoteTip) in remote {
            let local = Self.localBranch(tracking: name)
            guard let localTip = try git.referenceTarget(local) else {
                try git.updateReference(local, to: remoteTip, expecting: nil, logMessage: "rewind: from the remote")
                report.updated.append(local)
                continue
            }
            if try localTip == remoteTip || git.isDescendant(localTip, of: remoteTip) { continue }
            if try git.isDescendant(remoteTip, of: localTip) {
                try git.updateReference(local, to: remoteTip, expecting: localTip, logMessage: "rewind: fast-forward to the remote")
                report.updated.append(local)
                continue
            }
            try replan(git, branch: local, localTip: localTip, remoteTip: remoteTip, &report)
        }
        // A new mirror's HEAD names main; point it at a branch the remote has.
        if let head = try git.headReferenceName(), try git.referenceTarget(head) == nil {
            let existing = ["refs/heads/main", "refs/heads/master"].first { (try? git.referenceTarget($0)) != nil }
            if let other = existing ?? remote.first.map({ Self.localBranch(tracking: $0.name) }) { try git.setHead(other) }
        }
        try dropDelivered(git)
        for reference in Self.notesRefs { try mergeNotes(git, reference) }
    }

    /// The followed branch and the remote diverged: Rewind's queued commits
    /// are set aside and their requests planned again on the remote's tip.
    private func replan(_ git: Repository, branch: String, localTip: OID, remoteTip: OID, _ report: inout SyncReport) throws {
        let localOnly = try git.commits(inRange: "\(remoteTip)..\(localTip)")
        let entries = outbox.entries()
        var requests: [Outbox.Entry] = []
        for commit in localOnly {
            guard let entry = entries.first(where: { $0.commit == commit.description }) else {
                report.error = "\(branch) has a commit the remote lacks that Rewind did not write (\(String(commit.description.prefix(12)))); Rewind leaves it alone: push or drop it by hand in \(path)"
                return
            }
            requests.append(entry)
        }
        try git.updateReference(branch, to: remoteTip, expecting: localTip, logMessage: "rewind: the remote moved; planning queued rollbacks again")
        ReplacedCommits(gitDirectory: path + "/").add(localOnly)
        requests.forEach { outbox.remove($0.commit) }
        let repo = try DeployRepository(path: path, branch: branch)
        for entry in requests {
            do {
                switch try CommitWriter(repo: repo).run(entry.request) {
                case .written(let commit, _, _):
                    report.replanned.append(commit.map { String($0.description.prefix(12)) } ?? "?")
                case .alreadyDone(let why):
                    report.alreadyDone.append(why)
                }
            } catch {
                report.error = "a queued rollback could not be planned again on the remote's \(branch): \(error)"
            }
        }
    }

    /// Removes outbox entries whose commits the remote has, and entries
    /// whose commit never landed on a branch (a writer that lost its race or
    /// crashed before moving the branch) once they are a minute old.
    private func dropDelivered(_ git: Repository) throws {
        let now = Clock.wallMilliseconds()
        for entry in outbox.entries() {
            guard let commit = OID(hex: entry.commit) else { outbox.remove(entry.commit); continue }
            let tracking = Self.tracking(entry.reference)
            if let remoteTip = try git.referenceTarget(tracking), (try? git.isDescendant(remoteTip, of: commit)) == true {
                outbox.remove(entry.commit)
                continue
            }
            let localTip = try git.referenceTarget(entry.reference)
            let landed = try localTip.map { try git.isDescendant($0, of: commit) } ?? false
            if !landed && now - entry.queuedAt > 60_000 { outbox.remove(entry.commit) }
        }
    }

    /// Pushes queued commits and Rewind's notes. Returns true when the
    /// remote rejected something (it moved), so the caller fetches and retries.
    private func publish(_ git: Repository, _ report: inout SyncReport) throws -> Bool {
        let queued = outbox.entries()
        var specs: [String] = []
        var tips: [String: OID] = [:]
        for reference in Set(queued.map(\.reference)).sorted() {
            guard let tip = try git.referenceTarget(reference) else { continue }
            specs.append("\(reference):\(reference)")
            tips[reference] = tip
        }
        for reference in Self.notesRefs {
            let localNotes = try git.referenceTarget(reference)
            let remoteNotes = try git.referenceTarget(Self.remoteNotes(reference))
            if let localNotes, localNotes != remoteNotes {
                specs.append("\(reference):\(reference)")
                tips[reference] = localNotes
            }
        }
        // This host's status (only it writes its ref): replaced, so pushed with force.
        for (reference, local) in try git.references(matching: Self.hostRefs + "*") where try git.referenceTarget(Self.tracking(reference)) != local {
            specs.append("+\(reference):\(reference)")
            tips[reference] = local
        }
        guard !specs.isEmpty else { return false }
        let rejections: [PushRejection]
        let alreadyThere: [String]
        do {
            let outcome = try git.push(url: url.text, refspecs: specs, hooks: access.hooks(for: url), forcing: Self.hostRefs)
            rejections = outcome.rejections
            alreadyThere = outcome.alreadyThere
        } catch let error as GitError where error.code == .nonFastForward {
            // libgit2 saw the remote move after our fetch before it sent
            // anything: a lost race like a rejection, so fetch and plan again.
            return true
        }
        return try Interruption.deferring { try record(pushed: tips, rejections: rejections, alreadyThere: alreadyThere, queued: queued, git, &report) }
    }

    /// Brings the tracking references and the outbox up to date after a push;
    /// true when the remote rejected something.
    private func record(pushed tips: [String: OID], rejections: [PushRejection], alreadyThere: [String], queued: [Outbox.Entry],
                        _ git: Repository, _ report: inout SyncReport) throws -> Bool {
        var rejected = false
        for (reference, tip) in tips {
            if let rejection = rejections.first(where: { $0.reference == reference }) {
                if isProposal(reference) {
                    // Someone made the same proposal branch: it is proposed already.
                    report.alreadyDone.append("already proposed on \(shortBranchName(reference)) (\(rejection.reason))")
                    queued.filter { $0.reference == reference }.forEach { outbox.remove($0.commit) }
                    continue
                }
                rejected = true
                report.lastRejection = "\(Self.notesRefs.contains(reference) ? reference : shortBranchName(reference)): \(rejection.reason)"
                continue
            }
            let tracking = Self.tracking(reference)
            let previous = try git.referenceTarget(tracking)
            try? git.updateReference(tracking, to: tip, expecting: previous, logMessage: "rewind: pushed")
            if !Self.notesRefs.contains(reference) {
                for entry in queued where entry.reference == reference {
                    guard let commit = OID(hex: entry.commit), (try? git.isDescendant(tip, of: commit)) == true else { continue }
                    outbox.remove(entry.commit)
                    // Another writer pushed the very same commit first: on the
                    // remote, but not by this push.
                    if alreadyThere.contains(reference) {
                        report.alreadyOnRemote.append(entry.commit)
                        continue
                    }
                    report.pushed.append(entry.commit)
                    if isProposal(reference) { report.proposed.append(shortBranchName(reference)) }
                }
            }
        }
        return rejected
    }

    private func isProposal(_ reference: String) -> Bool {
        proposalPrefix.map { reference.hasPrefix("refs/heads/" + $0) } ?? false
    }

    /// Where the remote's state of a reference is kept: `refs/heads/X` →
    /// `refs/rewind/remote/heads/X`, Rewind's notes → the remote's notes.
    static func tracking(_ reference: String) -> String {
        if reference.hasPrefix(hostRefs) { return remoteHostRefs + reference.dropFirst(hostRefs.count) }
        return Self.notesRefs.contains(reference) ? remoteNotes(reference) : remoteHeads + shortBranchName(reference)
    }

    /// The local branch of a remote-tracking reference: `refs/rewind/remote/heads/X` → `refs/heads/X`.
    static func localBranch(tracking name: String) -> String {
        "refs/heads/" + name.dropFirst(remoteHeads.count)
    }

    /// An error in words for status and logs; never holds credentials (URLs
    /// with credentials are refused before anything connects).
    static func describe(_ error: any Error) -> String {
        if let error = error as? GitError { return "\(error.message)" }
        return "\(error)"
    }

    // MARK: - Status

    private func writeStatus(_ report: SyncReport) {
        let previous = RemoteSyncStatus.read(gitDirectory: path + "/")
        let now = Clock.wallMilliseconds()
        var status = RemoteSyncStatus(url: url.text, lastAttemptAt: now, lastSuccessAt: report.error == nil ? now : previous?.lastSuccessAt, lastError: report.error,
                                      failingSince: previous?.failingSince)
        status.lastErrorTimedOut = report.error == nil ? nil : report.timedOut
        status.write(gitDirectory: path + "/")
    }
}
