import Testing
@testable import DeployModel

@Test func parsesAProcessApp() throws {
    let text = """
        platform: process
        version: "1.2.3"
        artifact:
          path: api/api-1.2.3.tar.gz
        process:
          command: ./api
          args: [--port, "8080"]
          env: {A: b}
        health:
          http: /health
          timeout: 10s
        migrations:
          - id: m1
          - id: m2
            reversible: false
        """
    let (spec, diagnostics) = AppSpec.parse(text, file: "apps/api/app.yaml")
    let parsed = try #require(spec, "\(diagnostics)")
    #expect(parsed.version == "1.2.3")
    #expect(parsed.process?.args == ["--port", "8080"])
    #expect(parsed.health?.timeout.milliseconds == 10_000)
    #expect(parsed.irreversibleMigrations == ["m2"])
}

@Test(arguments: [
    ("platform: kubernetes\nversion: 1\n", "platform", 1, "unknown platform 'kubernetes'"),
    ("platform: process\nversion: 1\n", "process", 1, "required field is missing"),
    ("platform: exec\nversion: 1\nexec:\n  apply: []\n", "exec.apply", 4, "must not be empty"),
    ("platform: process\nprocess:\n  command: x\n", "version", 1, "required field is missing"),
    ("platform: process\nversion: 1\nprocess:\n  command: x\n  port: 70000\n", "process.port", 5, "whole number from 1 to 65535"),
    ("platform: process\nversion: 1\nprocess:\n  command: x\nartifact: https://example.com/a.tgz\n", "artifact", 5, "not a file path"),
    ("platform: process\nversion: 1\nprocess:\n  command: x\nhealth:\n  http: health\n", "health.http", 6, "not a path"),
    ("platform: process\n  version: 1\n", "", 2, "malformed YAML"),
] as [(String, String, Int, String)])
func reportsBadAppSpecsPrecisely(text: String, field: String, line: Int, message: String) throws {
    let (spec, diagnostics) = AppSpec.parse(text, file: "apps/x/app.yaml")
    #expect(spec == nil)
    let error = try #require(diagnostics.first { $0.severity == .error })
    #expect(error.field == field, "\(error)")
    #expect(error.line == line, "\(error)")
    #expect(error.description.contains(message), "\(error)")
}

@Test(arguments: [
    ("version: 1.2.3\n", "1.2.3"), ("platform: x\nversion: \"2.0\"\n", "2.0"), ("version: '3' # note\n", "3"),
    ("  version: nested\n", nil), ("name: x\n", nil),
    // Found by `make fuzz` (fixtures/fuzz/app-yaml/crash-1353…): YAML folds an
    // indented next line into the value ("3.0.2 1.0.0"); the quick scan must not guess.
    ("version: 3.0.2\n 1.0.0\n", nil), ("version: 1.0\t# tab comment\n", nil), ("version: &v 1.0\n", nil), ("version: 1.0\u{00A0}\n", nil),
] as [(String, String?)])
func quickVersionMatchesTheParser(text: String, expected: String?) {
    #expect(AppSpec.quickVersion(Array(text.utf8)) == expected)
}

@Test func pinsRoundTrip() throws {
    var pins = PinSet()
    pins.pins["api"] = Pin(tree: String(repeating: "a", count: 40), target: String(repeating: "b", count: 40), reason: "bad \"release\"\nreally")
    let parsed = try #require(PinSet.parse(pins.serialised()).pins)
    #expect(parsed == pins)
    #expect(PinSet.parse(PinSet().serialised()).pins == PinSet())
}
