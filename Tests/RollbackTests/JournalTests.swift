import GitKit
import Rollback
import Testing
import TestSupport

/// A journal that records what the writer told it, and what the branch was then.
final class RecordingJournal: CommitJournal {
    let repoPath: String
    var proposalBranch: String?
    private(set) var events: [String] = []

    init(repoPath: String) { self.repoPath = repoPath }

    func proposal(for plan: PlannedCommit) -> String? { proposalBranch }

    func willMove(_ reference: String, to commit: OID, request: RollbackRequest) {
        // Before the move: the branch still names the commit's parent.
        let branch = (try? git(["rev-parse", "main"], in: repoPath)) ?? "?"
        events.append("will \(reference) \(commit.short) branch-at \(branch.prefix(7)) undoing \(request.undoing?["api"]?.prefix(7) ?? "-")")
    }

    func didNotMove(_ commit: OID) { events.append("did-not \(commit.short)") }
}

/// CommitWriter reports each commit to its journal before the branch moves.
@Suite struct JournalTests {
    /// A writer for the fixture with `journal`, and a default rollback of api.
    func writer(_ fixture: FixtureRepo, _ journal: RecordingJournal) throws -> (CommitWriter, RollbackRequest) {
        var writer = CommitWriter(repo: try DeployRepository(path: fixture.path, branch: nil))
        writer.journal = journal
        var request = RollbackRequest(.rollback(apps: ["api"], all: false, to: nil), reason: nil,
                                      by: RequestAuthor(trigger: .manual, actor: nil, artifactRoot: nil, artifacts: nil))
        request.artifactRoot = fixture.artifactRoot
        return (writer, request)
    }

    @Test func theJournalHearsOfACommitBeforeTheBranchMoves() throws {
        try withFixtureRepo("three-apps", bare: true) { fixture in
            let parent = try fixture.tip()
            let api130 = try fixture.git("log", "-1", "--format=%H", "--", "apps/api")
            let journal = RecordingJournal(repoPath: fixture.path)
            let (writer, request) = try writer(fixture, journal)
            guard case .written(let commit?, _, _) = try writer.run(request) else {
                Issue.record("no commit written")
                return
            }
            #expect(try fixture.tip() == commit.hex)
            #expect(journal.events == ["will refs/heads/main \(commit.short) branch-at \(parent.prefix(7)) undoing \(api130.prefix(7))"], "\(journal.events)")
        }
    }

    /// With a proposal branch, the followed branch stays; proposing the
    /// same rollback again is "already proposed", and the journal hears the
    /// second commit did not land.
    @Test func aProposalLeavesTheBranchAndIsMadeOnce() throws {
        try withFixtureRepo("three-apps", bare: true) { fixture in
            let parent = try fixture.tip()
            let journal = RecordingJournal(repoPath: fixture.path)
            journal.proposalBranch = "refs/heads/rewind/rollback-api"
            let (writer, request) = try writer(fixture, journal)
            guard case .written(let commit?, _, _) = try writer.run(request) else {
                Issue.record("no commit written")
                return
            }
            #expect(try fixture.tip() == parent)
            #expect(try fixture.git("rev-parse", "rewind/rollback-api") == commit.hex)
            guard case .alreadyDone(let why) = try writer.run(request) else {
                Issue.record("proposed twice")
                return
            }
            #expect(why.contains("already proposed on rewind/rollback-api"))
            #expect(journal.events.count == 3 && journal.events[2].hasPrefix("did-not "), "\(journal.events)")
        }
    }
}
