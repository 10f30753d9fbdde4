/// Who made a commit, and when (seconds since the epoch, offset in minutes).
public struct Signature: Sendable, Equatable {
    public var name: String
    public var email: String
    public var time: Int64
    public var offsetMinutes: Int32

    /// Creates a signature.
    public init(name: String, email: String, time: Int64, offsetMinutes: Int32 = 0) {
        self.name = name
        self.email = email
        self.time = time
        self.offsetMinutes = offsetMinutes
    }
}

/// A commit copied out of libgit2.
public struct Commit: Sendable {
    public let id: OID
    public let tree: OID
    public let parents: [OID]
    public let author: Signature
    public let committer: Signature
    /// The full message, as stored.
    public let message: String

    /// The first line of the message.
    public var summary: String {
        String(message.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
    }
}

/// The kind of object a tree entry points at.
public enum EntryKind: Sendable, Equatable {
    case tree, blob, symlink, submodule
}

/// One entry of a tree.
public struct TreeEntry: Sendable, Equatable {
    public let name: String
    public let id: OID
    public let kind: EntryKind
    /// The raw git file mode (0o040000, 0o100644, 0o100755, 0o120000, 0o160000).
    public let mode: UInt32

    /// Creates an entry.
    public init(name: String, id: OID, kind: EntryKind, mode: UInt32) {
        self.name = name
        self.id = id
        self.kind = kind
        self.mode = mode
    }
}

/// What reverting a commit in memory produced.
public enum RevertOutcome: Sendable, Equatable {
    /// The revert merged cleanly into this tree.
    case tree(OID)
    /// The revert conflicts in these paths; nothing was written.
    case conflicts([String])
}
