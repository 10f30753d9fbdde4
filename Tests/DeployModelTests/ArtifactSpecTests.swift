import DeployModel
import Testing

/// `artifact:` in app.yaml: a path, a download with its sha256, or an OCI
/// artifact pinned by digest; anything else refused with where and what to do.
@Suite struct ArtifactSpecTests {
    static let digest = "sha256:" + String(repeating: "ab", count: 32)

    static func parse(_ artifact: String) -> (spec: AppSpec?, diagnostics: [Diagnostic]) {
        AppSpec.parse("platform: process\nversion: \"1\"\nprocess:\n  command: bin/api\nartifact:\n" + artifact, file: "apps/api/app.yaml")
    }

    @Test func ociReferencesPinnedByDigestParse() throws {
        let parsed = Self.parse("  oci: registry.example.com:5000/team/api:1.4.0@\(Self.digest)\n")
        let artifact = try #require(parsed.spec?.artifact)
        #expect(artifact.source == .oci(OCIReference(registry: "registry.example.com:5000", repository: "team/api", tag: "1.4.0", digest: Self.digest)))
        #expect("\(artifact)" == "oci://registry.example.com:5000/team/api:1.4.0@\(Self.digest)")
    }

    struct Refused: CustomTestStringConvertible, Sendable {
        let yaml: String
        let says: String
        var testDescription: String { yaml }
    }

    static let refused: [Refused] = [
        Refused(yaml: "  oci: registry.example.com/team/api:1.4.0\n", says: "names a tag but no digest"),
        Refused(yaml: "  oci: team/api:1.4.0@\(digest)\n", says: "is not a registry host"),
        Refused(yaml: "  oci: api@\(digest)\n", says: "names no registry"),
        Refused(yaml: "  oci: registry.example.com/Team/api@\(digest)\n", says: "is not a repository name"),
        Refused(yaml: "  oci: registry.example.com/team/api@sha256:abc\n", says: "is not sha256: and 64"),
        Refused(yaml: "  oci: registry.example.com/team/api:-bad@\(digest)\n", says: "is not a tag"),
        Refused(yaml: "  oci: registry.example.com/team/api@\(digest)\n  sha256: \(String(repeating: "a", count: 64))\n", says: "checked by the digest"),
        Refused(yaml: "  url: https://example.com/api.tar.gz\n", says: "a download needs its sha256"),
        Refused(yaml: "  url: ftp://example.com/api.tar.gz\n  sha256: \(String(repeating: "a", count: 64))\n", says: "is not an http:// or https:// URL"),
        Refused(yaml: "  path: /srv/api.tar\n  oci: registry.example.com/team/api@\(digest)\n", says: "give exactly one"),
        Refused(yaml: "  path: /srv/api.tar\n  sha256: ABC\n", says: "expected 64 lower-case hex digits"),
    ]

    /// Each is an error at its line and field, with a hint where one helps.
    @Test(arguments: refused)
    func malformedArtifactsAreRefused(_ c: Refused) {
        let parsed = Self.parse(c.yaml)
        #expect(parsed.spec == nil)
        let errors = parsed.diagnostics.filter { $0.severity == .error }
        #expect(errors.contains { "\($0)".contains(c.says) && "\($0)".contains("apps/api/app.yaml:") }, "\(errors)")
    }

    @Test func aDownloadWithItsSHA256AndAPathParse() throws {
        let sha = String(repeating: "c", count: 64)
        let download = try #require(Self.parse("  url: https://example.com/api.tar.gz\n  sha256: \(sha)\n").spec?.artifact)
        #expect(download == Artifact(.url("https://example.com/api.tar.gz"), sha256: sha))
        let path = try #require(AppSpec.parse("platform: process\nversion: \"1\"\nprocess:\n  command: bin/api\nartifact: /srv/api.tar\n", file: "a").spec?.artifact)
        #expect(path.path == "/srv/api.tar")
    }
}
