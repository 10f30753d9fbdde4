import Foundation
import SystemSupport

/// `git daemon --enable=receive-pack` serving every repository under `base`
/// on a free loopback port. `stop()` and `start()` take it down and up again
/// on the same port (a git host that goes away and comes back).
public final class GitDaemon {
    public let base: String
    public let port: Int
    private var pid: pid_t?

    public init(base: String) throws {
        self.base = base
        guard let free = Loopback.freeAppPort() else { throw TestFailure("no free port") }
        port = free
        try start()
    }

    /// The URL of a repository under `base`.
    public func url(_ name: String) -> String { "git://127.0.0.1:\(port)/\(name)" }

    /// Starts the daemon. A host that comes back after `kill()` first clears
    /// the lock files its killed receive-pack left (`refs/heads/main.lock`),
    /// as hosting software does when it starts; git never does, so every
    /// later push to that ref would be refused ("cannot lock ref"). Found as
    /// FaultTests' killed host refusing all pushes for good, under load.
    public func start() throws {
        guard pid == nil else { return }
        for path in FileManager.default.enumerator(atPath: base)?.compactMap({ $0 as? String }) ?? [] where path.hasSuffix(".lock") {
            try? FileManager.default.removeItem(atPath: base + "/" + path)
        }
        let arguments = ["daemon", "--reuseaddr", "--export-all", "--enable=receive-pack", "--listen=127.0.0.1", "--port=\(port)", "--base-path=\(base)", base]
        pid = try Spawn.start(SpawnOptions(program: "/usr/bin/git", arguments: arguments, environment: ProcessInfo.processInfo.environment, outputFile: base + "/../git-daemon.log"))
        try waitFor("git daemon listens on \(port)", timeout: 10) { Loopback.canConnect(port: port) }
    }

    public func stop() {
        guard let pid else { return }
        // The daemon runs in a session of its own: stop it and its children.
        Spawn.stop(pid, graceMilliseconds: 2_000)
        self.pid = nil
        try? waitFor("git daemon is gone", timeout: 10) { !Loopback.canConnect(port: port) }
    }

    /// Kills the daemon and the upload-pack and receive-pack it forked,
    /// with SIGKILL, at once: a host that dies mid-transfer.
    public func kill() {
        guard let pid else { return }
        Glibc.kill(-pid, SIGKILL)
        Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        self.pid = nil
        try? waitFor("git daemon is gone", timeout: 10) { !Loopback.canConnect(port: port) }
    }

    deinit { stop() }
}

/// Kills a process and all its descendants (whatever their session) with
/// SIGKILL, and reaps it. Shells are spared: an ssh session's login shell
/// runs the user's startup files (pyenv's rehash takes a lock file there),
/// and a shell killed mid-way would leave them half-done; it ends by
/// itself once its sshd is gone.
public func killTree(_ pid: pid_t) {
    var parents: [pid_t: [pid_t]] = [:]
    for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let child = pid_t(name), let status = try? String(contentsOfFile: "/proc/\(name)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("PPid:") }),
              let parent = pid_t(line.dropFirst(5).trimmingCharacters(in: .whitespaces)) else { continue }
        parents[parent, default: []].append(child)
    }
    var doomed: [pid_t] = [pid]
    var index = 0
    while index < doomed.count {
        doomed += parents[doomed[index]] ?? []
        index += 1
    }
    for victim in doomed {
        if victim != pid && isShell(victim) { continue }
        kill(victim, SIGKILL)
    }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
}

/// Whether `pid` runs a shell (bash, sh, dash, zsh): an ssh session's shell
/// is left to end by itself (see `killTree`).
public func isShell(_ pid: pid_t) -> Bool {
    let command = ((try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    return ["bash", "sh", "dash", "zsh"].contains(command)
}

/// OpenSSH's sshd on a free loopback port, with a generated host key and a
/// user key allowed to log in as the current user. With `namespace`, sshd
/// runs in that network namespace instead, on every address of it.
public final class SSHServer {
    public let directory: String
    public let port: Int
    public let hostKey: String
    public let userKey: String
    private let namespace: String?
    private var pid: pid_t?

    public init(directory: String, namespace: String? = nil) throws {
        self.directory = directory
        self.namespace = namespace
        guard let free = namespace == nil ? Loopback.freeAppPort() : 2222 else { throw TestFailure("no free port") }
        port = free
        hostKey = directory + "/host_ed25519"
        userKey = directory + "/user_ed25519"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for key in [hostKey, userKey] {
            let result = try run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key])
            guard result.status == 0 else { throw TestFailure("ssh-keygen failed: \(result.stderr)") }
        }
        try FileManager.default.copyItem(atPath: userKey + ".pub", toPath: directory + "/authorized_keys")
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        let config = """
            Port \(port)
            ListenAddress \(namespace == nil ? "127.0.0.1" : "0.0.0.0")
            HostKey \(hostKey)
            AuthorizedKeysFile \(directory)/authorized_keys
            PidFile \(directory)/sshd.pid
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PubkeyAuthentication yes
            PermitRootLogin prohibit-password
            StrictModes no
            UsePAM no
            """
        try writeFile(directory + "/sshd_config", config + "\n")
        try start()
    }

    /// Starts sshd (again) on the same port.
    public func start() throws {
        guard pid == nil else { return }
        let sshd = ["/usr/sbin/sshd", "-D", "-e", "-f", directory + "/sshd_config"]
        let command = namespace.map { ["/usr/sbin/ip", "netns", "exec", $0] + sshd } ?? sshd
        pid = try Spawn.start(SpawnOptions(program: command[0], arguments: Array(command.dropFirst()),
                                           environment: ProcessInfo.processInfo.environment, outputFile: directory + "/sshd.log"))
        try waitFor("sshd listens on \(port)", timeout: 10) { listening }
    }

    private var listening: Bool {
        guard let namespace else { return Loopback.canConnect(port: port) }
        let sockets = try? run("/usr/sbin/ip", ["netns", "exec", namespace, "ss", "-ltnH", "sport = :\(port)"])
        return sockets?.stdout.contains(":\(port)") == true
    }

    /// Kills sshd and every session it forked (each in a session of its
    /// own), with SIGKILL, at once: a host that dies mid-transfer.
    public func kill() {
        guard let pid else { return }
        killTree(pid)
        self.pid = nil
        try? waitFor("sshd is gone", timeout: 10) { !listening }
    }

    /// The known_hosts line for this server's host key, reached at `address`.
    public func knownHostsLine(address: String = "127.0.0.1") throws -> String {
        let pub = try String(contentsOfFile: hostKey + ".pub", encoding: .utf8).split(separator: " ")
        return "[\(address)]:\(port) \(pub[0]) \(pub[1])\n"
    }

    /// The sshd log so far.
    public var log: String { (try? String(contentsOfFile: directory + "/sshd.log", encoding: .utf8)) ?? "" }

    public func stop() {
        guard let pid else { return }
        Spawn.stop(pid, graceMilliseconds: 2_000)
        self.pid = nil
    }

    deinit { stop() }
}

/// Polls `condition` every 20 ms until it holds, or throws after `timeout` seconds.
public func waitFor(_ what: String, timeout: Double, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if (try? condition()) == true { return }
        Thread.sleep(forTimeInterval: 0.02)
    }
    throw TestFailure("timed out after \(timeout) s waiting until \(what)")
}

/// Starts nginx in the foreground with its pid, logs and temporary files
/// under `directory`, `http` as the body of its `http` block, and waits
/// until it listens on `port`.
public func startNginx(directory: String, port: Int, http: String) throws -> pid_t {
    try FileManager.default.createDirectory(atPath: directory + "/tmp", withIntermediateDirectories: true)
    let config = """
        daemon off;
        user root;
        worker_processes 1;
        pid \(directory)/nginx.pid;
        error_log \(directory)/error.log;
        events { worker_connections 64; }
        http {
            client_body_temp_path \(directory)/tmp/body;
            fastcgi_temp_path \(directory)/tmp/fastcgi;
            proxy_temp_path \(directory)/tmp/proxy;
            uwsgi_temp_path \(directory)/tmp/uwsgi;
            scgi_temp_path \(directory)/tmp/scgi;
        \(http.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n"))
        }
        """
    try writeFile(directory + "/nginx.conf", config + "\n")
    let pid = try Spawn.start(SpawnOptions(program: "/usr/sbin/nginx", arguments: ["-c", directory + "/nginx.conf", "-p", directory],
                                           environment: ProcessInfo.processInfo.environment, outputFile: directory + "/nginx.log"))
    do {
        try waitFor("nginx listens on \(port)", timeout: 10) { Loopback.canConnect(port: port) }
    } catch {
        Spawn.stop(pid, graceMilliseconds: 2_000)
        throw error
    }
    return pid
}

/// nginx with TLS (a self-signed certificate for `localhost`) in front of
/// `git http-backend` through fcgiwrap, with basic authentication: the
/// smart HTTP protocol as git hosts serve it.
public final class HTTPSGitServer {
    public let directory: String
    public let port: Int
    /// The certificate to trust (PEM).
    public let certificate: String
    public let username = "deploy"
    public let token = "tok-3f9a1c77e2b54d0e"
    private var nginx: pid_t?
    private var fcgiwrap: pid_t?

    /// Serves the repositories under `base` at https://localhost:PORT/NAME.
    public init(directory: String, base: String) throws {
        self.directory = directory
        guard let free = Loopback.freeAppPort() else { throw TestFailure("no free port") }
        port = free
        certificate = directory + "/cert.pem"
        try FileManager.default.createDirectory(atPath: directory + "/tmp", withIntermediateDirectories: true)
        let cert = try run("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", directory + "/key.pem", "-out", certificate,
                                               "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"])
        guard cert.status == 0 else { throw TestFailure("openssl req failed: \(cert.stderr)") }
        let hash = try run("/usr/bin/openssl", ["passwd", "-apr1", token])
        guard hash.status == 0 else { throw TestFailure("openssl passwd failed: \(hash.stderr)") }
        try writeFile(directory + "/htpasswd", "\(username):\(hash.stdout.trimmingCharacters(in: .whitespacesAndNewlines))\n")
        self.base = base
        try start()
    }

    private let base: String

    /// Starts nginx and fcgiwrap (again) on the same port.
    public func start() throws {
        guard nginx == nil else { return }
        let socket = directory + "/fcgi.sock"
        try? FileManager.default.removeItem(atPath: socket)
        fcgiwrap = try Spawn.start(SpawnOptions(program: "/usr/sbin/fcgiwrap", arguments: ["-c", "2", "-s", "unix:" + socket],
                                                environment: ProcessInfo.processInfo.environment, outputFile: directory + "/fcgiwrap.log"))
        try waitFor("fcgiwrap listens", timeout: 10) { FileManager.default.fileExists(atPath: socket) }
        nginx = try startNginx(directory: directory, port: port, http: """
            access_log off;
            client_max_body_size 0;
            server {
                listen 127.0.0.1:\(port) ssl;
                ssl_certificate \(certificate);
                ssl_certificate_key \(directory)/key.pem;
                location / {
                    auth_basic "git";
                    auth_basic_user_file \(directory)/htpasswd;
                    include /etc/nginx/fastcgi_params;
                    fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;
                    fastcgi_param GIT_PROJECT_ROOT \(base);
                    fastcgi_param GIT_HTTP_EXPORT_ALL "";
                    fastcgi_param PATH_INFO $uri;
                    fastcgi_param REMOTE_USER $remote_user;
                    fastcgi_pass unix:\(socket);
                }
            }
            """)
    }

    public func url(_ name: String) -> String { "https://localhost:\(port)/\(name)" }

    /// Kills nginx, fcgiwrap and the git http-backend processes they run,
    /// with SIGKILL, at once: a host that dies mid-transfer.
    public func kill() {
        for pid in [nginx, fcgiwrap].compactMap({ $0 }) { killTree(pid) }
        nginx = nil
        fcgiwrap = nil
        try? waitFor("nginx is gone", timeout: 10) { !Loopback.canConnect(port: port) }
    }

    /// nginx's error log so far.
    public var log: String { (try? String(contentsOfFile: directory + "/error.log", encoding: .utf8)) ?? "" }

    public func stop() {
        for pid in [nginx, fcgiwrap].compactMap({ $0 }) { Spawn.stop(pid, graceMilliseconds: 2_000) }
        nginx = nil
        fcgiwrap = nil
    }

    deinit { stop() }
}
