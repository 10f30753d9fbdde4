import GitKit
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Signs Rewind's own commits with an SSH key, as `git commit -S` does with
/// `gpg.format=ssh`: `ssh-keygen -Y sign -n git` over the commit's text.
public struct SSHCommitSigner: Sendable {
    /// The private key file.
    public let keyFile: String

    public init(keyFile: String) { self.keyFile = keyFile }

    /// The signer a repository asks for: `REWIND_SIGNING_KEY`, else git's own
    /// settings (`gpg.format=ssh`, `commit.gpgSign=true`, `user.signingKey`).
    public static func configured(for git: Repository) -> SSHCommitSigner? {
        if let key = Environment.value("REWIND_SIGNING_KEY") {
            return SSHCommitSigner(keyFile: key)
        }
        guard git.configValue("gpg.format") == "ssh", ["true", "yes", "on", "1"].contains(git.configValue("commit.gpgsign")?.lowercased() ?? ""),
              let key = git.configValue("user.signingkey"), !key.isEmpty else { return nil }
        return SSHCommitSigner(keyFile: key.hasPrefix("~/") ? (Environment.value("HOME") ?? "") + key.dropFirst(1) : key)
    }

    /// The armored signature of `content`.
    public func sign(_ content: [UInt8]) throws -> String {
        guard FileIO.exists(keyFile) else {
            throw RewindError(.usage, "the signing key \(keyFile) does not exist", hint: "set REWIND_SIGNING_KEY (or git's user.signingKey) to an SSH private key file")
        }
        return try withScratchDirectory { dir in
            let data = dir + "/commit"
            guard FileIO.writeAtomically(data, content) else { throw RewindError(.internalFailure, "cannot write \(data)") }
            let status = try runTool("ssh-keygen", ["-Y", "sign", "-q", "-f", keyFile, "-n", "git", data], log: dir + "/log")
            guard status.succeeded, let signature = FileIO.readText(data + ".sig") else {
                throw RewindError(.internalFailure, "ssh-keygen could not sign with \(keyFile): \(lastLine(dir + "/log"))",
                                  hint: "check that the key is an unencrypted SSH private key readable by Rewind")
            }
            return signature
        }
    }
}

/// Which commits must carry a trusted signature before they are applied.
public enum SignaturePolicy: String, Sendable, CaseIterable, Comparable {
    case none, head, all

    private var rank: Int {
        switch self {
        case .none: return 0
        case .head: return 1
        case .all: return 2
        }
    }

    public static func < (a: SignaturePolicy, b: SignaturePolicy) -> Bool { a.rank < b.rank }
}

/// Checks commit signatures against an OpenSSH allowed_signers file with
/// `ssh-keygen -Y verify`, as git does for `gpg.format=ssh`.
public struct SignatureVerifier: Sendable {
    /// The allowed_signers file (`principal key-type key`, one per line).
    public let allowedSigners: String?

    public init(allowedSigners: String?) { self.allowedSigners = allowedSigners }

    /// nil when `commit` carries a signature by an allowed key; else why not.
    public func problem(with commit: OID, in git: Repository) -> String? {
        let short = String(commit.description.prefix(12))
        guard let allowedSigners else {
            return "commit \(short) cannot be checked: no allowed signers file is configured (pass --allowed-signers FILE)"
        }
        guard FileIO.exists(allowedSigners) else { return "the allowed signers file \(allowedSigners) does not exist" }
        let extracted: (signature: String, signedData: [UInt8])?
        do {
            extracted = try git.commitSignature(commit)
        } catch {
            return "commit \(short): cannot read its signature (\(error))"
        }
        guard let extracted else { return "commit \(short) is not signed" }
        guard extracted.signature.contains("BEGIN SSH SIGNATURE") else {
            return "commit \(short) has a GPG signature; Rewind checks SSH signatures only"
        }
        do {
            return try withScratchDirectory { dir in
                let sig = dir + "/sig", data = dir + "/data", principals = dir + "/principals"
                guard FileIO.writeAtomically(sig, text: extracted.signature), FileIO.writeAtomically(data, extracted.signedData) else {
                    return "cannot write scratch files to check commit \(short)"
                }
                let found = try runTool("ssh-keygen", ["-Y", "find-principals", "-s", sig, "-f", allowedSigners], log: principals)
                let names = (FileIO.readText(principals) ?? "").split(separator: "\n").map(String.init).filter { !$0.isEmpty && !$0.contains(" ") }
                guard found.succeeded, let principal = names.first else {
                    return "commit \(short) is signed by a key that is not in \(allowedSigners)"
                }
                let verified = try runTool("ssh-keygen", ["-Y", "verify", "-f", allowedSigners, "-I", principal, "-n", "git", "-s", sig], log: dir + "/log", input: data)
                return verified.succeeded ? nil : "commit \(short): the signature by \(principal) does not verify (\(lastLine(dir + "/log")))"
            }
        } catch {
            return "commit \(short): cannot run ssh-keygen (\(error))"
        }
    }
}

/// Runs a helper program to completion (30 s at most), its output to `log`.
private func runTool(_ program: String, _ arguments: [String], log: String, input: String? = nil) throws -> ExitStatus {
    var options = SpawnOptions(program: program, arguments: arguments, environment: InheritedEnvironment.forApps(Spawn.currentEnvironment()), outputFile: log)
    options.inputFile = input
    guard let status = try Spawn.run(options, timeoutMilliseconds: 30_000) else {
        throw RewindError(.internalFailure, "\(program) did not finish within 30 s")
    }
    return status
}

private func lastLine(_ file: String) -> String {
    FileIO.tail(file, maxBytes: 400).split(separator: "\n").last.map(String.init) ?? "no output"
}

/// Runs `body` with a fresh private directory that is removed afterwards.
func withScratchDirectory<T>(_ body: (String) throws -> T) throws -> T {
    var template = Array("/tmp/rewind-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw RewindError(.internalFailure, "cannot create a scratch directory in /tmp") }
    let dir = String(cString: made)
    defer { FileIO.removeTree(dir) }
    return try body(dir)
}
