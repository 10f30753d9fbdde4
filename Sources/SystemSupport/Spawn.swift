import CRewindSystem

#if canImport(Glibc)
import Glibc
#endif

/// What to start.
public struct SpawnOptions: Sendable {
    /// The program: an absolute path, or a name looked up in `searchPath`.
    public var program: String
    public var arguments: [String]
    /// The whole environment of the new process.
    public var environment: [String: String]
    public var directory: String?
    /// Standard output and error are appended to this file (else /dev/null).
    public var outputFile: String?
    /// Directories searched for a program given by name, before $PATH.
    public var searchPath: [String] = []
    /// Standard input is read from this file (else /dev/null).
    public var inputFile: String?

    /// Describes a process to start.
    public init(program: String, arguments: [String], environment: [String: String], directory: String? = nil, outputFile: String? = nil) {
        self.program = program
        self.arguments = arguments
        self.environment = environment
        self.directory = directory
        self.outputFile = outputFile
    }
}

/// A failure of the operating system layer: a process that cannot start, a
/// connection refused or timed out, an HTTP answer that cannot be read.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// How a process ended.
public enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signalled(Int32)

    init(waitStatus status: Int32) {
        self = status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
    }

    public var succeeded: Bool { self == .exited(0) }

    public var description: String {
        switch self {
        case .exited(let code): return "exited with status \(code)"
        case .signalled(let signal): return "killed by signal \(signal)"
        }
    }
}

/// Starting and watching processes with posix_spawn. Each process gets its
/// own session (and process group), so that it and its children can be
/// stopped together and survive the reconciler being killed.
public enum Spawn {
    /// Starts a process; returns its pid.
    public static func start(_ options: SpawnOptions) throws -> pid_t {
        guard let path = resolve(options.program, searchPath: options.searchPath, environment: options.environment) else {
            throw SystemError("program '\(options.program)' not found (searched \((options.searchPath + pathEntries(options.environment)).joined(separator: ":")))")
        }
        if let directory = options.directory, access(directory, X_OK) != 0 {
            throw SystemError("working directory \(directory) does not exist")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, options.inputFile ?? "/dev/null", O_RDONLY, 0)
        if let output = options.outputFile {
            FileIO.makeParent(output)
            posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        rewind_spawn_file_actions_addclosefrom(&actions, 3)
        if let directory = options.directory { rewind_spawn_file_actions_addchdir(&actions, directory) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGCHLD, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) | rewind_spawn_setsid_flag())

        let argv = ([path] + options.arguments).map { strdup($0) } + [nil]
        let envp = options.environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw SystemError("cannot start \(path): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// The exit status of a child, if it has ended (does not wait).
    public static func poll(_ pid: pid_t) -> ExitStatus? {
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        if rc == pid { return ExitStatus(waitStatus: status) }
        if rc < 0 && errno == ECHILD {
            // Not our child (adopted after a restart): alive or gone.
            return ProcessProbe.isAlive(pid) ? nil : .exited(-1)
        }
        return nil
    }

    /// Runs a program to completion with a timeout. The output goes to
    /// `options.outputFile`. Nil status means it timed out and was killed.
    public static func run(_ options: SpawnOptions, timeoutMilliseconds: Int64, started: (pid_t) -> Void = { _ in }) throws -> ExitStatus? {
        let pid = try start(options)
        started(pid)
        let deadline = Clock.monotonicMilliseconds() + timeoutMilliseconds
        var pause: Int64 = 1
        while Clock.monotonicMilliseconds() < deadline {
            if let status = poll(pid) { return status }
            Clock.sleep(milliseconds: pause)
            pause = min(pause * 2, 20)
        }
        stop(pid, graceMilliseconds: 2_000)
        return nil
    }

    /// Stops a process and its group: SIGTERM, then SIGKILL after the grace period.
    @discardableResult
    public static func stop(_ pid: pid_t, graceMilliseconds: Int64) -> ExitStatus? {
        guard pid > 0 else { return nil }
        kill(-pid, SIGTERM)
        kill(pid, SIGTERM)
        let deadline = Clock.monotonicMilliseconds() + graceMilliseconds
        while Clock.monotonicMilliseconds() < deadline {
            if let status = poll(pid) { kill(-pid, SIGKILL); return status }
            Clock.sleep(milliseconds: 10)
        }
        kill(-pid, SIGKILL)
        kill(pid, SIGKILL)
        var status: Int32 = 0
        if waitpid(pid, &status, 0) == pid { return ExitStatus(waitStatus: status) }
        return .signalled(SIGKILL)
    }

    /// The full path of a program: as given when it contains a slash, else
    /// the first executable match in `searchPath`, then $PATH.
    public static func resolve(_ program: String, searchPath: [String], environment: [String: String]) -> String? {
        if program.contains("/") { return access(program, X_OK) == 0 ? program : nil }
        for directory in searchPath + pathEntries(environment) where !directory.isEmpty {
            let candidate = directory.hasSuffix("/") ? directory + program : directory + "/" + program
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    private static func pathEntries(_ environment: [String: String]) -> [String] {
        (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":").map(String.init)
    }

    /// This process's environment as a dictionary.
    public static func currentEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "=") { result[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
            p += 1
        }
        return result
    }

    /// The directory holding the running executable.
    public static func executableDirectory() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        let path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = path.lastIndex(of: "/") else { return nil }
        return String(path[..<slash])
    }
}

/// Facts about processes that may not be this one's children.
public enum ProcessProbe {
    /// The variable a started process carries its launch token in.
    public static let launchVariable = "REWIND_LAUNCH"

    /// A fresh token for one start.
    public static func launchToken() -> String {
        (0..<4).map { _ in String(UInt32.random(in: 0...UInt32.max), radix: 16) }.joined()
    }

    /// The processes whose environment holds `REWIND_LAUNCH=<token>`.
    public static func processes(withLaunch token: String) -> [pid_t] {
        let wanted = Array("\(launchVariable)=\(token)".utf8)
        var found: [pid_t] = []
        for entry in FileIO.list("/proc") {
            guard let pid = pid_t(entry), pid > 1, pid != getpid(),
                  let environ = FileIO.readUntilEnd("/proc/\(entry)/environ", limit: 1 << 20) else { continue }
            if environ.split(separator: 0).contains(where: { $0.elementsEqual(wanted) }) { found.append(pid) }
        }
        return found
    }

    /// True when a process with this pid exists (and is not a zombie).
    public static func isAlive(_ pid: pid_t) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let stat = statFields(pid) else { return false }
        return stat.state != "Z" && stat.state != "X"
    }

    /// The start time of a process in clock ticks since boot: with the pid,
    /// it identifies a process even after the pid is reused.
    public static func startTime(_ pid: pid_t) -> UInt64? { statFields(pid)?.startTime }

    private static func statFields(_ pid: pid_t) -> (state: Character, startTime: UInt64)? {
        guard let bytes = FileIO.readUntilEnd("/proc/\(pid)/stat") else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, starttime field 22 (1-based).
        guard fields.count > 19, let state = fields[0].first, let start = UInt64(fields[19]) else { return nil }
        return (state, start)
    }
}

/// Reads single variables of the process environment.
public enum Environment {
    /// The value of `name`; nil when unset or empty.
    public static func value(_ name: String) -> String? {
        guard let raw = getenv(name) else { return nil }
        let value = String(cString: raw)
        return value.isEmpty ? nil : value
    }
}

/// Named points where a test can have the process killed (kill -9), to
/// prove that a restart converges from there. Enabled only by
/// `REWIND_TEST_KILL_AT=<point>` in the environment.
public enum TestHook {
    /// Kills this process with SIGKILL when `REWIND_TEST_KILL_AT` names `point`.
    public static func killPoint(_ point: String) {
        if Environment.value("REWIND_TEST_KILL_AT") == point { kill(getpid(), SIGKILL) }
    }
}

/// What apps inherit of Rewind's own environment.
///
/// Rewind's variables (`REWIND_*`: API and hook tokens, git credentials,
/// the webhook secret, signing keys) stay with Rewind; a deployed process or
/// command gets its app's documented `REWIND_*` deployment variables, which
/// the platform adds afterwards, and nothing else of Rewind's. Names in a
/// deny-list (`--secret-env`) are removed too: an exact name, or a prefix
/// ending in `*` such as `AWS_*`.
public enum InheritedEnvironment {
    /// `environment` without Rewind's variables and the denied names.
    public static func forApps(_ environment: [String: String], deny: [String] = []) -> [String: String] {
        environment.filter { name, _ in !isWithheld(name, deny: deny) }
    }

    /// True when apps must not see the variable `name`.
    public static func isWithheld(_ name: String, deny: [String]) -> Bool {
        if name.hasPrefix("REWIND_") { return true }
        return deny.contains { pattern in
            pattern.hasSuffix("*") ? name.hasPrefix(pattern.dropLast()) : name == pattern
        }
    }
}
