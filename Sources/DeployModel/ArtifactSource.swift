/// What must exist for a version to run: a file on the host, a download,
/// or an image in an OCI registry, each checked by its digest.
public struct Artifact: Sendable, Equatable, Codable, CustomStringConvertible {
    public enum Source: Sendable, Equatable, Codable {
        /// An absolute path, a `file://` URL, or a path relative to the artifact root.
        case path(String)
        /// An `http://` or `https://` download (its `sha256` is required).
        case url(String)
        /// An artifact in an OCI registry, pinned by its manifest's digest.
        case oci(OCIReference)
    }

    public var source: Source
    /// SHA-256 of the file or download, 64 lower-case hex digits (an OCI
    /// artifact is checked by the digest in its reference instead).
    public var sha256: String?

    public init(_ source: Source, sha256: String? = nil) {
        self.source = source
        self.sha256 = sha256
    }

    /// The file's path, for an artifact on the host.
    public var path: String? {
        if case .path(let path) = source { return path }
        return nil
    }

    public var description: String {
        switch source {
        case .path(let path): return path
        case .url(let url): return url
        case .oci(let reference): return "oci://\(reference)"
        }
    }

    /// True for 64 lower-case hexadecimal digits.
    public static func isSHA256(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }
}

/// Whether an artifact that is not a file on this host is at hand for a
/// rollback: in the artifact cache, or still where it is published. The
/// rollback guards ask it before any commit is written.
public protocol ArtifactAvailability: Sendable {
    func availability(of artifact: Artifact) -> ArtifactCheck
    /// A container image (`platform: container`): in the container engine's
    /// store counts as cached; else its registry is asked.
    func availability(ofImage image: OCIReference) -> ArtifactCheck
}

extension ArtifactAvailability {
    /// Without a container engine to ask: the registry.
    public func availability(ofImage image: OCIReference) -> ArtifactCheck { availability(of: Artifact(.oci(image))) }
}

/// What `ArtifactAvailability` found.
public enum ArtifactCheck: Sendable, Equatable {
    /// In the artifact cache, at this path.
    case cached(String)
    /// Not cached, but its registry (or server) has it.
    case published(String)
    /// Neither: what is missing and where, or why it could not be asked.
    case missing(String)
}

/// `REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST]`, as in the OCI distribution
/// spec and `docker pull`, except that the registry is always named (no
/// implicit Docker Hub). The digest is what is deployed; the tag is a label
/// for people and for `updates:`.
public struct OCIReference: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    /// `host` or `host:port`.
    public var registry: String
    public var repository: String
    public var tag: String?
    /// `sha256:` and 64 lower-case hex digits.
    public var digest: String?

    public init(registry: String, repository: String, tag: String? = nil, digest: String? = nil) {
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
    }

    public var description: String {
        "\(registry)/\(repository)" + (tag.map { ":\($0)" } ?? "") + (digest.map { "@\($0)" } ?? "")
    }

    /// The same artifact pinned to `digest`.
    public func pinned(to digest: String) -> OCIReference {
        OCIReference(registry: registry, repository: repository, tag: tag, digest: digest)
    }

    /// Parses a reference; the error says what is wrong and how to write it.
    public static func parse(_ text: String) -> Result<OCIReference, ReferenceError> {
        var rest = Substring(text)
        if rest.hasPrefix("oci://") { rest = rest.dropFirst("oci://".count) }
        var digest: String?
        if let at = rest.firstIndex(of: "@") {
            let given = String(rest[rest.index(after: at)...])
            guard given.hasPrefix("sha256:"), Artifact.isSHA256(String(given.dropFirst(7))) else {
                return .failure(ReferenceError("the digest '\(bounded(given))' is not sha256: and 64 lower-case hex digits"))
            }
            digest = given
            rest = rest[..<at]
        }
        guard let slash = rest.firstIndex(of: "/") else {
            return .failure(ReferenceError("'\(bounded(text))' names no registry", hint: "write REGISTRY/REPOSITORY:TAG@sha256:DIGEST, e.g. registry.example.com/team/api:1.4.0@sha256:…"))
        }
        let registry = String(rest[..<slash])
        var repository = String(rest[rest.index(after: slash)...])
        var tag: String?
        if let colon = repository.lastIndex(of: ":"), !repository[colon...].contains("/") {
            tag = String(repository[repository.index(after: colon)...])
            repository = String(repository[..<colon])
        }
        guard isRegistry(registry) else {
            return .failure(ReferenceError("'\(bounded(registry))' is not a registry host (a name with a dot, localhost, or an address, with an optional :port)",
                                           hint: "write REGISTRY/REPOSITORY:TAG@sha256:DIGEST; Docker Hub is docker.io/library/NAME"))
        }
        guard isRepository(repository) else {
            return .failure(ReferenceError("'\(bounded(repository))' is not a repository name (lower-case letters and digits, separated by '.', '_', '-' or '/')"))
        }
        if let tag, !isTag(tag) {
            return .failure(ReferenceError("'\(bounded(tag))' is not a tag (up to 128 letters, digits, '_', '.', '-'; not starting with '.' or '-')"))
        }
        guard tag != nil || digest != nil else {
            return .failure(ReferenceError("'\(bounded(text))' has neither a tag nor a digest", hint: "add :TAG and @sha256:DIGEST"))
        }
        return .success(OCIReference(registry: registry, repository: repository, tag: tag, digest: digest))
    }

    static func isRegistry(_ text: String) -> Bool {
        var host = Substring(text)
        if let colon = host.lastIndex(of: ":") {
            let port = host[host.index(after: colon)...]
            guard !port.isEmpty, port.count <= 5, port.allSatisfy(\.isASCIIDigit), let number = Int(port), number > 0, number < 65_536 else { return false }
            host = host[..<colon]
        }
        guard !host.isEmpty, host.utf8.count <= 253, host.contains(".") || host == "localhost" else { return false }
        return host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && label.first != "-" && label.last != "-"
                && label.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 45 }
        }
    }

    static func isRepository(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 255 else { return false }
        return text.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { component in
            guard let first = component.utf8.first, let last = component.utf8.last, isLowerAlnum(first), isLowerAlnum(last) else { return false }
            return component.utf8.allSatisfy { isLowerAlnum($0) || $0 == 46 || $0 == 95 || $0 == 45 }
        }
    }

    static func isTag(_ text: String) -> Bool {
        guard let first = text.utf8.first, text.utf8.count <= 128, first != 46, first != 45 else { return false }
        return text.utf8.allSatisfy { isLowerAlnum($0) || ($0 >= 65 && $0 <= 90) || $0 == 95 || $0 == 46 || $0 == 45 }
    }

    private static func isLowerAlnum(_ byte: UInt8) -> Bool { (byte >= 97 && byte <= 122) || (byte >= 48 && byte <= 57) }

    private static func bounded(_ text: String) -> String { text.count > 80 ? String(text.prefix(80)) + "…" : text }

    /// Why a reference does not parse.
    public struct ReferenceError: Error, Equatable, Sendable {
        public let message: String
        public let hint: String?
        init(_ message: String, hint: String? = nil) {
            self.message = message
            self.hint = hint
        }
    }
}

private extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
