import Rollback

/// The address of a remote deployment repository.
public struct RemoteURL: Sendable, Equatable, CustomStringConvertible {
    public enum Scheme: String, Sendable {
        case file, git, ssh, https, http
    }

    /// The address as given (never holds credentials: those are refused).
    public let text: String
    public let scheme: Scheme
    public let host: String
    /// The port when given; nil for the scheme's default.
    public let port: Int?
    /// The user name before `@` (SSH only).
    public let user: String?

    public var description: String { text }

    /// The name known_hosts uses for this host: `host`, or `[host]:port` off port 22.
    public var knownHostsName: String {
        guard let port, port != 22 else { return host }
        return "[\(host)]:\(port)"
    }

    /// Parses `text`. Returns nil for a local path (not a URL at all); throws
    /// for a URL Rewind cannot use, such as one with credentials in it.
    public static func parse(_ text: String) throws -> RemoteURL? {
        if let range = text.firstRange(of: "://") {
            let schemeText = String(text[..<range.lowerBound]).lowercased()
            guard let scheme = Scheme(rawValue: schemeText) else {
                throw RewindError(.usage, "unsupported repository URL scheme '\(schemeText)' in \(redacted(text))",
                                  hint: "use file://, git://, ssh://, user@host:path or https://")
            }
            let rest = text[range.upperBound...]
            let authority = String(rest.prefix { $0 != "/" })
            var user: String?
            var hostPort = authority
            if let at = authority.lastIndex(of: "@") {
                let userInfo = String(authority[..<at])
                hostPort = String(authority[authority.index(after: at)...])
                // Only SSH has a use for a user name; a password never belongs in a URL.
                if userInfo.contains(":") || scheme != .ssh {
                    throw RewindError(.usage, "the repository URL \(redacted(text)) has credentials in it",
                                      hint: scheme == .ssh
                                          ? "remove the password from the URL and use an SSH key (--ssh-key FILE)"
                                          : "remove them from the URL; put the token in a file and pass --git-token-file FILE (or set REWIND_GIT_TOKEN)")
                }
                user = userInfo
            }
            if scheme == .file { return RemoteURL(text: text, scheme: .file, host: "", port: nil, user: nil) }
            let (host, port) = try splitHostPort(hostPort, in: text)
            guard !host.isEmpty else {
                throw RewindError(.usage, "the repository URL \(redacted(text)) names no host", hint: "write it as \(scheme.rawValue)://HOST/PATH")
            }
            return RemoteURL(text: text, scheme: scheme, host: host, port: port, user: user)
        }
        // scp-style: [user@]host:path, with no slash before the colon.
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let before = text[..<colon]
        guard !before.contains("/"), before.count > 1 else { return nil }
        // user:password@host:path reads as host "user" to the colon rule.
        if let at = text.prefix(while: { $0 != "/" }).lastIndex(of: "@"), text[..<at].contains(":") {
            throw RewindError(.usage, "the repository URL \(redactedSCP(text)) has a password in it",
                              hint: "remove the password from the URL and use an SSH key (--ssh-key FILE)")
        }
        var host = String(before)
        var user: String?
        if let at = host.lastIndex(of: "@") {
            user = String(host[..<at])
            host = String(host[host.index(after: at)...])
        }
        return RemoteURL(text: text, scheme: .ssh, host: host, port: nil, user: user)
    }

    private static func splitHostPort(_ text: String, in url: String) throws -> (String, Int?) {
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            let host = String(text[text.index(after: text.startIndex)..<close])
            let after = text[text.index(after: close)...]
            guard after.hasPrefix(":") else { return (host, nil) }
            return (host, try port(String(after.dropFirst()), in: url))
        }
        guard let colon = text.lastIndex(of: ":") else { return (text, nil) }
        return (String(text[..<colon]), try port(String(text[text.index(after: colon)...]), in: url))
    }

    private static func port(_ text: String, in url: String) throws -> Int {
        guard let value = Int(text), (1...65535).contains(value) else {
            throw RewindError(.usage, "the port '\(text)' in \(redacted(url)) is not a port number", hint: "use a number from 1 to 65535")
        }
        return value
    }

    /// An scp-style address with a `user:password@` part hidden.
    static func redactedSCP(_ text: String) -> String {
        guard let at = text.prefix(while: { $0 != "/" }).lastIndex(of: "@"), text[..<at].contains(":") else { return text }
        return "***" + String(text[at...])
    }

    /// The URL with anything between `://` and `@` hidden, for messages.
    public static func redacted(_ text: String) -> String {
        guard let range = text.firstRange(of: "://") else { return redactedSCP(text) }
        let rest = text[range.upperBound...]
        let authority = rest.prefix { $0 != "/" }
        guard let at = authority.lastIndex(of: "@") else { return text }
        return String(text[..<range.upperBound]) + "***" + String(rest[at...])
    }
}
