
/// `updates:` in app.yaml: where new versions of an OCI artifact come from,
/// which tags count, and how often the registry is asked.
public struct UpdatePolicy: Sendable, Equatable, Codable {
    /// `REGISTRY/REPOSITORY` (default: the artifact's).
    public var repository: OCIReference
    public var tags: TagPolicy
    public var interval: Duration

    public init(repository: OCIReference, tags: TagPolicy, interval: Duration = Duration(milliseconds: 300_000)) {
        self.repository = repository
        self.tags = tags
        self.interval = interval
    }
}

/// Which tags are versions, and which is newest.
public enum TagPolicy: Sendable, Equatable, Codable {
    /// Semantic versions (an optional leading `v`) within a range.
    case semver(SemverRange)
    /// Tags the whole pattern matches, ordered by its capture groups
    /// (numerically where both are numbers).
    case regex(String)

    /// The newest of `tags` the policy accepts; nil when none is.
    public func newest(_ tags: [String]) -> String? {
        switch self {
        case .semver(let range):
            var best: (tag: String, version: SemanticVersion)?
            for tag in tags {
                guard let version = SemanticVersion(tag), range.contains(version) else { continue }
                if let current = best, version < current.version || (version == current.version && tag <= current.tag) { continue }
                best = (tag, version)
            }
            return best?.tag
        case .regex(let pattern):
            guard let regex = try? Regex(pattern) else { return nil }
            let keyed = tags.compactMap { tag -> (String, [Substring])? in
                guard let match = try? regex.wholeMatch(in: tag) else { return nil }
                return (tag, (1..<match.output.count).map { match.output[$0].substring ?? "" })
            }
            return keyed.max { Self.precedes($0.1, $1.1) || ($0.1 == $1.1 && $0.0 < $1.0) }?.0
        }
    }

    /// Group by group: numbers by value, else text.
    static func precedes(_ a: [Substring], _ b: [Substring]) -> Bool {
        for (x, y) in zip(a, b) where x != y {
            if let m = Int(x), let n = Int(y) { return m < n }
            return x < y
        }
        return a.count < b.count
    }
}

/// `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`, with an optional leading `v`.
public struct SemanticVersion: Comparable, Sendable, CustomStringConvertible {
    public let major: Int
    public let minor: Int
    public let patch: Int
    public let prerelease: [String]

    public init?(_ text: String) {
        var rest = Substring(text)
        if rest.hasPrefix("v") { rest = rest.dropFirst() }
        if let plus = rest.firstIndex(of: "+") { rest = rest[..<plus] }
        var pre: [String] = []
        if let dash = rest.firstIndex(of: "-") {
            pre = rest[rest.index(after: dash)...].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard !pre.isEmpty, pre.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" } }) else { return nil }
            rest = rest[..<dash]
        }
        let parts = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let major = Self.number(parts[0]), let minor = Self.number(parts[1]), let patch = Self.number(parts[2]) else { return nil }
        (self.major, self.minor, self.patch, prerelease) = (major, minor, patch, pre)
    }

    init(_ major: Int, _ minor: Int, _ patch: Int, prerelease: [String] = []) {
        (self.major, self.minor, self.patch, self.prerelease) = (major, minor, patch, prerelease)
    }

    private static func number(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.count <= 9, text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber) else { return nil }
        return Int(text)
    }

    public var description: String { "\(major).\(minor).\(patch)" + (prerelease.isEmpty ? "" : "-" + prerelease.joined(separator: ".")) }

    public static func < (a: SemanticVersion, b: SemanticVersion) -> Bool {
        if (a.major, a.minor, a.patch) != (b.major, b.minor, b.patch) { return (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch) }
        // A release is newer than its prereleases; prereleases compare field by field.
        if a.prerelease.isEmpty || b.prerelease.isEmpty { return !a.prerelease.isEmpty && b.prerelease.isEmpty }
        for (x, y) in zip(a.prerelease, b.prerelease) where x != y {
            switch (Int(x), Int(y)) {
            case let (m?, n?): return m < n
            case (.some, nil): return true
            case (nil, .some): return false
            case (nil, nil): return x < y
            }
        }
        return a.prerelease.count < b.prerelease.count
    }

    public static func == (a: SemanticVersion, b: SemanticVersion) -> Bool {
        (a.major, a.minor, a.patch) == (b.major, b.minor, b.patch) && a.prerelease == b.prerelease
    }
}

/// A range of versions as npm and Cargo write them: comparators joined by
/// spaces (all must hold), alternatives by `||`. A comparator is `>=1.2.0`,
/// `>1.2.0`, `<=…`, `<…`, `=…` or a bare version; `^1.2.3` (same major; for
/// 0.x the same minor), `~1.2.3` (same minor); `1.2.x`, `1.x`, `*`. A
/// prerelease is in range only when a comparator names one of the same
/// MAJOR.MINOR.PATCH.
public struct SemverRange: Sendable, Equatable, Codable {
    struct Comparator: Equatable {
        enum Operation: String { case less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">=", equal = "=" }
        let operation: Operation
        let version: SemanticVersion

        func holds(_ v: SemanticVersion) -> Bool {
            switch operation {
            case .less: return v < version
            case .lessOrEqual: return v <= version
            case .greater: return v > version
            case .greaterOrEqual: return v >= version
            case .equal: return v == version
            }
        }
    }

    let alternatives: [[Comparator]]
    public let text: String

    public static func == (a: SemverRange, b: SemverRange) -> Bool { a.text == b.text }

    /// Stored as its text.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let parsed = SemverRange(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(text)' is not a version range")
        }
        self = parsed
    }

    /// Nil when `text` is not a range this grammar reads.
    public init?(_ text: String) {
        var alternatives: [[Comparator]] = []
        for alternative in Self.alternatives(text) {
            var all: [Comparator] = []
            for word in alternative.split(separator: " ") {
                guard let comparators = Self.comparators(String(word)) else { return nil }
                all += comparators
            }
            alternatives.append(all)
        }
        guard !alternatives.isEmpty, !text.allSatisfy({ $0 == " " }) else { return nil }
        self.alternatives = alternatives
        self.text = text
    }

    public func contains(_ version: SemanticVersion) -> Bool {
        alternatives.contains { comparators in
            guard comparators.allSatisfy({ $0.holds(version) }) else { return false }
            guard !version.prerelease.isEmpty else { return true }
            return comparators.contains { !$0.version.prerelease.isEmpty && ($0.version.major, $0.version.minor, $0.version.patch) == (version.major, version.minor, version.patch) }
        }
    }

    /// `text` split at each `||`.
    private static func alternatives(_ text: String) -> [Substring] {
        var parts: [Substring] = []
        var rest = Substring(text)
        while let bar = rest.firstRange(of: "||") {
            parts.append(rest[..<bar.lowerBound])
            rest = rest[bar.upperBound...]
        }
        return parts + [rest]
    }

    private static func comparators(_ word: String) -> [Comparator]? {
        if word == "*" || word == "x" { return [] }
        for op in ["<=", ">=", "<", ">", "="] where word.hasPrefix(op) {
            guard let version = SemanticVersion(String(word.dropFirst(op.count))), let operation = Comparator.Operation(rawValue: op) else { return nil }
            return [Comparator(operation: operation, version: version)]
        }
        if word.hasPrefix("^") || word.hasPrefix("~") {
            // 1, 1.4 or 1.4.2 (missing parts are 0).
            let given = word.dropFirst().split(separator: ".", omittingEmptySubsequences: false)
            let full = given.count == 3 ? SemanticVersion(String(word.dropFirst())) : given.count < 3 && given.allSatisfy({ Int($0) != nil })
                ? SemanticVersion((given + ["0", "0"]).prefix(3).joined(separator: ".")) : nil
            guard let v = full else { return nil }
            let upper: SemanticVersion
            if word.hasPrefix("~") {
                upper = given.count == 1 ? SemanticVersion(v.major + 1, 0, 0, prerelease: ["0"]) : SemanticVersion(v.major, v.minor + 1, 0, prerelease: ["0"])
            } else if v.major > 0 || given.count == 1 {
                upper = SemanticVersion(v.major + 1, 0, 0, prerelease: ["0"])
            } else if v.minor > 0 || given.count == 2 {
                upper = SemanticVersion(0, v.minor + 1, 0, prerelease: ["0"])
            } else {
                upper = SemanticVersion(0, 0, v.patch + 1, prerelease: ["0"])
            }
            return [Comparator(operation: .greaterOrEqual, version: v), Comparator(operation: .less, version: upper)]
        }
        // 1.2.x, 1.x, 1.2.3
        let parts = word.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let wild = { (p: String) in p == "x" || p == "X" || p == "*" }
        if let first = parts.first, let major = Int(first), parts.count <= 3 {
            if parts.count == 1 || (parts.count >= 2 && wild(parts[1])) {
                return [Comparator(operation: .greaterOrEqual, version: SemanticVersion(major, 0, 0)),
                        Comparator(operation: .less, version: SemanticVersion(major + 1, 0, 0, prerelease: ["0"]))]
            }
            if let minor = Int(parts[1]), parts.count == 2 || wild(parts[2]) {
                return [Comparator(operation: .greaterOrEqual, version: SemanticVersion(major, minor, 0)),
                        Comparator(operation: .less, version: SemanticVersion(major, minor + 1, 0, prerelease: ["0"]))]
            }
        }
        return SemanticVersion(word).map { [Comparator(operation: .equal, version: $0)] }
    }
}

extension AppSpec {
    /// `updates: {repository, tags: {semver: RANGE} | {regex: PATTERN}, interval}`:
    /// only for an OCI artifact, whose repository is the default.
    static func parseUpdates(_ reader: YAMLReader, _ map: Node.Mapping, artifact: Artifact?) -> UpdatePolicy? {
        guard let node = reader.value(map, "updates", parent: ""), let u = reader.mapping(node, field: "updates") else { return nil }
        reader.warnUnknown(u, known: ["repository", "tags", "interval"], parent: "updates")
        var base: OCIReference?
        if case .oci(let reference)? = artifact?.source { base = OCIReference(registry: reference.registry, repository: reference.repository) }
        if let text = reader.string(u, "repository", parent: "updates") {
            // REGISTRY/REPOSITORY alone: the parser wants a tag, which is not used here.
            var parsed = OCIReference.parse(text)
            if case .failure = parsed { parsed = OCIReference.parse(text + ":latest") }
            switch parsed {
            case .success(let found): base = OCIReference(registry: found.registry, repository: found.repository)
            case .failure(let error):
                reader.error(reader.value(u, "repository", parent: "updates"), field: "updates.repository", error.message, hint: "write REGISTRY/REPOSITORY")
                return nil
            }
        }
        guard case .oci? = artifact?.source, let repository = base else {
            reader.error(node, field: "updates", "updates: proposes new versions of an OCI artifact, and this app has none",
                         hint: "give artifact: {oci: REGISTRY/REPOSITORY:TAG@sha256:DIGEST}; an update commit moves that value")
            return nil
        }
        guard let tags = parseTagPolicy(reader, u) else { return nil }
        var policy = UpdatePolicy(repository: repository, tags: tags)
        if let interval = reader.duration(u, "interval", parent: "updates") {
            // Every check lists the repository's tags: a registry is not asked more than once a second.
            guard interval.milliseconds >= 1_000 else {
                reader.error(reader.value(u, "interval", parent: "updates"), field: "updates.interval", "\(interval) is shorter than the least interval, 1s",
                             hint: "use 1s or more; the registry's push notifications (POST /hooks/registry) bring new tags at once")
                return nil
            }
            policy.interval = interval
        }
        return policy
    }

    /// `updates.tags`: `{semver: RANGE}` or `{regex: PATTERN}` with a capture group.
    static func parseTagPolicy(_ reader: YAMLReader, _ u: Node.Mapping) -> TagPolicy? {
        guard let tagsNode = reader.value(u, "tags", parent: "updates", required: true), let t = reader.mapping(tagsNode, field: "updates.tags") else { return nil }
        reader.warnUnknown(t, known: ["semver", "regex"], parent: "updates.tags")
        let semver = reader.string(t, "semver", parent: "updates.tags")
        let regex = reader.string(t, "regex", parent: "updates.tags")
        switch (semver, regex) {
        case (let range?, nil):
            guard let parsed = SemverRange(range) else {
                reader.error(reader.value(t, "semver", parent: "updates.tags"), field: "updates.tags.semver", "'\(range)' is not a version range",
                             hint: "e.g. \">=1.4.0 <2.0.0\", \"^1.4\", \"~1.4.2\", \"1.x\"")
                return nil
            }
            return .semver(parsed)
        case (nil, let pattern?):
            guard (try? Regex(pattern)) != nil else {
                reader.error(reader.value(t, "regex", parent: "updates.tags"), field: "updates.tags.regex", "'\(pattern)' is not a regular expression")
                return nil
            }
            // A capture group: an unescaped "(" that does not open a (?…) group.
            let unescaped = pattern.replacing("\\\\", with: "").replacing("\\(", with: "")
            guard unescaped.contains("(") && unescaped.replacing("(?", with: "").contains("(") else {
                reader.error(reader.value(t, "regex", parent: "updates.tags"), field: "updates.tags.regex", "the pattern has no capture group to order tags by",
                             hint: "capture the numbers, e.g. ^build-(\\d+)$")
                return nil
            }
            return .regex(pattern)
        default:
            reader.error(tagsNode, field: "updates.tags", "give exactly one of semver: or regex:", hint: "e.g. tags: {semver: \"^1.4\"}")
            return nil
        }
    }
}
