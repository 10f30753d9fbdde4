import FoundationEssentials
import GitKit
import Synchronization
import SystemSupport

/// What `serve`'s watch of an app's `updates:` found at its last check.
public struct UpdateCheck: Sendable, Codable, Equatable {
    public enum State: String, Sendable, Codable {
        /// The app runs the newest version the tag policy accepts.
        case current
        /// An update commit was written (or proposed on a branch).
        case proposed
        /// The newest version was rolled back; it waits for a newer one or `rewind allow`.
        case blocked
        /// The app's current release is not yet through its soak window.
        case waiting
        /// A pin holds the app.
        case held
        /// The registry or the repository failed; the next check tries again.
        case failed
    }

    public var state: State
    /// Wall-clock milliseconds.
    public var checkedAt: Int64
    /// The newest accepted tag and its digest, when the registry answered.
    public var tag: String?
    public var digest: String?
    /// Why, in words (what is blocked by which rollback, what it waits for).
    public var message: String
    /// The update commit written, for `proposed`.
    public var commit: String?

    public init(state: State, checkedAt: Int64, tag: String? = nil, digest: String? = nil, message: String, commit: String? = nil) {
        (self.state, self.checkedAt, self.tag, self.digest, self.message, self.commit) = (state, checkedAt, tag, digest, message, commit)
    }

    /// As JSON, for status and the API.
    public var json: JSON {
        .object([("state", .string(state.rawValue)), ("checkedAt", .string(Clock.iso8601UTC(milliseconds: checkedAt, fraction: true))),
                 ("tag", .optional(tag)), ("digest", .optional(digest)), ("message", .string(message)), ("commit", .optional(commit))])
    }
}

extension StateStore {
    /// `updates.json`: each app's last update check, written by `serve`.
    public var updatesFile: String { directory + "/updates.json" }

    /// The last update check of each app (empty when none or unreadable).
    public func updateChecks() -> [String: UpdateCheck] {
        guard let bytes = FileIO.read(updatesFile) else { return [:] }
        return (try? JSONDecoder().decode([String: UpdateCheck].self, from: Data(bytes))) ?? [:]
    }

    /// Records one app's check (the file is replaced atomically).
    public func recordUpdateCheck(app: String, _ check: UpdateCheck) {
        Self.updatesWriter.withLock { _ in
            var all = updateChecks()
            guard all[app] != check else { return }
            all[app] = check
            if let data = try? JSONEncoder().encode(all) { _ = FileIO.writeAtomically(updatesFile, Array(data)) }
        }
    }

    private static let updatesWriter = Mutex(())
}
