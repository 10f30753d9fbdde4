import DeployModel
import FoundationEssentials
import Rollback
import Synchronization
import SystemSupport

/// What a caller may do, each role including the ones before it.
public enum Role: Int, Sendable, Comparable, CaseIterable {
    /// Read only: pages, status, releases, the audit, events.
    case viewer
    /// Also rollback, pin and unpin, and a rollout's promote, abort, pause and resume.
    case `operator`
    /// Also past guards (`force`), a blocked version allowed again, and a rewritten history accepted.
    case admin

    public var name: String {
        switch self {
        case .viewer: "viewer"
        case .operator: "operator"
        case .admin: "admin"
        }
    }

    public static func < (a: Role, b: Role) -> Bool { a.rawValue < b.rawValue }

    /// The role called `name` (viewer, operator, admin).
    init?(name: String) {
        guard let role = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = role
    }

    /// The role words of a tokens file: a role, or `break-glass` (an admin whose writes are marked as such).
    static func parse(_ word: String) -> (Role, breakGlass: Bool)? {
        if word == "break-glass" { return (.admin, true) }
        return Role(name: word).map { ($0, false) }
    }

    static let words = ["viewer", "operator", "admin", "break-glass"]
}

/// Who a token or a session is: the name (`Rewind-Actor`), the role, and
/// whether it is a break-glass account (its commits say so, the audit shows it).
public struct Identity: Sendable, Equatable {
    public let name: String
    public let role: Role
    public let breakGlass: Bool

    public init(name: String, role: Role, breakGlass: Bool = false) {
        self.name = name
        self.role = role
        self.breakGlass = breakGlass
    }

    /// "alice (viewer)", "ops (admin, break-glass)": for refusals and the log.
    var described: String { "\(name) (\(role.name)\(breakGlass ? ", break-glass" : ""))" }
}

/// The tokens that may act: the API token (named by `--api-token-name`)
/// and the named tokens of `--ui-tokens-file`. A token is a bearer token
/// for the API and a sign-in secret for the web UI; its name becomes the
/// `Rewind-Actor` of what it writes, its role says what it may do.
public struct Credentials: Sendable {
    struct Entry: Sendable {
        let identity: Identity
        let token: [UInt8]
        var name: String { identity.name }
    }
    private(set) var entries: [Entry] = []

    /// A named token without a role in the tokens file is an operator.
    public static let defaultRole = Role.operator

    public init() {}

    public var isEmpty: Bool { entries.isEmpty }

    /// Adds one named token; a second use of a name or a token is refused.
    /// (The API token keeps whatever length it was given; a tokens file's
    /// tokens must have 16 characters or more.)
    public mutating func add(name: String, token: String, role: Role = .admin, breakGlass: Bool = false) throws(RewindError) {
        try add(Identity(name: name, role: role, breakGlass: breakGlass), token: token, where: nil)
    }

    private mutating func add(_ identity: Identity, token: String, where place: String?) throws(RewindError) {
        let name = identity.name
        let at = place.map { "\($0): " } ?? ""
        guard Self.isValidName(name) else {
            throw RewindError(.usage, "\(at)token name '\(Bounded.printable(name))' is not valid",
                              hint: "use 1 to 64 letters, digits and . _ @ - (the name is written into commits as Rewind-Actor)")
        }
        guard place == nil || token.utf8.count >= 16 else {
            throw RewindError(.usage, "\(at)the token of '\(name)' is shorter than 16 characters", hint: "use a long random token, e.g. `openssl rand -hex 32`")
        }
        guard !entries.contains(where: { $0.name == name }) else { throw RewindError(.usage, "\(at)token name '\(name)' is used twice", hint: "give each token its own name") }
        guard lookup(token) == nil else { throw RewindError(.usage, "\(at)the token of '\(name)' is also the token of another name", hint: "give each name its own token") }
        entries.append(Entry(identity: identity, token: Array(token.utf8)))
    }

    static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count) && name.unicodeScalars.allSatisfy(isNameCharacter)
    }

    /// What a name (a `Rewind-Actor`) is made of: letters, digits and `. _ @ -`.
    static func isNameCharacter(_ scalar: Unicode.Scalar) -> Bool {
        let c = scalar.value
        return (48...57).contains(c) || (65...90).contains(c) || (97...122).contains(c) || c == 46 || c == 95 || c == 64 || c == 45
    }

    /// Parses a tokens file: `name: token [role]` per line, the role one of
    /// viewer, operator (the default), admin or break-glass; blank lines
    /// and `#` comments are skipped. Errors name the file and line, never a token.
    public static func parse(_ text: String, file: String) throws(RewindError) -> Credentials {
        var credentials = Credentials()
        for (index, raw) in text.lines.enumerated() {
            let line = raw.trimmingCharacters()
            if line.isEmpty || line.hasPrefix("#") { continue }
            let place = "\(file):\(index + 1)"
            guard let colon = line.firstIndex(of: ":") else {
                throw RewindError(.usage, "\(place): expected 'name: token'", hint: "one token per line, its name first (the line is not shown: it may hold a secret)")
            }
            let name = String(line[..<colon]).trimmingCharacters()
            let words = line[line.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let token = words.first, words.count <= 2 else {
                throw RewindError(.usage, "\(place): expected 'name: token' or 'name: token role'",
                                  hint: "the token comes after the colon, then at most a role: \(Role.words.joined(separator: ", ")) (the line is not shown: it may hold a secret)")
            }
            var role = (defaultRole, breakGlass: false)
            if words.count == 2 {
                guard let given = Role.parse(words[1]) else {
                    let near = Spelling.nearest(words[1], in: Role.words).map { "did you mean '\($0)'? " } ?? ""
                    throw RewindError(.usage, "\(place): unknown role for '\(Bounded.printable(name))'",
                                      hint: "\(near)the roles are \(Role.words.joined(separator: ", ")) (the word is not shown: a token with a space in it would end up here)")
                }
                role = given
            }
            try credentials.add(Identity(name: name, role: role.0, breakGlass: role.breakGlass), token: token, where: place)
        }
        guard !credentials.isEmpty else { throw RewindError(.usage, "\(file) names no token", hint: "add lines such as 'alice: <a long random token>'") }
        return credentials
    }

    /// Reads and parses a tokens file.
    public static func load(file: String) throws(RewindError) -> Credentials {
        guard let text = FileIO.readText(file) else {
            throw RewindError(.usage, "cannot read the tokens file \(file)", hint: "check that it exists and is readable by Rewind")
        }
        return try parse(text, file: file)
    }

    /// Who holds the token, compared in constant time with every entry.
    func lookup(_ token: String) -> Identity? {
        let given = Array(token.utf8)
        var found: Identity?
        for entry in entries where constantTimeEqual(given, entry.token) { found = entry.identity }
        return found
    }
}

/// Signed-in browsers: a random session id in an HttpOnly, SameSite=Strict
/// cookie, and a CSRF token per session that every form and POST carries.
/// In memory only: a restart signs everyone out.
final class Sessions: Sendable {
    struct Session: Sendable {
        let identity: Identity
        let csrf: String
        let expires: Int64
        var name: String { identity.name }
    }

    static let cookieName = "rewind_session"
    /// How long a session lasts after sign-in.
    let lifetimeMilliseconds: Int64
    /// At most this many live sessions; the oldest goes first.
    let capacity: Int
    private let sessions = Mutex<[String: Session]>([:])

    init(lifetimeMilliseconds: Int64 = 12 * 3_600_000, capacity: Int = 10_000) {
        self.lifetimeMilliseconds = lifetimeMilliseconds
        self.capacity = capacity
    }

    /// A new session for `identity`; its id and CSRF token.
    /// With `expires` (single sign-on: the ID token's expiry), the session ends then if that is sooner.
    func start(_ identity: Identity, expires: Int64? = nil, now: Int64 = Clock.wallMilliseconds()) -> (id: String, session: Session) {
        let id = Self.randomToken()
        let session = Session(identity: identity, csrf: Self.randomToken(), expires: min(now + lifetimeMilliseconds, expires ?? .max))
        sessions.withLock { all in
            all = all.filter { $0.value.expires > now }
            if all.count >= capacity, let oldest = all.min(by: { $0.value.expires < $1.value.expires }) { all[oldest.key] = nil }
            all[id] = session
        }
        return (id, session)
    }

    /// The live session of a cookie value.
    func session(_ id: String?, now: Int64 = Clock.wallMilliseconds()) -> Session? {
        guard let id, id.utf8.count == 64 else { return nil }
        return sessions.withLock { all in
            guard let found = all[id] else { return nil }
            if found.expires <= now { all[id] = nil; return nil }
            return found
        }
    }

    func end(_ id: String?) {
        guard let id else { return }
        _ = sessions.withLock { $0.removeValue(forKey: id) }
    }

    /// 32 random bytes as hex (the system's cryptographic generator).
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in
            let byte = UInt8.random(in: 0...255, using: &generator)
            return String(byte, radix: 16).count == 1 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
        }.joined()
    }
}

/// Wrong tokens per address: after `limit` within `windowMilliseconds`,
/// sign-in from that address is refused (429) until the oldest failure
/// leaves the window. Other addresses, and the API, are not affected.
final class SignInThrottle: Sendable {
    let limit: Int
    let windowMilliseconds: Int64
    private let failures = Mutex<[String: [Int64]]>([:])
    /// Wall milliseconds (a test's is frozen: its window never passes).
    private let clock: @Sendable () -> Int64

    init(limit: Int = 10, windowMilliseconds: Int64 = 60_000, clock: @escaping @Sendable () -> Int64 = { Clock.wallMilliseconds() }) {
        self.limit = limit
        self.windowMilliseconds = windowMilliseconds
        self.clock = clock
    }

    /// Seconds to wait, when the address is over the limit.
    func refusal(_ peer: String, now: Int64? = nil) -> Int? {
        let now = now ?? clock()
        return failures.withLock { all in
            let recent = (all[peer] ?? []).filter { $0 > now - windowMilliseconds }
            all[peer] = recent.isEmpty ? nil : recent
            guard recent.count >= limit, let oldest = recent.first else { return nil }
            return Int((oldest + windowMilliseconds - now + 999) / 1000)
        }
    }

    func failed(_ peer: String, now: Int64? = nil) {
        let now = now ?? clock()
        failures.withLock { all in
            // Bounded: a flood of addresses forgets the quietest ones first.
            if all.count >= 10_000, all[peer] == nil, let quietest = all.min(by: { ($0.value.last ?? 0) < ($1.value.last ?? 0) }) { all[quietest.key] = nil }
            all[peer, default: []].append(now)
        }
    }

    func succeeded(_ peer: String) {
        _ = failures.withLock { $0.removeValue(forKey: peer) }
    }
}

/// One log line per key (an address) every `intervalMilliseconds`; the
/// lines held back in between are counted and reported with the next.
final class LogBudget: Sendable {
    let intervalMilliseconds: Int64
    private let state = Mutex<[String: (last: Int64, quiet: Int)]>([:])
    /// Wall milliseconds (a test's stands still).
    private let clock: @Sendable () -> Int64

    init(intervalMilliseconds: Int64 = 10_000, clock: @escaping @Sendable () -> Int64 = { Clock.wallMilliseconds() }) {
        self.intervalMilliseconds = intervalMilliseconds
        self.clock = clock
    }

    /// Nil: not now (counted). Else: log now, saying how many were held back.
    func admit(_ key: String, now given: Int64? = nil) -> Int? {
        let now = given ?? clock()
        return state.withLock { all in
            if let entry = all[key], now - entry.last < intervalMilliseconds {
                all[key]?.quiet += 1
                return nil
            }
            // Bounded: a flood of addresses forgets the quietest first.
            if all.count >= 10_000, all[key] == nil, let oldest = all.min(by: { $0.value.last < $1.value.last }) { all[oldest.key] = nil }
            let quiet = all[key]?.quiet ?? 0
            all[key] = (now, 0)
            return quiet
        }
    }
}
