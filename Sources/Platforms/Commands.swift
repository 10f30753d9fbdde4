import DeployModel
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Runs an app's commands (exec apply/observe/health, health.command) with
/// the app's environment, in its files directory, with a timeout.
public struct CommandRunner: Sendable {
    /// The environment the reconciler was started with.
    let baseEnvironment: [String: String]
    /// Directories searched for programs given by name, before $PATH.
    let searchPath: [String]

    /// A runner with the apps' environment and search path.
    public init(baseEnvironment: [String: String], searchPath: [String]) {
        self.baseEnvironment = baseEnvironment
        self.searchPath = searchPath
    }

    public struct Outcome: Sendable {
        public let status: ExitStatus?
        public let output: String
    }

    func environment(_ deployment: Deployment, extra: [String: String] = [:]) -> [String: String] {
        var env = baseEnvironment
        for (k, v) in deployment.rewindEnvironment { env[k] = v }
        for (k, v) in extra { env[k] = v }
        return env
    }

    /// Starts `command` without waiting; `collect` reads its outcome once it ended.
    func launch(_ command: [String], _ deployment: Deployment, what: String) throws -> (pid: pid_t, output: String) {
        guard let program = command.first else { throw PlatformError("\(what) command is empty") }
        let output = "\(deployment.logDirectory)/\(deployment.app).\(what).out"
        FileIO.removeTree(output)
        var options = SpawnOptions(program: resolveRelative(program, deployment), arguments: Array(command.dropFirst()),
                                   environment: environment(deployment), directory: deployment.files, outputFile: output)
        options.searchPath = searchPath
        do {
            return (try Spawn.start(options), output)
        } catch let error as SystemError {
            throw PlatformError("\(what) command of \(deployment.app) cannot start: \(error)")
        }
    }

    /// The outcome of a launched command that ended with `status` (nil: timed out), logged.
    func collect(_ deployment: Deployment, what: String, output: String, status: ExitStatus?) -> Outcome {
        let text = FileIO.tail(output, maxBytes: 16_384)
        appendToLog(deployment, what: what, status: status, output: text)
        return Outcome(status: status, output: text)
    }

    /// Runs `command` (argv) and returns its status (nil: timed out) and output.
    public func run(_ command: [String], _ deployment: Deployment, what: String, timeout: Duration, extra: [String: String] = [:], started: (pid_t) -> Void = { _ in }) throws -> Outcome {
        guard let program = command.first else { throw PlatformError("\(what) command is empty") }
        let output = "\(deployment.logDirectory)/\(deployment.app).\(what).out"
        FileIO.removeTree(output)
        var options = SpawnOptions(program: resolveRelative(program, deployment), arguments: Array(command.dropFirst()),
                                   environment: environment(deployment, extra: extra), directory: deployment.files, outputFile: output)
        options.searchPath = searchPath
        let status: ExitStatus?
        do {
            status = try Spawn.run(options, timeoutMilliseconds: timeout.milliseconds, started: started)
        } catch let error as SystemError {
            throw PlatformError("\(what) command of \(deployment.app) cannot start: \(error)")
        }
        let text = FileIO.tail(output, maxBytes: 16_384)
        appendToLog(deployment, what: what, status: status, output: text)
        return Outcome(status: status, output: text)
    }

    /// A program given as `./x` or `dir/x` is relative to the app's files,
    /// or else to its artifact's directory (an unpacked OCI artifact: `bin/api`).
    func resolveRelative(_ program: String, _ deployment: Deployment) -> String {
        guard program.contains("/"), !program.hasPrefix("/") else { return program }
        let inFiles = deployment.files + "/" + program
        if !FileIO.exists(inFiles), let artifact = deployment.artifactPath, FileIO.isDirectory(artifact), FileIO.exists(artifact + "/" + program) {
            return artifact + "/" + program
        }
        return inFiles
    }

    private func appendToLog(_ deployment: Deployment, what: String, status: ExitStatus?, output: String) {
        let header = "--- \(Clock.iso8601UTC(milliseconds: Clock.wallMilliseconds())) \(what) \(deployment.spec.version): \(status.map { "\($0)" } ?? "timed out")\n"
        let log = deployment.logFile
        FileIO.makeParent(log)
        _ = FileIO.append(log, at: FileIO.size(log) ?? 0, Array((header + output + (output.hasSuffix("\n") || output.isEmpty ? "" : "\n")).utf8))
    }
}
