import DeployModel
import Testing

/// `updates:` and its tag policies.
@Suite struct UpdatePolicyTests {
    static let tags = ["1.3.9", "v1.4.0", "1.4.2", "1.5.0-rc.1", "1.5.0", "2.0.0", "latest", "1.10.0", "build-9", "build-10", "build-x"]

    @Test func semverRangesChooseTheNewestTagInside() throws {
        let cases: [(String, String?)] = [
            (">=1.4.0 <2.0.0", "1.10.0"), ("^1.4", "1.10.0"), ("^1.4.0", "1.10.0"), ("~1.4", "1.4.2"), ("^0.9", nil), ("~1.4.0", "1.4.2"), ("1.x", "1.10.0"), ("1.4.x", "1.4.2"),
            ("*", "2.0.0"), ("=1.3.9", "1.3.9"), ("<1.0.0", nil), (">=1.5.0-rc.0 <1.5.0", "1.5.0-rc.1"), ("~1.4.0 || ^2.0.0", "2.0.0"),
        ]
        for (range, expected) in cases {
            guard let parsed = SemverRange(range) else {
                #expect(expected == nil, "'\(range)' should parse")
                continue
            }
            #expect(TagPolicy.semver(parsed).newest(Self.tags) == expected, "\(range)")
        }
        #expect(SemverRange(">=banana") == nil && SemverRange("") == nil)
        #expect(SemanticVersion("1.5.0-rc.1")! < SemanticVersion("1.5.0")!)
        #expect(SemanticVersion("1.5.0-rc.2")! < SemanticVersion("1.5.0-rc.10")!)
        #expect(SemanticVersion("1.10.0")! > SemanticVersion("1.9.9")!)
    }

    @Test func regexTagsOrderByTheirCapturedNumbers() {
        #expect(TagPolicy.regex(#"build-(\d+)"#).newest(Self.tags) == "build-10", "numerically, not as text")
        #expect(TagPolicy.regex(#"nightly-(\d+)"#).newest(Self.tags) == nil, "a policy that matches nothing says so")
    }

    static func spec(_ updates: String, artifact: Bool = true) -> (AppSpec?, [Diagnostic]) {
        let digest = "sha256:" + String(repeating: "ab", count: 32)
        return AppSpec.parse("platform: process\nversion: \"1\"\nprocess:\n  command: bin/api\n"
                             + (artifact ? "artifact:\n  oci: registry.example.com/team/api:1.4.0@\(digest)\n" : "") + "updates:\n" + updates, file: "apps/api/app.yaml")
    }

    @Test func updatesParseWithTheArtifactsRepositoryAsDefault() throws {
        let (spec, _) = Self.spec("  tags: {semver: \"^1.4.0\"}\n  interval: 1m\n")
        let updates = try #require(spec?.updates)
        #expect(updates.repository == OCIReference(registry: "registry.example.com", repository: "team/api"))
        #expect(updates.interval.milliseconds == 60_000)
        let other = try #require(Self.spec("  repository: mirror.example.com/team/api\n  tags: {regex: \"^build-(\\\\d+)$\"}\n").0?.updates)
        #expect(other.repository.registry == "mirror.example.com" && other.tags == .regex("^build-(\\d+)$"))
    }

    @Test(arguments: [
        ("  tags: {semver: \">=banana\"}\n", "is not a version range"),
        ("  tags: {regex: \"(unclosed\"}\n", "is not a regular expression"),
        ("  tags: {regex: \"^build-\\\\d+$\"}\n", "no capture group"),
        ("  tags: {semver: \"^1\", regex: \"(x)\"}\n", "exactly one of semver: or regex:"),
        ("  interval: 1m\n", "required field is missing"),
        ("  repository: not a registry\n  tags: {semver: \"^1\"}\n", "updates.repository"),
        ("  tags: {semver: \"^1\"}\n  interval: 200ms\n", "shorter than the least interval, 1s"),
    ])
    func malformedUpdatesAreRefused(_ yaml: String, _ says: String) {
        let (spec, diagnostics) = Self.spec(yaml)
        #expect(spec == nil)
        #expect(diagnostics.contains { $0.severity == .error && "\($0)".contains(says) && "\($0)".contains("apps/api/app.yaml") }, "\(diagnostics)")
    }

    @Test func updatesWithoutAnOCIArtifactAreRefused() {
        let (spec, diagnostics) = Self.spec("  tags: {semver: \"^1\"}\n", artifact: false)
        #expect(spec == nil && diagnostics.contains { "\($0)".contains("has none") })
    }
}

/// The update commit's edit of app.yaml: only the values that change.
@Suite struct AppYAMLEditTests {
    static let old = "registry.example.com/team/api:v1.4.0@sha256:" + String(repeating: "a", count: 64)
    static let new = OCIReference(registry: "registry.example.com", repository: "team/api", tag: "v1.5.0", digest: "sha256:" + String(repeating: "b", count: 64))

    @Test func theReferenceAndATagLabelChangeInPlaceWhateverTheQuoting() throws {
        let bodies = [
            "# api\nplatform: exec\nversion: v1.4.0   # tag\nexec:\n  apply: ./deploy\nartifact:\n  oci: \(Self.old)  # pinned\n",
            "platform: exec\nversion: \"1.4.0\"\nexec: {apply: ./deploy}\nartifact: {oci: '\(Self.old)'}\n",
            "\u{FEFF}platform: exec\nversion: 'release one'\nexec:\n  apply: ./deploy\nartifact:\n  oci: \"\(Self.old)\"\n\n\n# end\n",
        ]
        let labels: [String?] = ["v1.5.0", "1.5.0", nil]
        for (text, label) in zip(bodies, labels) {
            let edited = try AppYAMLEdit.movingArtifact(in: text, to: Self.new)
            #expect(edited.version == label)
            let expected = text.replacingOccurrences(of: Self.old, with: Self.new.description)
                .replacingOccurrences(of: "version: v1.4.0", with: "version: v1.5.0").replacingOccurrences(of: "version: \"1.4.0\"", with: "version: \"1.5.0\"")
            #expect(edited.text == expected)
        }
    }

    @Test func aValueThatCannotBeEditedInPlaceIsRefused() {
        let refused = [
            "platform: exec\nexec: {apply: ./x}\n",
            "platform: exec\nexec: {apply: ./x}\nartifact:\n  oci: >-\n    \(Self.old)\n",
            "platform: exec\nexec: {apply: ./x}\nartifact:\n  oci: \"registry.example.com/team/api:v1.4.0@sha256:\\x61\(String(repeating: "a", count: 63))\"\n",
        ]
        for text in refused {
            #expect(throws: AppYAMLEdit.Refusal.self) { try AppYAMLEdit.movingArtifact(in: text, to: Self.new) }
        }
    }
}
