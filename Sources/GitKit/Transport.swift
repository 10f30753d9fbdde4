import CGitStream
import CLibGit2

/// An SSH server's host key as the server presented it.
public struct HostKey: Sendable, Equatable {
    /// The key type as OpenSSH names it (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`).
    public let type: String
    /// The key in SSH wire format: what known_hosts holds, base64-encoded.
    public let blob: [UInt8]

    public init(type: String, blob: [UInt8]) {
        self.type = type
        self.blob = blob
    }
}

/// A credential handed to libgit2 when the server asks for one.
public enum Credential: Sendable {
    /// An SSH key pair from files.
    case sshKey(username: String, publicKey: String?, privateKey: String, passphrase: String?)
    /// A user name and password (or token) for HTTPS.
    case userPassword(username: String, password: String)
    /// Only a user name (SSH asks for it before the key when the URL has none).
    case username(String)
}

/// What a transport asks of its caller: credentials and host-key decisions.
/// Both run on the thread that called `fetch` or `push`.
public struct TransportHooks {
    /// Decides whether to trust an SSH host key: nil trusts it, a message refuses
    /// the connection with that message.
    public var checkHostKey: ((HostKey) -> String?)?
    /// The credential for a request; `allowsKey`/`allowsPassword` say what the
    /// server accepts. nil gives up with "no credentials".
    public var credential: ((_ usernameFromURL: String?, _ allowsKey: Bool, _ allowsPassword: Bool, _ allowsUsername: Bool) -> Credential?)?
    /// Abort a fetch that has received more than this many bytes (nil: no limit).
    public var maxReceivedBytes: Int?
    /// How long connecting and each wait for the host may take.
    public var deadlines = NetworkDeadlines()

    public init() {}
}

/// How long a git network transfer may wait for the host. libgit2 1.5 has
/// none of its own; Rewind's socket stream (CGitStream) enforces these.
public struct NetworkDeadlines: Sendable, Equatable {
    /// Connecting to the host, in milliseconds (0: no deadline).
    public var connectMilliseconds: Int64
    /// Each wait for the host to send or take bytes, in milliseconds (0: no deadline).
    public var idleMilliseconds: Int64

    public init(connectMilliseconds: Int64 = 10_000, idleMilliseconds: Int64 = 30_000) {
        self.connectMilliseconds = connectMilliseconds
        self.idleMilliseconds = idleMilliseconds
    }

    /// Ends every git transfer under way, and every later one, at once
    /// (Ctrl-C, shutdown): each fails with "cancelled".
    public static func cancelAll() {
        GitRuntime.bootstrap()
        rewind_transfer_cancel_all()
    }

    /// How many git network streams are open (for leak tests).
    public static var openStreams: Int { Int(rewind_stream_open_count()) }
}

/// One reference the server did not update in a push, with its reason
/// (`non-fast-forward`, `fetch first`, a hook's refusal).
public struct PushRejection: Sendable, Equatable {
    public let reference: String
    public let reason: String
}

/// What a push did: the references the server refused, and those it
/// already had at the pushed commit (another writer pushed the very same
/// commit first: nothing was sent for them).
public struct PushOutcome: Sendable, Equatable {
    public var rejections: [PushRejection] = []
    public var alreadyThere: [String] = []
}

/// The state a transport call's callbacks share, reached through libgit2's payload pointer.
private final class TransportSession {
    let hooks: TransportHooks
    var refusal: String?
    var credentialAttempts = 0
    var rejections: [PushRejection] = []
    var alreadyThere: [String] = []
    var receivedBytes = 0

    init(hooks: TransportHooks) { self.hooks = hooks }
}

extension Repository {
    /// Fetches `refspecs` (`+refs/heads/*:refs/rewind/remote/heads/*`) from `url`
    /// into this repository, updating the destination references. Tags are not fetched.
    public func fetch(url: String, refspecs: [String], hooks: TransportHooks) throws {
        try withRemote(url: url, hooks: hooks) { remote, session, callbacks in
            var options = git_fetch_options()
            try check(git_fetch_options_init(&options, UInt32(GIT_FETCH_OPTIONS_VERSION)), "git_fetch_options_init")
            options.callbacks = callbacks
            options.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE
            options.update_fetchhead = 0
            let rc = withStrArray(refspecs) { specs -> Int32 in
                var specs = specs
                return git_remote_fetch(remote, &specs, &options, "rewind: fetch")
            }
            try session.check(rc, "git_remote_fetch")
        }
    }

    /// Pushes `refspecs` (`refs/heads/main:refs/heads/main`) to `url`. A
    /// leading `+` (force) is refused, except for a destination under
    /// `forcing` (a fleet host's own status ref, which it replaces). Returns
    /// the references the server refused, read from the
    /// `push_update_reference` callback; empty when every reference was updated.
    public func push(url: String, refspecs: [String], hooks: TransportHooks, forcing: String? = nil) throws -> PushOutcome {
        if let forced = refspecs.first(where: { spec in
            guard spec.hasPrefix("+") else { return false }
            guard let forcing, let destination = spec.split(separator: ":").last else { return true }
            return !destination.hasPrefix(forcing) || destination.contains("*")
        }) {
            throw GitError(code: .other(-1), function: "push", message: "refusing to force-push \(forced)")
        }
        return try withRemote(url: url, hooks: hooks) { remote, session, callbacks in
            var options = git_push_options()
            try check(git_push_options_init(&options, UInt32(GIT_PUSH_OPTIONS_VERSION)), "git_push_options_init")
            options.callbacks = callbacks
            // The negotiation names the remote's current commit of each
            // reference (`dst`): equal to ours, the remote has it already.
            options.callbacks.push_negotiation = { updates, count, payload in
                guard let updates, let payload else { return 0 }
                let session = Unmanaged<TransportSession>.fromOpaque(payload).takeUnretainedValue()
                for i in 0..<count {
                    guard var update = updates[i]?.pointee, let name = update.dst_refname else { continue }
                    if git_oid_equal(&update.src, &update.dst) != 0 { session.alreadyThere.append(String(cString: name)) }
                }
                return 0
            }
            let rc = withStrArray(refspecs) { specs -> Int32 in
                var specs = specs
                return git_remote_push(remote, &specs, &options)
            }
            try session.check(rc, "git_remote_push")
            return PushOutcome(rejections: session.rejections, alreadyThere: session.alreadyThere)
        }
    }

    private func withRemote<T>(url: String, hooks: TransportHooks, _ body: (OpaquePointer?, TransportSession, git_remote_callbacks) throws -> T) throws -> T {
        let transfer = rewind_transfer_begin(hooks.deadlines.connectMilliseconds, hooks.deadlines.idleMilliseconds)
        do {
            let result = try withRemoteConnection(url: url, hooks: hooks, body)
            _ = rewind_transfer_end(transfer)
            return result
        } catch let error as GitError {
            let outcome = rewind_transfer_end(transfer)
            throw Self.transferError(error, outcome: outcome, deadlines: hooks.deadlines)
        }
    }

    /// The error of a transfer its deadline or a cancellation ended, in those
    /// words (libssh2 only sees its connection shut down).
    private static func transferError(_ error: GitError, outcome: rewind_transfer_outcome, deadlines: NetworkDeadlines) -> GitError {
        switch outcome {
        case REWIND_TRANSFER_CANCELLED:
            return error.message.hasPrefix("cancelled") ? GitError(code: .cancelled, function: error.function, message: error.message)
                : GitError(code: .cancelled, function: error.function, message: "cancelled: \(error.message)")
        case REWIND_TRANSFER_IDLE_TIMEOUT, REWIND_TRANSFER_CONNECT_TIMEOUT:
            let message = error.message.contains("deadline") ? error.message : "the git host stopped answering (no byte moved for \(Double(deadlines.idleMilliseconds) / 1000) s: idle deadline): \(error.message)"
            return GitError(code: .timedOut, function: error.function, message: message)
        default:
            return error
        }
    }

    private func withRemoteConnection<T>(url: String, hooks: TransportHooks, _ body: (OpaquePointer?, TransportSession, git_remote_callbacks) throws -> T) throws -> T {
        var remote: OpaquePointer?
        // Not git_remote_create_anonymous: it applies url.*.insteadOf through
        // a regular-expression walk of the configuration, and libgit2 1.5.1's
        // git_regexp_match leaks its pcre2 match data (about 20 KB) for every
        // entry that does not match: 80 KB or more per fetch or push.
        var options = git_remote_create_options()
        try check(git_remote_create_options_init(&options, UInt32(GIT_REMOTE_CREATE_OPTIONS_VERSION)), "git_remote_create_options_init")
        options.repository = handle
        options.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF.rawValue | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC.rawValue
        try check(git_remote_create_with_opts(&remote, url, &options), "git_remote_create_with_opts")
        defer { git_remote_free(remote) }
        let session = TransportSession(hooks: hooks)
        var callbacks = git_remote_callbacks()
        try check(git_remote_init_callbacks(&callbacks, UInt32(GIT_REMOTE_CALLBACKS_VERSION)), "git_remote_init_callbacks")
        callbacks.payload = Unmanaged.passUnretained(session).toOpaque()
        callbacks.certificate_check = RemoteCallbacks.certificateCheck
        callbacks.credentials = RemoteCallbacks.credentials
        callbacks.push_update_reference = RemoteCallbacks.pushUpdateReference
        callbacks.transfer_progress = RemoteCallbacks.transferProgress
        return try withExtendedLifetime(session) { try body(remote, session, callbacks) }
    }

    static func sshKeyTypeName(_ type: git_cert_ssh_raw_type_t) -> String {
        switch type {
        case GIT_CERT_SSH_RAW_TYPE_RSA: return "ssh-rsa"
        case GIT_CERT_SSH_RAW_TYPE_DSS: return "ssh-dss"
        case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_256: return "ecdsa-sha2-nistp256"
        case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_384: return "ecdsa-sha2-nistp384"
        case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_521: return "ecdsa-sha2-nistp521"
        case GIT_CERT_SSH_RAW_TYPE_KEY_ED25519: return "ssh-ed25519"
        default: return "unknown"
        }
    }

    /// Trusts the certificate authorities in `file` (PEM) for HTTPS, process-wide.
    public static func trustCertificateAuthorities(file: String) throws {
        GitRuntime.bootstrap()
        try check(rewind_git_set_ssl_cert_locations(file, nil), "git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS)")
    }
}

private extension TransportSession {
    /// Throws for a failed call, preferring the reason Rewind's own callback gave.
    func check(_ rc: Int32, _ function: String) throws {
        guard rc < 0 else { return }
        if let refusal { throw GitError(code: .other(rc), function: function, message: refusal) }
        throw GitError.last(rc, function)
    }
}

/// libgit2's callbacks for a fetch or push. Each finds its `TransportSession`
/// in the payload: the hooks it asks (host key, credentials) and what it
/// leaves for the caller (a refusal, push rejections, bytes received).
enum RemoteCallbacks {
    /// TLS: libgit2 has checked the chain; SSH: the host key against the hooks' known hosts.
    static let certificateCheck: git_transport_certificate_check_cb = { cert, valid, _, payload in
        guard let cert, let payload else { return -1 }
        let session = Unmanaged<TransportSession>.fromOpaque(payload).takeUnretainedValue()
        guard cert.pointee.cert_type == GIT_CERT_HOSTKEY_LIBSSH2 else {
            // TLS: libgit2 has checked the chain against the trusted authorities.
            return valid != 0 ? 0 : GIT_PASSTHROUGH.rawValue
        }
        guard let check = session.hooks.checkHostKey else {
            session.refusal = "SSH host key not checked: no known_hosts configured"
            return -1
        }
        let hostkey = UnsafeRawPointer(cert).assumingMemoryBound(to: git_cert_hostkey.self).pointee
        guard hostkey.type.rawValue & GIT_CERT_SSH_RAW.rawValue != 0, let raw = hostkey.hostkey else {
            session.refusal = "the SSH server's host key could not be read"
            return -1
        }
        let blob = Array(UnsafeRawBufferPointer(start: raw, count: hostkey.hostkey_len))
        if let refusal = check(HostKey(type: Repository.sshKeyTypeName(hostkey.raw_type), blob: blob)) {
            session.refusal = refusal
            return -1
        }
        return 0
    }

    /// The hooks' credential, at most 3 times (a refused one is not offered forever).
    static let credentials: git_credential_acquire_cb = { out, _, usernameFromURL, allowed, payload in
        guard let out, let payload else { return -1 }
        let session = Unmanaged<TransportSession>.fromOpaque(payload).takeUnretainedValue()
        session.credentialAttempts += 1
        guard session.credentialAttempts <= 3 else {
            session.refusal = "authentication failed: the server refused the configured credentials"
            return -1
        }
        let fromURL = usernameFromURL.map { String(cString: $0) }
        let allowsKey = allowed & GIT_CREDENTIAL_SSH_KEY.rawValue != 0
        let allowsPassword = allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT.rawValue != 0
        let allowsUsername = allowed & GIT_CREDENTIAL_USERNAME.rawValue != 0
        guard let credential = session.hooks.credential?(fromURL, allowsKey, allowsPassword, allowsUsername) else {
            session.refusal = "the server asks for credentials and none are configured"
            return -1
        }
        switch credential {
        case .sshKey(let user, let publicKey, let privateKey, let passphrase):
            return git_credential_ssh_key_new(out, user, publicKey, privateKey, passphrase)
        case .userPassword(let user, let password):
            return git_credential_userpass_plaintext_new(out, user, password)
        case .username(let user):
            return git_credential_username_new(out, user)
        }
    }

    /// Push rejections arrive here only (libgit2 1.5).
    static let pushUpdateReference: git_push_update_reference_cb = { refname, status, payload in
        guard let payload, let refname, let status else { return 0 }
        let session = Unmanaged<TransportSession>.fromOpaque(payload).takeUnretainedValue()
        session.rejections.append(PushRejection(reference: String(cString: refname), reason: String(cString: status)))
        return 0
    }

    /// Counts bytes received, and stops past the hooks' limit.
    static let transferProgress: git_indexer_progress_cb = { stats, payload in
        guard let stats, let payload else { return 0 }
        let session = Unmanaged<TransportSession>.fromOpaque(payload).takeUnretainedValue()
        session.receivedBytes = stats.pointee.received_bytes
        if let limit = session.hooks.maxReceivedBytes, session.receivedBytes > limit {
            session.refusal = "the server sent more than \(limit) bytes; stopped"
            return -1
        }
        return 0
    }
}
