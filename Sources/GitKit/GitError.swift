import CGitStream
import CLibGit2
#if canImport(Glibc)
import Glibc
#endif

/// An error from libgit2, carrying the C function that failed and the message
/// libgit2 recorded for it (`git_error_last()`, read right after the call).
public struct GitError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is, for callers that react to it.
    public enum Code: Sendable, Equatable {
        /// The object, reference or path does not exist.
        case notFound
        /// A compare-and-swap lost: the reference changed since it was read.
        case modified
        /// Another writer holds the lock on a reference or the index.
        case locked
        /// A name or specification is ambiguous.
        case ambiguous
        /// A reference or object already exists.
        case exists
        /// A push found the remote's branch at a commit this repository
        /// lacks: the remote moved since the last fetch.
        case nonFastForward
        /// A network transfer passed its deadline (connect or idle).
        case timedOut
        /// A network transfer was cancelled (Ctrl-C, shutdown).
        case cancelled
        /// Anything else, with libgit2's raw return code.
        case other(Int32)
    }

    /// The kind of failure.
    public let code: Code
    /// The libgit2 function that failed, for example `git_commit_lookup`.
    public let function: String
    /// libgit2's own message, or a description written by GitKit.
    public let message: String

    /// Creates an error with an explicit code and message.
    public init(code: Code, function: String, message: String) {
        self.code = code
        self.function = function
        self.message = message
    }

    public var description: String { "\(function): \(message)" }

    /// Reads `git_error_last()` for a failed call. Must run on the same thread,
    /// right after the call (the error slot is thread-local).
    static func last(_ rc: Int32, _ function: String) -> GitError {
        let text: String
        if let err = git_error_last(), let cMessage = err.pointee.message {
            text = String(cString: cMessage)
        } else {
            text = "libgit2 returned \(rc)"
        }
        let code: Code
        switch rc {
        case GIT_ENOTFOUND.rawValue: code = .notFound
        case GIT_EMODIFIED.rawValue: code = .modified
        case GIT_ELOCKED.rawValue: code = .locked
        case GIT_EAMBIGUOUS.rawValue: code = .ambiguous
        case GIT_EEXISTS.rawValue: code = .exists
        case GIT_ENONFASTFORWARD.rawValue: code = .nonFastForward
        default: code = .other(rc)
        }
        return GitError(code: code, function: function, message: text)
    }
}

/// Throws a `GitError` when a libgit2 call returned a negative code.
@inline(__always)
func check(_ rc: Int32, _ function: String) throws {
    if rc < 0 { throw GitError.last(rc, function) }
}

/// Initialises libgit2 exactly once for the process. Every entry point into
/// GitKit calls this; it is cheap after the first time.
public enum GitRuntime {
    private static let initialised: Bool = {
        // The system's CA bundle is read when the first network stream opens,
        // not here (rewind_certificates.h): a local command never needs it.
        rewind_certificates_defer_begin()
        git_libgit2_init()
        rewind_certificates_defer_end()
        // Bound the object cache and the pack windows so that walks over a
        // long history stay within a small, predictable amount of memory.
        _ = rewind_git_set_cache_max_size(16 * 1024 * 1024)
        // Map packs in small windows (the default is 1 GiB) so that a walk
        // over a large pack keeps little of it resident.
        _ = rewind_git_set_mwindow_size(4 * 1024 * 1024)
        _ = rewind_git_set_mwindow_mapped_limit(24 * 1024 * 1024)
        // Like the git CLI, trust the object database's own checksums on read.
        _ = rewind_git_set_strict_hash_verification(0)
        // Every git network stream gets deadlines and can be cancelled.
        _ = rewind_stream_install()
        return true
    }()

    /// Ensures `git_libgit2_init` has run.
    public static func bootstrap() {
        _ = initialised
    }

    /// What became of the system's CA bundle, which git_libgit2_init would
    /// parse at once (rewind_certificates.h).
    public enum SystemCertificates: Equatable, Sendable {
        /// libgit2 asked for no parse (it uses OpenSSL, or a bundle directory).
        case notDeferred
        /// Not read yet: no network stream has opened.
        case deferred
        case read
        /// mbedTLS could not parse it (its error code).
        case failed(Int32)
    }

    public static var systemCertificates: SystemCertificates {
        switch rewind_certificates_state() {
        case 0: return .notDeferred
        case 1: return .deferred
        case 2: return .read
        case let code: return .failed(code)
        }
    }

    /// Reads the deferred bundle now (the first network stream does this itself).
    public static func loadSystemCertificates() {
        bootstrap()
        rewind_certificates_load()
    }

    /// Runs `body` with libgit2's object cache off. For long walks that read
    /// each object once, the cache costs more than it saves (most of the
    /// time went to its hash map); merges, checkouts and status, which read
    /// the same trees again and again, want it on. The switch is
    /// process-wide: use it where nothing else reads git at the same time.
    public static func withoutObjectCache<T>(_ body: () throws -> T) rethrows -> T {
        bootstrap()
        _ = rewind_git_enable_caching(0)
        defer { _ = rewind_git_enable_caching(1) }
        return try body()
    }
}
