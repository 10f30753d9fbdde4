import DeployModel
import GitKit
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// The result of running a rollback operation.
public enum RollbackResult: Sendable {
    /// A commit was written (or, with dry-run, would be).
    case written(commit: OID?, plan: PlannedCommit, attempts: Int)
    /// Nothing to do; the message says why.
    case alreadyDone(String)
}

/// Where a writer's commits go, and what is kept about each before the
/// branch moves: a mirror's journal (Remote's `MirrorJournal`) queues each
/// commit with its request for the push, and sends commits for a protected
/// branch to a proposal branch. A plain repository has none.
public protocol CommitJournal {
    /// The new branch a planned commit is proposed on instead of moving the
    /// followed branch; nil: the followed branch moves.
    func proposal(for plan: PlannedCommit) -> String?
    /// Called before `reference` moves to `commit`, with the request that
    /// planned it (its target resolved).
    func willMove(_ reference: String, to commit: OID, request: RollbackRequest)
    /// The reference did not move after all (a lost race, an error).
    func didNotMove(_ commit: OID)
}

/// Writes rollback commits: plan against the tip, write the commit object,
/// then move the branch with compare-and-swap. A writer that loses the race
/// re-reads the tip and plans again, so concurrent writers never lose a commit
/// and a rollback someone else just wrote is answered "already rolled back".
public struct CommitWriter {
    public let repo: DeployRepository
    /// How many times a lost race is retried before giving up.
    public var maxAttempts = 100
    /// The limits the new state must meet: the reconciler's, so that it
    /// never refuses what was written.
    public var limits = AppLimits()
    /// Told about each commit before its branch moves (a mirror's outbox).
    public var journal: (any CommitJournal)?
    /// Attach each changed app's unified diff to the plan (`PlannedCommit.diffs`).
    public var diffs = false

    /// Creates a writer for a repository; a mirror's writer journals
    /// (`MirrorJournal`), whoever opened it.
    public init(repo: DeployRepository) {
        self.repo = repo
        journal = MirrorJournal(repo)
    }

    /// Plans and, unless `dryRun`, writes the commit for `request`.
    public func run(_ request: RollbackRequest, dryRun: Bool = false) throws -> RollbackResult {
        do {
            return try plannedAndWritten(request, dryRun: dryRun)
        } catch let error as RewindError where !dryRun && error.refusal != nil {
            recordRefusal(error, request)
            throw error
        }
    }

    /// A data-loss guard's refusal becomes a `refused` note on the tip for
    /// each app it refused (once per tip, app and outcome), so that
    /// `rewind audit` counts the guards hit. A note that cannot be written
    /// does not hide the refusal.
    private func recordRefusal(_ error: RewindError, _ request: RollbackRequest) {
        // A handle of its own: this one staged the plan's objects in memory.
        guard let refusal = error.refusal, let tip = try? repo.tip(), let git = try? Repository.open(repo.git.gitDirectory) else { return }
        let recorder = NoteRecorder(git: git, host: Clock.hostName())
        let entries = refusal.apps.map {
            NoteRecorder.Entry(outcome: .refused, app: $0, fields: [("guard", refusal.name), ("trigger", request.trigger.rawValue), ("reason", error.message)])
        }
        try? recorder.write(recorder.render(entries, on: tip))
    }

    private func plannedAndWritten(_ request: RollbackRequest, dryRun: Bool) throws -> RollbackResult {
        // Planning writes trees; keep them in memory so that a refusal, a
        // dry run or a lost race leaves nothing behind in the repository.
        try gitStep("preparing to stage objects") { try repo.git.stageObjectsInMemory() }
        defer { repo.git.discardStagedObjects() }
        let checkedOut = try !repo.git.isBare && gitStep("reading HEAD", { try repo.git.headReferenceName() }) == repo.branchRef
        guard checkedOut else { return try attempts(request, dryRun: dryRun) }
        // In a working tree, moving the branch and checking out the new
        // commit must not interleave with another writer's (it would see the
        // other's half-done checkout as uncommitted changes): like git's
        // index.lock, Rewind's writers take turns.
        let result = FileIO.withLock(repo.git.gitDirectory + "rewind/worktree.lock") {
            Result { try attempts(request, dryRun: dryRun) }
        }
        guard let result else {
            throw RewindError(.contention, "cannot lock \(repo.git.gitDirectory)rewind/worktree.lock", hint: "check the permissions of the git directory")
        }
        return try result.get()
    }

    private func attempts(_ original: RollbackRequest, dryRun: Bool) throws -> RollbackResult {
        var request = original
        let result = try retryLostRaces(attempts: maxAttempts) { attempt -> RollbackResult? in
            repo.git.discardStagedObjects()
            let tip = try repo.tip()
            let planner = try Planner(repo: repo, request: request, tip: tip, limits: limits, diffs: diffs)
            let plan: PlannedCommit
            switch try planner.plan() {
            case .alreadyDone(let why): return .alreadyDone(why)
            case .commit(let planned): plan = planned
            }
            let worktree = try checkedOutPaths(plan)
            if dryRun { return .written(commit: nil, plan: plan, attempts: attempt) }
            let now = Int64(time(nil))
            let signature = repo.git.defaultSignature(now: now)
            let signer = repo.signer
            let commit = try gitStep("writing the commit") {
                try repo.git.createCommit(tree: plan.tree, parents: [plan.parent], message: plan.message, author: signature, committer: signature,
                                          sign: signer.map { signer in { try signer.sign($0) } })
            }
            try gitStep("writing the new objects") { try repo.git.persistStagedObjects(reachableFrom: commit) }
            // From the outbox entry to the checkout, an interruption (Ctrl-C) waits.
            return try Interruption.deferring { try move(to: commit, plan, worktree: worktree, attempt: attempt, request: &request) }
        }
        if let result { return result }
        throw RewindError(.contention, "gave up after \(maxAttempts) attempts: \(repo.branchName) kept moving", hint: "try again; another writer is busy on this branch")
    }

    /// Moves the branch (or a proposal branch) to `commit` by compare-and-swap
    /// and checks it out; nil when another writer moved the branch first
    /// (`request` is then pinned to the same target for the next plan).
    /// `worktree`: the files to check out when the branch is checked out (nil: it is not).
    private func move(to commit: OID, _ plan: PlannedCommit, worktree: [String]?, attempt: Int, request: inout RollbackRequest) throws -> RollbackResult? {
        // In a mirror, the request goes to the outbox before the branch
        // moves, so that a commit the remote has not taken can be planned again.
        let proposal = journal?.proposal(for: plan)
        journal?.willMove(proposal ?? repo.branchRef, to: commit, request: Self.pinned(request, plan))
        do {
            if let proposal {
                try repo.git.updateReference(proposal, to: commit, expecting: nil, logMessage: "rewind: propose \(plan.message.prefix { $0 != "\n" })")
            } else {
                try repo.git.updateReference(repo.branchRef, to: commit, expecting: plan.parent, logMessage: "rewind: \(plan.message.prefix { $0 != "\n" })")
            }
        } catch let error as GitError where Self.isLostRace(error) {
            journal?.didNotMove(commit)
            if let proposal, error.code == .exists {
                return .alreadyDone("already proposed on \(shortBranchName(proposal))")
            }
            // The default target was resolved against the release this
            // command set out to undo: plan again with that same target.
            request = Self.pinned(request, plan)
            return nil
        } catch {
            journal?.didNotMove(commit)
            throw RewindError.git(error, doing: "moving \(repo.branchName)")
        }
        if let paths = worktree {
            try gitStep("checking out the new commit") { try repo.git.checkout(tree: plan.tree, from: plan.parentTree, paths: paths) }
        }
        return .written(commit: commit, plan: plan, attempts: attempt)
    }

    /// The files the commit changes when the branch is checked out in a
    /// working tree (nil: it is not); refuses when they have uncommitted changes there.
    private func checkedOutPaths(_ plan: PlannedCommit) throws -> [String]? {
        guard !repo.git.isBare, try gitStep("reading HEAD", { try repo.git.headReferenceName() }) == repo.branchRef else { return nil }
        let paths = try gitStep("comparing trees") { try repo.git.changedPaths(from: plan.parentTree, to: plan.tree) }
        let dirty = try gitStep("reading the working tree status") { try repo.git.uncommittedPaths(under: paths) }
        if !dirty.isEmpty {
            throw RewindError(.dirtyWorkingTree, "uncommitted changes in the paths this rollback changes: \(dirty.prefix(10).joined(separator: ", "))\(dirty.count > 10 ? ", ..." : "")",
                              hint: "commit or stash them (git stash), then run the command again")
        }
        return paths
    }

    /// The request with its target fixed to the commit it resolved to, so
    /// that planning it again on a remote that moved restores the same
    /// release (and finds it "already rolled back" when someone did) rather
    /// than going one release further back.
    static func pinned(_ request: RollbackRequest, _ plan: PlannedCommit) -> RollbackRequest {
        var pinned = request
        if pinned.undoing == nil, !plan.undoing.isEmpty { pinned.undoing = plan.undoing.mapValues(\.hex) }
        guard let trailers = RollbackTrailers.parse(plan.message), Set(trailers.targets).count == 1, let target = trailers.targets.first else { return pinned }
        switch request.operation {
        case .rollback(let apps, let all, nil): pinned.operation = .rollback(apps: apps, all: all, to: .revision(target.hex))
        case .rollback(let apps, let all, .release): pinned.operation = .rollback(apps: apps, all: all, to: .revision(target.hex))
        case .pin(let app, _): pinned.operation = .pin(app, to: .revision(target.hex))
        default: break
        }
        return pinned
    }

    static func isLostRace(_ error: GitError) -> Bool {
        switch error.code {
        case .modified, .locked, .exists: return true
        default: return error.message.contains("lock") || error.message.contains("old reference value does not match")
        }
    }

}
