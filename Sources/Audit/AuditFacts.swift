import DeployModel
import GitKit
import Rollback
import SystemSupport

/// One note line with its time read: an event in a release's life.
public struct NoteEvent: Sendable {
    public let note: ReleaseNote
    /// When it was recorded (ms since the epoch).
    public let time: Int64
    public var outcome: NoteOutcome { note.outcome }
}

/// Everything the audit reads, read once: the release index (every app's
/// releases on the branch), every note under `refs/notes/rewind` (one pass
/// over the notes tree), and the messages of the rollback commits. Notes
/// written by hand or damaged become warnings naming the commit.
public struct AuditFacts {
    public let repo: DeployRepository
    public let config: RepoConfig
    public let history: ReleaseHistory
    /// Note events by commit, then app; one per outcome (the first line).
    private var events: [OID: [String: [NoteOutcome: NoteEvent]]] = [:]
    /// The `refused` notes: a data-loss guard refused a rollback.
    public private(set) var refusals: [(commit: OID, event: NoteEvent)] = []
    /// Rollback and pin commits by id: their messages' trailers.
    private var commits: [OID: Commit] = [:]
    public private(set) var warnings: [String] = []

    /// Reads the branch of `repo` up to its tip.
    public static func read(_ repo: DeployRepository, useCache: Bool = true) throws -> AuditFacts {
        let tip = try repo.tip()
        return try read(repo, tip: tip, listing: try repo.configForListing(at: tip), useCache: useCache)
    }

    /// `read` at `tip`, whose rewind.yaml the caller has read already.
    static func read(_ repo: DeployRepository, tip: OID, listing: (config: RepoConfig, warning: String?), useCache: Bool) throws -> AuditFacts {
        // Details (author, summary, versions) for rollbacks and the
        // releases they undid only: the rows and incidents name them.
        let history = try ReleaseHistory.load(repo, config: listing.config, tip: tip, useCache: useCache,
                                              detailsWhere: { $0.kind != .deploy || $0.rolledBackBy != nil })
        var facts = AuditFacts(repo: repo, config: listing.config, history: history)
        if let warning = listing.warning { facts.warnings.append(warning) }
        try facts.readNotes()
        for list in history.releases.values {
            for release in list where release.kind == .rollback || release.kind == .pin {
                guard facts.commits[release.commit] == nil else { continue }
                facts.commits[release.commit] = try gitStep("reading commit \(release.commit.short)") { try repo.git.commit(release.commit) }
            }
        }
        return facts
    }

    private init(repo: DeployRepository, config: RepoConfig, history: ReleaseHistory) {
        self.repo = repo
        self.config = config
        self.history = history
    }

    /// One pass over the notes tree: every note blob read once.
    private mutating func readNotes() throws {
        guard let head = try gitStep("reading \(ReleaseNote.notesRef)", { try repo.git.referenceTarget(ReleaseNote.notesRef) }) else { return }
        let all: [(target: OID, blob: OID)]
        do {
            all = try repo.git.notes(inNotesCommit: head)
        } catch {
            warnings.append("\(ReleaseNote.notesRef) cannot be read (\(error)); the audit has no notes")
            return
        }
        for (target, blob) in all {
            guard let bytes = try? repo.git.blob(blob) else {
                warnings.append("note on \(target.short): its blob \(blob.short) cannot be read; skipped")
                continue
            }
            for event in Self.events(inNote: String(decoding: bytes, as: UTF8.self), on: target, warnings: &warnings) {
                if event.outcome == .refused {
                    refusals.append((target, event))
                } else if events[target]?[event.note.app]?[event.outcome] == nil {
                    events[target, default: [:]][event.note.app, default: [:]][event.outcome] = event
                }
            }
        }
    }

    /// The events of one note's text; lines that are not Rewind's (written
    /// by hand, damaged, without a valid time) become warnings naming the
    /// commit and line.
    static func events(inNote text: String, on target: OID, warnings: inout [String]) -> [NoteEvent] {
        var result: [NoteEvent] = []
        var lineNumber = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            guard !line.allSatisfy(\.isWhitespace) else { continue }
            guard let note = ReleaseNote.parse(line) else {
                warnings.append("note on \(target.short), line \(lineNumber): not a Rewind note line (written by hand or damaged); skipped")
                continue
            }
            guard let text = note.value("time"), let time = Dates.parse(text) else {
                warnings.append("note on \(target.short), line \(lineNumber): \(note.outcome.rawValue) for \(note.app) has no valid time= field; skipped")
                continue
            }
            result.append(NoteEvent(note: note, time: time))
        }
        return result
    }

    /// The first event of `outcome` for `app` on `commit`.
    public func event(_ outcome: NoteOutcome, _ app: String, on commit: OID) -> NoteEvent? {
        events[commit]?[app]?[outcome]
    }

    /// Every event for `app` on `commit`, oldest first.
    public func events(_ app: String, on commit: OID) -> [NoteEvent] {
        (events[commit]?[app]?.values).map { $0.sorted { ($0.time, $0.outcome.order) < ($1.time, $1.outcome.order) } } ?? []
    }

    /// The `version` of an app's tree (read from its app.yaml).
    public func version(_ app: String, tree: OID?) -> String? {
        guard let tree, let ref = config.app(named: app) else { return nil }
        return repo.appSpec(appTree: tree, app: ref)?.version
    }

    /// A rollback or pin commit read with the facts.
    public func commit(_ id: OID) -> Commit? { commits[id] }
}

extension NoteOutcome {
    /// The position in a release's life (ties of time go by it).
    var order: Int { Self.allCases.firstIndex(of: self) ?? 0 }
}
