#if canImport(Glibc)
import Glibc
#endif
import DeployModel
import FoundationEssentials
import GitKit
import Platforms
import Rollback
import Synchronization
import SystemSupport

/// How an app is doing on its platform.
public enum Health: String, Sendable, Codable {
    case unknown, starting, healthy, unhealthy, restarting, failed, stopped
}

/// The timeline of the last automatic rollback of an app, in wall-clock
/// milliseconds: failure noticed, rollback commit written, healthy again.
public struct RollbackTimeline: Sendable, Codable, Equatable {
    public var failedRelease: OID
    public var rollbackCommit: OID?
    public var failedAt: Int64
    public var committedAt: Int64?
    public var healthyAt: Int64?
    public var reason: String

    package init(failedRelease: OID, failedAt: Int64, reason: String) {
        self.failedRelease = failedRelease
        self.failedAt = failedAt
        self.reason = reason
    }
}

/// What the reconciler knows about one app.
public struct AppState: Sendable, Codable, Equatable {
    /// What runs, confirmed healthy (or adopted after a restart).
    public var instance: Instance?
    /// Started but not yet confirmed: a reconciler killed meanwhile stops it
    /// on restart and starts again, so nothing runs twice.
    public var pending: Instance?
    /// The commit that introduced the running tree (the app's release).
    public var release: OID?
    public var health: Health = .unknown
    public var lastError: String?
    /// The pin's tree when a pin holds the app.
    public var heldByPin: OID?
    /// A tree that failed to deploy; not retried until the desired tree changes.
    public var failedTree: OID?
    /// The release commit that failed.
    public var failedRelease: OID?
    /// The last release that ran healthy.
    public var lastGood: KnownGood?
    /// When the running instance became healthy (wall ms): the soak window starts here.
    public var healthySince: Int64?
    /// Exits of the running release within its soak window (wall ms).
    public var exits: [Int64] = []
    /// Consecutive restarts, for the backoff.
    public var restarts: Int = 0
    /// When the next restart may happen (wall ms).
    public var nextRestartAt: Int64?
    /// When health checks started failing (wall ms).
    public var unhealthySince: Int64?
    public var lastRollback: RollbackTimeline?
    /// A failed release (commit) whose automatic rollback has not been
    /// decided yet: recorded with the failure, so that a reconciler killed
    /// before deciding decides after its restart.
    public var undecidedFailure: OID?
    /// The running release has an exec observe command (run on full passes).
    public var observes = false
    /// A rollback commit that is healthy and waits for the triggers' queries
    /// to be back under their thresholds before it is `verified`.
    public var verifying: OID?
    /// The running version's `traffic:` (the app is reached through a proxy).
    public var traffic: TrafficSettings?
    /// A canary or blue-green release under way; the previous version still runs.
    public var rollout: Rollout?
    /// Why the proxy sends the app nothing (a coordinated rollback drained
    /// it, or it failed and stays drained for a human).
    public var trafficHeld: String?
    /// Why the proxy could not be brought to what the state says (a rollout holds meanwhile).
    public var trafficError: String?
    /// Why a new release waits for other hosts (a staged rollout across hosts).
    public var stageHold: StageHold?
    /// Why a new release waits for a change window (a freeze), with until when.
    public var freeze: String?

    public init() {}
}

/// A commit that was refused as a whole.
public struct RefusedCommit: Sendable, Codable, Equatable {
    public var commit: OID
    public var message: String
    public var details: [String]

    package init(commit: OID, message: String, details: [String]) {
        self.commit = commit
        self.message = message
        self.details = details
    }
}

/// The reconciler's state directory file: written atomically after every
/// change, read back on start.
public struct ReconcilerState: Sendable, Codable, Equatable {
    public var format = 1
    /// The last commit the reconciler acted on; the tip must descend from it.
    public var lastApplied: OID?
    /// The tip seen last.
    public var tip: OID?
    /// Why reconciliation is halted (a rewritten history), if it is.
    public var halted: String?
    /// The newest commit refused as invalid, while the tip is invalid.
    public var invalid: RefusedCommit?
    /// A failure reading the repository (the pass is retried).
    public var lastError: String?
    /// Notes not yet written under refs/notes/rewind.
    public var pendingNotes: [PendingNote] = []
    /// Wall-clock milliseconds of the last pass.
    public var lastPassAt: Int64?
    /// Per app; each is kept in a file of its own.
    public var apps: [String: AppState] = [:]

    public init() {}

    enum CodingKeys: String, CodingKey {
        case format, lastApplied, tip, halted, invalid, lastError, pendingNotes, lastPassAt
    }
}

/// Reads and writes the state directory: `reconciler.json` for the loop,
/// `apps/<app>.json` for each app. Each file is replaced atomically, and
/// only files whose content changed are written, so a step costs one small
/// write whatever the number of apps.
public struct StateStore: Sendable {
    public let directory: String

    /// A store in `directory`.
    public init(directory: String) { self.directory = directory }

    /// Where a repository's state lives unless `--state-dir` says otherwise:
    /// `<git dir>/rewind/state`.
    public static func defaultDirectory(_ repo: DeployRepository) -> String {
        repo.git.gitDirectory + "rewind/state"
    }

    /// The store of `repo`: `directory` (`--state-dir`), else the default.
    public init(_ repo: DeployRepository, directory: String?) {
        self.init(directory: directory ?? Self.defaultDirectory(repo))
    }

    /// Wakes a reader (`rewind wait`, `status --watch`) when the reconciler
    /// writes the state: its files are renamed into place.
    public func watch() -> FileWatch { FileWatch(directories: writtenDirectories) }
    /// The directories the reconciler writes its state files in.
    public var writtenDirectories: [String] { [directory, appsDirectory] }

    public var stateFile: String { directory + "/reconciler.json" }
    public var appsDirectory: String { directory + "/apps" }
    public var lockFile: String { directory + "/lock" }
    public var pidFile: String { directory + "/reconciler.pid" }
    /// The container engine's socket the reconciler uses, for the CLI's rollback guard.
    public var containerSocketFile: String { Self.containerSocketFile(in: directory) }
    public static func containerSocketFile(in directory: String) -> String { directory + "/container-socket" }
    /// The host name the reconciler runs as (`--host`), so that status shows that host's apps.
    public var hostFile: String { directory + "/host" }
    public var acceptFile: String { directory + "/accept-rewrite" }
    /// The one escalation store: what a human must look at, by app,
    /// written by the reconciler and by `rewind serve`'s alert desk.
    public var escalationsFile: String { directory + "/escalations.json" }

    /// The escalations, by app (empty when none or unreadable).
    public func escalations() -> [String: Escalation] {
        guard let bytes = FileIO.read(escalationsFile) else { return [:] }
        return (try? JSONDecoder().decode([String: Escalation].self, from: Data(bytes))) ?? [:]
    }

    /// Records that a human must look at `app`'s `release` (app tree
    /// `tree`): it holds until the branch gives the app another tree. One
    /// process writes a state directory (its lock holder); the reconciler
    /// and the desk within it take turns.
    public func recordEscalation(app: String, release: String, tree: String?, reason: String) {
        Self.escalationWriter.withLock { _ in
            var all = escalations()
            all[app] = Escalation(release: release, tree: tree, reason: reason, at: Clock.wallMilliseconds())
            if let data = try? JSONEncoder().encode(all) { _ = FileIO.writeAtomically(escalationsFile, Array(data)) }
        }
    }

    private static let escalationWriter = Mutex(())
    public var logDirectory: String { directory + "/logs" }
    /// Where an app's output is captured (as `Deployment.logFile` names it).
    public func logFile(_ app: String) -> String { "\(logDirectory)/\(app).log" }
    public var filesDirectory: String { directory + "/files" }

    func appFile(_ name: String) -> String { "\(appsDirectory)/\(name).json" }

    /// The state, or an empty one when there is none yet. A file that cannot
    /// be read is an error that names it.
    public func load() throws -> ReconcilerState { try load(cache: nil) }

    /// `load`, decoding again only the app files whose size or time changed
    /// since `cache` last saw them (1,000 apps: most of a status's cost).
    func load(cache: AppStateCache?) throws -> ReconcilerState {
        var state = ReconcilerState()
        if let bytes = FileIO.read(stateFile) { state = try Self.decode(ReconcilerState.self, bytes, file: stateFile) }
        for name in FileIO.list(appsDirectory) where name.hasSuffix(".json") {
            let file = "\(appsDirectory)/\(name)"
            let signature = cache == nil ? nil : FileIO.signature(file)
            if let signature, let known = cache?.entries[file], known.size == signature.size, known.modified == signature.modified {
                state.apps[String(name.dropLast(5))] = known.state
                continue
            }
            guard let bytes = FileIO.read(file) else { continue }
            let decoded = try Self.decode(AppState.self, bytes, file: file)
            state.apps[String(name.dropLast(5))] = decoded
            // Same size and time within one clock tick could hide a write: cached only when older than a second.
            if let signature, signature.modified < Clock.wallMilliseconds() * 1_000_000 - 1_000_000_000 {
                cache?.entries[file] = (signature.size, signature.modified, decoded)
            } else {
                cache?.entries[file] = nil
            }
        }
        return state
    }

    /// One app's state; nil when there is none or it cannot be read.
    /// (Not cached.)
    public func loadApp(_ name: String) -> AppState? {
        guard let bytes = FileIO.read(appFile(name)) else { return nil }
        return try? Self.decode(AppState.self, bytes, file: appFile(name))
    }

    /// Decodes one state file's bytes; the error names `file` and the field.
    public static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8], file: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw StateError("\(file) cannot be read: \(DecodingProblem.describe(error))",
                             hint: "stop any process Rewind started for these apps, move the state directory aside, and start again")
        }
    }

    /// Writes the parts of `state` that differ from `previous`.
    public func save(_ state: ReconcilerState, previous: ReconcilerState?) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var global = state
        global.apps = [:]
        var before = previous
        before?.apps = [:]
        if global != before || previous == nil { try write(encoder, global, to: stateFile) }
        for (name, app) in state.apps where previous?.apps[name] != app {
            try write(encoder, app, to: appFile(name))
        }
        for name in previous?.apps.keys.filter({ state.apps[$0] == nil }) ?? [] {
            FileIO.removeTree(appFile(name))
        }
    }

    private func write<T: Encodable>(_ encoder: JSONEncoder, _ value: T, to file: String) throws {
        let data: Data
        do { data = try encoder.encode(value) } catch { throw StateError("cannot encode \(file): \(error)") }
        guard FileIO.writeAtomically(file, Array(data)) else {
            let cause = String(cString: strerror(errno))
            throw StateError("cannot write \(file): \(cause)", hint: "check that the state directory is writable and that \(file) is a file")
        }
    }

    /// The pid of the reconciler running on this directory, if one is.
    public func runningPid() -> Int32? {
        guard let text = FileIO.readText(pidFile), let pid = Int32(text.trimmingCharacters()) else { return nil }
        return ProcessProbe.isAlive(pid) ? pid : nil
    }
}

/// A release a human must look at, and why.
public struct Escalation: Sendable, Codable, Equatable {
    /// The release a human must look at.
    public var release: String
    /// Its app tree; nil in escalations written before Rewind recorded it.
    public var tree: String?
    public var reason: String
    public var at: Int64

    /// Whether it still holds: while the branch wants the app tree it was
    /// about (older entries: while the app runs the release).
    public func holds(desiredTree: String?, appliedRelease: String?) -> Bool {
        if let tree, !tree.isEmpty { return tree == desiredTree }
        return release == appliedRelease
    }
}

/// A state directory problem: what, and what to do.
public struct StateError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public let hint: String?
    /// True when another reconciler holds the state directory.
    public let busy: Bool

    /// Creates an error.
    public init(_ message: String, hint: String? = nil, busy: Bool = false) {
        self.message = message
        self.hint = hint
        self.busy = busy
    }

    public var description: String { hint.map { "\(message)\nhint: \($0)" } ?? message }
}

/// Decoded app state files by path, with the size and time they had.
final class AppStateCache: @unchecked Sendable {
    var entries: [String: (size: Int, modified: Int64, state: AppState)] = [:]
}
