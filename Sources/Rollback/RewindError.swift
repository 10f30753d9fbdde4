import DeployModel
import GitKit

/// An error from Rewind's own logic: what went wrong, what to do next, and
/// the underlying cause.
public struct RewindError: Error, CustomStringConvertible, Sendable {
    /// The kind of failure; the CLI maps each to an exit code.
    public enum Code: String, Sendable {
        /// A guard refused the operation (artifact, migration, pin).
        case refused
        /// A revert conflicts with later commits.
        case conflict
        /// Uncommitted changes in the affected paths.
        case dirtyWorkingTree
        /// The desired state at a commit is invalid.
        case invalidState
        /// A revision, app or repository does not exist.
        case notFound
        /// `rewind check` found commits that change pinned apps.
        case checkFailed
        /// Concurrent writers kept winning the race.
        case contention
        /// Bad input to a command.
        case usage
        /// A failure of git or the file system.
        case internalFailure
    }

    public let code: Code
    public let message: String
    public let hint: String?
    public let diagnostics: [Diagnostic]
    public let cause: String?
    /// For a data-loss guard's refusal: which guard (`migration`, `artifact`)
    /// and the apps it refused; recorded as `refused` notes (`rewind audit`).
    public var refusal: (name: String, apps: [String])?

    /// Creates an error.
    public init(_ code: Code, _ message: String, hint: String? = nil, diagnostics: [Diagnostic] = [], cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
        self.diagnostics = diagnostics
        self.cause = cause.map { "\($0)" }
    }

    public var description: String {
        var lines = [message]
        lines += diagnostics.map { "  \($0)" }
        if let cause { lines.append("  cause: \(cause)") }
        if let hint { lines.append("hint: \(hint)") }
        return lines.joined(separator: "\n")
    }
}

extension RewindError {
    static func git(_ error: any Error, doing what: String) -> RewindError {
        RewindError(.internalFailure, "git failed while \(what)", cause: error)
    }
}

/// Runs a GitKit call, turning its errors into a `RewindError` that says what was being done.
public func gitStep<T>(_ what: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as RewindError { throw error } catch { throw RewindError.git(error, doing: what) }
}
