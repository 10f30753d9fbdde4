import FoundationEssentials
import GitKit
import SystemSupport

/// What a commit writer keeps in a mirror of a remote repository: each
/// commit in the outbox (with its request) before the branch moves, and,
/// for a protected followed branch, the proposal branch the commit goes to
/// instead. Every `CommitWriter` of a mirror journals: the handle says it
/// is one. Syncing and pushing are Remote's.
public struct MirrorJournal: CommitJournal {
    public let gitDirectory: String
    /// Proposal branches start with this (`rewind/rollback-`); nil: commits go to the branch.
    public let proposalPrefix: String?

    /// The journal of `repo` when it is a mirror Rewind keeps; nil otherwise.
    public init?(_ repo: DeployRepository) {
        guard repo.isMirror else { return nil }
        gitDirectory = repo.git.gitDirectory
        proposalPrefix = repo.git.configValue("rewind.proposalPrefix").flatMap { $0.isEmpty ? nil : $0 }
    }

    public var outbox: Outbox { Outbox(gitDirectory: gitDirectory) }

    /// The branch a planned commit is proposed on when the followed branch
    /// is protected: named after the apps and the tip it was planned on, so
    /// that the same rollback proposed twice is one branch.
    public func proposal(for plan: PlannedCommit) -> String? {
        guard let prefix = proposalPrefix else { return nil }
        let apps = plan.changes.map(\.app).prefix(3).joined(separator: "+")
        return "refs/heads/\(prefix)\(apps.isEmpty ? "change" : apps)-\(String(plan.parent.description.prefix(7)))"
    }

    public func willMove(_ reference: String, to commit: OID, request: RollbackRequest) {
        outbox.put(Outbox.Entry(commit: commit.description, reference: reference, request: request, queuedAt: Clock.wallMilliseconds(), lastError: nil))
    }

    public func didNotMove(_ commit: OID) { outbox.remove(commit.description) }
}

extension DeployRepository {
    /// True for a mirror of a remote repository that Rewind keeps: commits
    /// written here are queued in the outbox and pushed.
    public var isMirror: Bool { git.configValue("rewind.remote") != nil }
}

/// Commits Rewind wrote in a mirror of a remote repository that the remote
/// has not accepted yet, each with the request that produced it, so that it
/// can be planned again when the remote moved meanwhile. One file per
/// commit under `<git dir>/rewind/outbox/`, written before the branch moves:
/// a crash leaves at most an entry whose commit never landed (dropped on the
/// next look), never a commit without its request.
public struct Outbox: Sendable {
    /// One queued commit.
    public struct Entry: Codable, Sendable {
        public var commit: String
        /// The full name of the reference the commit goes to.
        public var reference: String
        public var request: RollbackRequest
        /// Wall-clock milliseconds when it was written.
        public var queuedAt: Int64
        /// The last reason a push did not take it (host unreachable, rejected).
        public var lastError: String?
    }

    public let directory: String

    /// The outbox of the repository whose git directory is `gitDirectory`.
    public init(gitDirectory: String) {
        directory = gitDirectory + "rewind/outbox"
    }

    /// The entries, oldest first.
    public func entries() -> [Entry] {
        FileIO.list(directory).filter { $0.hasSuffix(".json") }.compactMap { name in
            guard let bytes = FileIO.read("\(directory)/\(name)") else { return nil }
            return try? JSONDecoder().decode(Entry.self, from: Data(bytes))
        }.sorted { ($0.queuedAt, $0.commit) < ($1.queuedAt, $1.commit) }
    }

    /// Records an entry; false when it could not be written.
    @discardableResult
    public func put(_ entry: Entry) -> Bool {
        FileIO.makeDirectory(directory)
        guard let data = try? JSONEncoder().encode(entry) else { return false }
        return FileIO.writeAtomically("\(directory)/\(entry.commit).json", Array(data))
    }

    /// Removes the entry for a commit.
    public func remove(_ commit: String) {
        unlink("\(directory)/\(commit).json")
    }
}

/// Commits Rewind wrote in a mirror and later replaced by planning them again
/// on a remote that had moved. The reconciler may have applied one of them;
/// its successor does not descend from it, and that is not a rewritten history.
public struct ReplacedCommits: Sendable {
    public let file: String

    public init(gitDirectory: String) {
        file = gitDirectory + "rewind/replaced"
    }

    /// The replaced commits' ids.
    public func all() -> Set<String> {
        Set((FileIO.readText(file) ?? "").split(separator: "\n").map(String.init))
    }

    /// Adds commits to the list.
    public func add(_ commits: [OID]) {
        guard !commits.isEmpty else { return }
        let text = (FileIO.readText(file) ?? "") + commits.map { "\($0)\n" }.joined()
        FileIO.makeParent(file)
        _ = FileIO.writeAtomically(file, text: text)
    }
}

/// What a mirror's last sync with its remote saw, for `rewind status`.
public struct RemoteSyncStatus: Codable, Sendable {
    public var url: String
    public var lastAttemptAt: Int64
    public var lastSuccessAt: Int64?
    public var lastError: String?
    /// When the syncs started failing (the first failed attempt since the last success).
    public var failingSince: Int64?
    /// True when the last error was a deadline passing (the host stalled).
    public var lastErrorTimedOut: Bool?

    public init(url: String, lastAttemptAt: Int64, lastSuccessAt: Int64?, lastError: String?, failingSince: Int64? = nil) {
        self.url = url
        self.lastAttemptAt = lastAttemptAt
        self.lastSuccessAt = lastSuccessAt
        self.lastError = lastError
        self.failingSince = lastError == nil ? nil : failingSince ?? lastAttemptAt
    }

    /// The status of the mirror whose git directory is given; nil before its first sync.
    public static func read(gitDirectory: String) -> RemoteSyncStatus? {
        guard let bytes = FileIO.read(file(gitDirectory: gitDirectory)) else { return nil }
        return try? JSONDecoder().decode(RemoteSyncStatus.self, from: Data(bytes))
    }

    public func write(gitDirectory: String) {
        if let data = try? JSONEncoder().encode(self) { _ = FileIO.writeAtomically(Self.file(gitDirectory: gitDirectory), Array(data)) }
    }

    /// Where the status is kept.
    public static func file(gitDirectory: String) -> String { gitDirectory + "rewind/remote-status.json" }
}

#if canImport(Glibc)
import Glibc
#endif
