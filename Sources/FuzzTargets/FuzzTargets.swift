import Artifacts
import Audit
import DeployModel
import GitKit
import ReconcilerStatus
import Remote
import Rollback
import Server
import SystemSupport

/// One entry point per parser of outside input. The libFuzzer executables
/// under Fuzz/ call these with mutated bytes (`make fuzz`); the normal test
/// suite runs every file of `fixtures/fuzz/<target>/` through them, so the
/// corpora stay valid and every crash found stays fixed.
///
/// Each entry point must return for any input: a crash, a hang or a failed
/// invariant (`check`) is a finding.
public enum FuzzTargets {
    /// The targets by name; `fixtures/fuzz/<name>/` is each one's seed corpus.
    public static let all: [(name: String, run: @Sendable ([UInt8]) -> Void)] = [
        ("rewind-yaml", rewindYAML), ("app-yaml", appYAML), ("pins", pins),
        ("alertmanager", alertmanager), ("git-push", gitPush), ("known-hosts", knownHosts),
        ("trailers", trailers), ("notes", notes), ("durations", durations),
        ("remote-urls", remoteURLs), ("state", state), ("dates", dates),
        ("web-form", webForm), ("tokens", tokens), ("oci-manifest", ociManifest), ("tar-paths", tarPaths),
    ]

    /// A registry's manifest or index: parsed ones name only valid digests.
    static func ociManifest(_ bytes: [UInt8]) {
        let (parsed, valid) = ArtifactInputs.manifest(bytes)
        check(!parsed || valid, "a parsed manifest names only sha256 digests and sizes that are not negative")
    }

    /// A tar entry's name, and after a NUL a symbolic link's target: what
    /// is accepted stays inside the artifact's directory.
    static func tarPaths(_ bytes: [UInt8]) {
        let parts = bytes.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
        let name = text(Array(parts[0]))
        let link = parts.count > 1 ? text(Array(parts[1])) : nil
        let (accepted, inside) = ArtifactInputs.entryAccepted(name: name, link: link)
        check(!accepted || inside, "an accepted entry '\(name)' → '\(link ?? "")' stays inside")
    }

    /// The target called `name`.
    public static func named(_ name: String) -> (@Sendable ([UInt8]) -> Void)? {
        all.first { $0.name == name }?.run
    }

    /// A failed invariant: trap, so that libFuzzer records the input.
    static func check(_ condition: Bool, _ what: @autoclosure () -> String) {
        if !condition { preconditionFailure("fuzz invariant failed: \(what())") }
    }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    /// A config is returned exactly when there is no error; every
    /// diagnostic names the file.
    static func rewindYAML(_ bytes: [UInt8]) {
        let (config, diagnostics) = RepoConfig.parse(text(bytes))
        check((config == nil) == diagnostics.contains { $0.severity == .error }, "config iff no error")
        check(diagnostics.allSatisfy { $0.file == RepoConfig.fileName }, "diagnostics name rewind.yaml")
    }

    static func appYAML(_ bytes: [UInt8]) {
        let (spec, diagnostics) = AppSpec.parse(text(bytes), file: "apps/x/app.yaml")
        check((spec == nil) == diagnostics.contains { $0.severity == .error }, "spec iff no error")
        if let spec { _ = AppSpec.quickVersion(bytes).map { check($0 == spec.version, "quickVersion agrees with the parser") } }
    }

    /// Parsing what `serialised()` wrote gives the same pins back.
    static func pins(_ bytes: [UInt8]) {
        guard let set = PinSet.parse(text(bytes)).pins else { return }
        check(PinSet.parse(set.serialised()).pins == set, "pins round-trip")
    }

    static func alertmanager(_ bytes: [UInt8]) { _ = WebhookInputs.alertmanager(bytes) }

    /// Header lines (`Name: value`) up to an empty line, then the body.
    static func gitPush(_ bytes: [UInt8]) {
        let all = text(bytes)
        let (head, body) = all.split(separator: "\n\n", maxSplits: 1, omittingEmptySubsequences: false).map(String.init).splitPair()
        var headers: [(String, String)] = []
        for line in head.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingCharacters()))
        }
        let accepted = WebhookInputs.gitPush(headers: headers, body: Array(body.utf8), secret: "fuzz-secret")
        // Without the secret nothing forged passes, so only inputs that carry
        // the GitLab token itself may be accepted.
        check(!accepted || headers.contains { $0.0.lowercased() == "x-gitlab-token" || $0.0.lowercased().hasSuffix("signature") || $0.0.lowercased().hasSuffix("signature-256") },
              "an unsigned push is refused")
        _ = WebhookInputs.gitPush(headers: headers, body: Array(body.utf8), secret: nil)
    }

    static func knownHosts(_ bytes: [UInt8]) {
        guard let url = try? RemoteURL.parse("ssh://git@example.com:2222/deploy.git") else { return }
        let key = HostKey(type: "ssh-ed25519", blob: Array("fuzz-host-key".utf8))
        _ = RemoteInputs.knownHostsProblem(text: text(bytes), url: url, key: key)
    }

    /// Trailers that parse render and parse to the same values.
    static func trailers(_ bytes: [UInt8]) {
        let message = text(bytes)
        _ = RollbackTrailers.gitRevertTarget(message)
        guard let parsed = RollbackTrailers.parse(message) else { return }
        let again = RollbackTrailers.parse("x\n\n" + parsed.rendered + "\n")
        check(again?.action == parsed.action && again?.targets == parsed.targets, "trailers round-trip")
    }

    static func notes(_ bytes: [UInt8]) {
        for line in ReleaseNote.parseAll(text(bytes)) {
            // (The key ends in a space; a line without fields does not. Bytes,
            // as the parser reads: a field may start with a combining mark.)
            check(!line.app.isEmpty && (line.line + " ").utf8.starts(with: line.key.utf8), "a parsed line has an outcome and an app")
        }
    }

    /// A time that parses prints (RFC 3339, UTC, milliseconds) as text that
    /// parses to the same instant; `--since`/`--until` words never crash.
    static func dates(_ bytes: [UInt8]) {
        let words = text(bytes)
        if let ms = Dates.parse(words) {
            check(Dates.parse(Clock.iso8601UTC(milliseconds: ms, fraction: true)) == ms, "\(words) round-trips")
        }
        _ = try? AuditQuery.parseDate(words, option: "--since", now: 1_800_000_000_000, endOfDay: true)
    }

    /// A duration that parses is never negative and prints as something that parses to it.
    static func durations(_ bytes: [UInt8]) {
        guard let duration = Duration(parsing: text(bytes)) else { return }
        check(duration.milliseconds >= 0, "durations are not negative")
        check(Duration(parsing: duration.description)?.milliseconds == duration.milliseconds, "\(duration) round-trips")
    }

    /// A URL that parses holds no password; one that does not parse never
    /// echoes what stood between `://` and `@`.
    static func remoteURLs(_ bytes: [UInt8]) {
        let input = text(bytes)
        do {
            guard let url = try RemoteURL.parse(input) else { return }
            check(url.scheme == .ssh || url.user == nil, "only SSH URLs carry a user")
        } catch {
            _ = "\(error)"
        }
        _ = RemoteURL.redacted(input)
    }

    /// A form body never crashes the UI; fields written with the UI's own
    /// encoding read back as they were.
    static func webForm(_ bytes: [UInt8]) {
        let fields = WebInputs.form(bytes)
        check(fields.count <= 100, "at most 100 fields")
        let encoded = fields.sorted { $0.key < $1.key }.map { "\(HTTPEndpoint.encode($0.key))=\(HTTPEndpoint.encode($0.value))" }.joined(separator: "&")
        let again = WebInputs.form(Array(encoded.utf8))
        check(again.count == fields.count || fields.keys.contains(""), "re-encoded fields read back")
    }

    /// A tokens file either gives tokens that find their names, or an
    /// error that names the file and never shows a token.
    static func tokens(_ bytes: [UInt8]) {
        let input = text(bytes)
        switch WebInputs.tokens(input) {
        case .success(let consistent):
            check(consistent, "every token finds its name")
        case .failure(let error):
            check(error.message.hasPrefix("tokens"), "the error names the file: \(error.message)")
            // Names may be shown; a token that is part of some line's name is shown with it.
            let lines: [(name: String, token: String)] = input.split(separator: "\n").compactMap { line in
                guard let colon = line.firstIndex(of: ":") else { return nil }
                return (String(line[..<colon]), String(line[colon...].dropFirst()).trimmingCharacters())
            }
            for (_, token) in lines {
                guard token.utf8.count >= 8, !lines.contains(where: { Self.bytes($0.name, contain: token) }), !Self.bytes("tokens", contain: token) else { continue }
                check(!Self.bytes(error.message, contain: token) && !Self.bytes(error.hint ?? "", contain: token), "a token is never shown")
            }
        }
    }

    /// Byte for byte (Foundation's `contains` compares loosely: NUL and
    /// U+FFFD are not what they seem to it).
    static func bytes(_ text: String, contain part: String) -> Bool {
        let whole = Array(text.utf8), piece = Array(part.utf8)
        guard !piece.isEmpty, piece.count <= whole.count else { return piece.isEmpty }
        return (0...(whole.count - piece.count)).contains { whole[$0..<($0 + piece.count)].elementsEqual(piece) }
    }

    static func state(_ bytes: [UInt8]) {
        _ = try? StateStore.decode(AppState.self, bytes, file: "apps/x.json")
        _ = try? StateStore.decode(ReconcilerState.self, bytes, file: "reconciler.json")
    }
}

extension Array where Element == String {
    /// The first element and the rest joined back (a header block and a body).
    fileprivate func splitPair() -> (String, String) {
        (first ?? "", count > 1 ? self[1] : "")
    }
}
