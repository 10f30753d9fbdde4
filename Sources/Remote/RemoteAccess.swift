import Crypto
import FoundationEssentials
import GitKit
import Rollback
import SystemSupport

/// A secret read from a file or the environment. Its description is
/// redacted, so it cannot reach a log, an error or status by accident.
public struct Secret: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    let value: String

    public init(_ value: String) { self.value = value }

    public var description: String { "<redacted>" }

    /// The value itself, for the one place that must send or compare it.
    public func reveal() -> String { value }
    public var debugDescription: String { "<redacted>" }

    /// The first line of a file, trimmed; throws naming the file (never its content).
    public static func fromFile(_ path: String, what: String) throws -> Secret {
        guard let text = FileIO.readText(path) else {
            throw RewindError(.usage, "cannot read the \(what) file \(path)", hint: "check that it exists and is readable by Rewind")
        }
        let line = text.split(separator: "\n").first.map { String($0).trimmingCharacters() } ?? ""
        guard !line.isEmpty else { throw RewindError(.usage, "the \(what) file \(path) is empty", hint: "put the \(what) on its first line") }
        return Secret(line)
    }
}

/// How Rewind authenticates to a git host and decides whom to trust.
public struct RemoteAccess: Sendable {
    /// SSH private key file.
    public var sshKey: String?
    /// The known_hosts file SSH host keys are checked against.
    public var knownHosts: String
    /// HTTPS user name (for basic credentials, or with a token).
    public var username: String?
    /// HTTPS password or token.
    public var password: Secret?
    /// PEM file of certificate authorities trusted for HTTPS, beside the system's.
    public var caFile: String?
    /// The largest fetch accepted, in bytes.
    public var maxFetchBytes: Int = 2 << 30
    /// How long connecting to the host, and each wait for it, may take.
    public var deadlines = NetworkDeadlines()

    public init(knownHosts: String) { self.knownHosts = knownHosts }

    /// The default known_hosts file: `~/.ssh/known_hosts`.
    public static var defaultKnownHosts: String {
        (Environment.value("HOME") ?? "/root") + "/.ssh/known_hosts"
    }

    /// The transport hooks for one remote.
    func hooks(for url: RemoteURL) -> TransportHooks {
        var hooks = TransportHooks()
        hooks.maxReceivedBytes = maxFetchBytes
        hooks.deadlines = deadlines
        let knownHosts = self.knownHosts
        hooks.checkHostKey = { key in KnownHosts.problem(with: key, for: url, file: knownHosts) }
        let sshKey = sshKey, username = username, password = password
        hooks.credential = { fromURL, allowsKey, allowsPassword, allowsUsername in
            if url.scheme == .ssh {
                let user = fromURL ?? url.user ?? "git"
                if allowsKey, let sshKey { return .sshKey(username: user, publicKey: nil, privateKey: sshKey, passphrase: nil) }
                if allowsUsername { return .username(user) }
                return nil
            }
            if allowsPassword, let password { return .userPassword(username: username ?? "x-access-token", password: password.value) }
            return nil
        }
        return hooks
    }
}

/// An OpenSSH known_hosts file, checked the way `ssh` checks it: plain and
/// hashed (`|1|salt|hash`) host names, `[host]:port`, wildcards, and
/// `@revoked` lines. `@cert-authority` lines are not supported and skipped.
enum KnownHosts {
    /// nil when the file trusts `key` for the URL's host; else why not and how to fix it.
    static func problem(with key: HostKey, for url: RemoteURL, file: String) -> String? {
        let name = url.knownHostsName
        let fingerprint = "SHA256:" + Data(SHA256.hash(data: key.blob)).base64EncodedString().filter { $0 != "=" }
        let keyscan = "ssh-keyscan\(url.port.map { " -p \($0)" } ?? "") -t \(key.type) \(url.host) >> \(file)"
        guard let text = FileIO.readText(file) else {
            return "the SSH host key of \(name) (\(key.type) \(fingerprint)) cannot be checked: no known_hosts file at \(file). "
                + "If you trust this key, add it: \(keyscan) (compare the fingerprint with the one the host's administrator publishes), or pass --known-hosts FILE"
        }
        return problem(with: key, for: url, text: text, file: file)
    }

    /// The same check against the text of a known_hosts file (`file` names it in messages).
    static func problem(with key: HostKey, for url: RemoteURL, text: String, file: String) -> String? {
        let name = url.knownHostsName
        let fingerprint = "SHA256:" + Data(SHA256.hash(data: key.blob)).base64EncodedString().filter { $0 != "=" }
        let keyscan = "ssh-keyscan\(url.port.map { " -p \($0)" } ?? "") -t \(key.type) \(url.host) >> \(file)"
        let encoded = Data(key.blob).base64EncodedString()
        var sameTypeOtherKey: Int?
        for (index, rawLine) in text.lines.enumerated() {
            var fields = rawLine.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let first = fields.first, !first.hasPrefix("#") else { continue }
            var marker: String?
            if first.hasPrefix("@") {
                marker = first
                fields.removeFirst()
            }
            guard fields.count >= 3, matches(patterns: fields[0], name: name) else { continue }
            if marker == "@cert-authority" { continue }
            if marker == "@revoked" {
                if fields[2] == encoded { return "the SSH host key of \(name) (\(fingerprint)) is marked @revoked in \(file) line \(index + 1); refusing to connect" }
                continue
            }
            if fields[1] == key.type && fields[2] == encoded { return nil }
            if fields[1] == key.type { sameTypeOtherKey = sameTypeOtherKey ?? index + 1 }
        }
        if let line = sameTypeOtherKey {
            return "the SSH host key of \(name) has CHANGED: the server now presents \(key.type) \(fingerprint), but \(file) line \(line) holds a different key. "
                + "This may be an attack; refusing to connect. If the change is expected, remove the old key (ssh-keygen -R '\(name)' -f \(file)) and add the new one: \(keyscan)"
        }
        return "the SSH host key of \(name) (\(key.type) \(fingerprint)) is not in \(file); refusing to connect. "
            + "If you trust this key, add it: \(keyscan) (compare the fingerprint with the one the host's administrator publishes)"
    }

    /// True when a comma-separated pattern list matches `name` (a negated
    /// pattern that matches wins).
    static func matches(patterns: String, name: String) -> Bool {
        var matched = false
        for pattern in patterns.split(separator: ",").map(String.init) {
            if pattern.hasPrefix("|1|") {
                if hashedMatch(pattern, name: name) { matched = true }
                continue
            }
            let negated = pattern.hasPrefix("!")
            let body = negated ? String(pattern.dropFirst()) : pattern
            if wildcard(Array(body.lowercased()), Array(name.lowercased())) {
                if negated { return false }
                matched = true
            }
        }
        return matched
    }

    private static func hashedMatch(_ pattern: String, name: String) -> Bool {
        let parts = pattern.split(separator: "|").map(String.init)
        guard parts.count == 3, let salt = Data(base64Encoded: parts[1]), let hash = Data(base64Encoded: parts[2]) else { return false }
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Data(name.utf8), using: SymmetricKey(data: salt))
        return Data(mac) == hash
    }

    private static func wildcard(_ pattern: [Character], _ text: [Character]) -> Bool {
        var p = 0, t = 0, star = -1, mark = 0
        while t < text.count {
            if p < pattern.count && (pattern[p] == "?" || pattern[p] == text[t]) {
                p += 1; t += 1
            } else if p < pattern.count && pattern[p] == "*" {
                star = p; mark = t; p += 1
            } else if star >= 0 {
                p = star + 1; mark += 1; t = mark
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == "*" { p += 1 }
        return p == pattern.count
    }
}

#if canImport(Glibc)
import Glibc
#endif
