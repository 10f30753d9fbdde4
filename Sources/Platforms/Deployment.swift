import DeployModel
import GitKit
import SystemSupport

/// One version of one app, ready to be run by a platform driver.
public struct Deployment: Sendable {
    public let app: String
    public let spec: AppSpec
    /// The commit the app's files were taken from.
    public let commit: OID
    /// The app directory's tree id: its state id.
    public let tree: OID
    /// A directory holding the app's files at that commit.
    public let files: String
    /// The artifact's resolved path, when the app declares one.
    public let artifactPath: String?
    /// Where the driver writes the app's logs.
    public let logDirectory: String

    /// Describes a deployment.
    public init(app: String, spec: AppSpec, commit: OID, tree: OID, files: String, artifactPath: String?, logDirectory: String) {
        self.app = app
        self.spec = spec
        self.commit = commit
        self.tree = tree
        self.files = files
        self.artifactPath = artifactPath
        self.logDirectory = logDirectory
    }

    /// The log file of this app.
    public var logFile: String { "\(logDirectory)/\(app).log" }

    /// Environment variables every command and process of the app gets.
    public var rewindEnvironment: [String: String] {
        var env = [
            "REWIND_APP": app, "REWIND_VERSION": spec.version, "REWIND_COMMIT": commit.hex,
            "REWIND_TREE": tree.hex, "REWIND_APP_DIR": files,
        ]
        if let artifactPath { env["REWIND_ARTIFACT"] = artifactPath }
        return env
    }
}

/// What runs for an app right now, as the state file records it.
public struct Instance: Sendable, Codable, Equatable {
    /// The app tree id this instance runs.
    public var tree: OID
    /// The commit its files came from.
    public var commit: OID
    public var version: String
    /// The process (process platform); nil for exec apps.
    public var pid: Int32?
    /// The process's start time: with the pid, it tells our process from a
    /// later one that reuses the pid.
    public var pidStartTime: UInt64?
    public var port: Int?
    /// Wall-clock milliseconds when it was started.
    public var startedAt: Int64
    /// Set in the process's environment (`REWIND_LAUNCH`) and recorded
    /// before it is spawned: a reconciler killed before it recorded the pid
    /// finds the process by it after a restart.
    public var launch: String?
    /// The platform that runs it (recorded by the driver; older state files
    /// lack it: a pid then means the process platform).
    public var platform: Platform?
    /// The container's id (container platform); its name is `launch`.
    public var container: String?

    /// The platform, as recorded or as older state files imply it.
    public var runsOn: Platform { platform ?? (pid == nil ? .exec : .process) }

    /// Describes an instance.
    public init(tree: OID, commit: OID, version: String, pid: Int32? = nil, pidStartTime: UInt64? = nil, port: Int? = nil, startedAt: Int64) {
        self.tree = tree
        self.commit = commit
        self.version = version
        self.pid = pid
        self.pidStartTime = pidStartTime
        self.port = port
        self.startedAt = startedAt
    }
}

/// What a driver saw when it looked at a running instance.
public enum Observation: Sendable, Equatable {
    case running
    /// The process ended (crashed, or was killed by hand).
    case exited(String)
    /// The platform no longer runs what was applied.
    case drifted(String)
}

/// A deployment that failed on the platform: what happened, and the last
/// lines of output that explain it.
/// The platform cannot be reached (a container engine that does not
/// answer): nothing was touched, and the release is tried again rather
/// than failed, since it is not the release that is wrong.
public struct PlatformUnavailable: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public struct PlatformError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public let output: String?

    /// Creates an error.
    public init(_ message: String, output: String? = nil) {
        self.message = message
        self.output = output.map { $0.trimmingTrailingNewlines }.flatMap { $0.isEmpty ? nil : $0 }
    }

    public var description: String {
        guard let output else { return message }
        return message + "\n" + output.split(separator: "\n").suffix(5).map { "    | \($0)" }.joined(separator: "\n")
    }
}

/// A start that runs in the background (an exec app's apply command):
/// polled until it ends. A driver that starts at once returns it started.
public struct PendingStart: Sendable {
    /// Set when the start is complete already.
    public let started: Instance?
    /// The apply command's process while it runs.
    public let pid: Int32?
    let output: String
    let deadline: Int64
    public let deployment: Deployment

    /// A start that completed at once.
    public init(started: Instance, deployment: Deployment) {
        self.started = started
        pid = nil
        output = ""
        deadline = 0
        self.deployment = deployment
    }

    init(pid: Int32, output: String, deadline: Int64, deployment: Deployment) {
        started = nil
        self.pid = pid
        self.output = output
        self.deadline = deadline
        self.deployment = deployment
    }
}

extension String {
    var trimmingTrailingNewlines: String {
        var s = Substring(self)
        while let last = s.last, last == "\n" || last == "\r" || last == " " { s = s.dropLast() }
        return String(s)
    }
}
