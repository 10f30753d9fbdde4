import GitKit
import SystemSupport

/// What became of a release (helm history's STATUS and DESCRIPTION): the
/// last outcome the notes record for its app, who triggered it, and why.
public struct ReleaseOutcome: Sendable, Equatable {
    /// The last outcome recorded (nil: none yet, e.g. no reconciler ran).
    public var outcome: NoteOutcome?
    /// When it was recorded (RFC 3339, UTC).
    public var at: String?
    /// For rollbacks: `manual`, `alert`, `analysis` or `api`.
    public var trigger: String?
    /// The rollback's reason, or the failure's or escalation's.
    public var reason: String?
    /// Who acted (`Rewind-Actor`), when not the commit's author.
    public var actor: String?

    /// Reads the release's commit message and its note. A note holds one
    /// line per outcome; the latest wins, and in the same second the later
    /// stage (healthy after applied, rolled-back after failed).
    public static func of(_ release: Release, in repo: DeployRepository, notes: NoteCache) -> ReleaseOutcome {
        var result = ReleaseOutcome()
        if release.kind != .deploy, let commit = try? repo.git.commit(release.commit), let trailers = RollbackTrailers.parse(commit.message) {
            result.trigger = trailers.trigger.rawValue
            result.reason = trailers.reason
            result.actor = trailers.actor
        } else if release.kind != .deploy {
            result.trigger = "manual"
        }
        let lines = notes.lines(on: release.commit).filter { $0.app == release.app && $0.outcome.isReleaseOutcome }
        let order = NoteOutcome.allCases
        // By the instant (lines written before milliseconds were recorded have whole seconds).
        let instant = { (note: ReleaseNote) in note.value("time").flatMap(Dates.parse) ?? 0 }
        if let last = lines.max(by: { (instant($0), order.firstIndex(of: $0.outcome) ?? 0) < (instant($1), order.firstIndex(of: $1.outcome) ?? 0) }) {
            result.outcome = last.outcome
            result.at = last.value("time")
            if result.reason == nil { result.reason = last.value("reason") }
        }
        return result
    }
}

/// Note lines by commit, read once each; no notes ref means no lookups at all.
public final class NoteCache {
    private let repo: DeployRepository
    private let hasNotes: Bool
    private var cache: [OID: [ReleaseNote]] = [:]

    public init(_ repo: DeployRepository) {
        self.repo = repo
        hasNotes = ((try? repo.git.referenceTarget(ReleaseNote.notesRef)) ?? nil) != nil
    }

    public func lines(on commit: OID) -> [ReleaseNote] {
        guard hasNotes else { return [] }
        if let known = cache[commit] { return known }
        let text = ((try? repo.git.note(on: commit, notesRef: ReleaseNote.notesRef)) ?? nil) ?? ""
        let lines = ReleaseNote.parseAll(text)
        cache[commit] = lines
        return lines
    }
}
