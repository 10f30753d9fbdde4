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
    // Found by `make fuzz` (crash-0fd9…): `version:m: exec` is the key `version:m`.
    ("version:m: exec\nversion: 1.0\n", "1.0"), ("version:1.0\n", nil),
] as [(String, String?)])
func quickVersionMatchesTheParser(text: String, expected: String?) {
    #expect(AppSpec.quickVersion(Array(text.utf8)) == expected)
}

@Test func pinsRoundTrip() throws {
    var pins = PinSet()
    pins.pins["api"] = Pin(tree: String(repeating: "a", count: 40), target: String(repeating: "b", count: 40), reason: "bad \"release\"\nreally")
    let parsed = try #require(PinSet.parse(pins.serialised()).pins)
    #expect(parsed == pins)
    // Found by `make fuzz` (crash-4e88…): YAML's other line breaks and characters it cannot hold raw.
    pins.pins["web"] = Pin(tree: String(repeating: "c", count: 40), target: String(repeating: "d", count: 40),
                           reason: "a\u{85}b\u{2028}c\u{2029}d\u{7F}e\u{9F}f\u{FEFF}g\r\u{1}h é ✓")
    #expect(try #require(PinSet.parse(pins.serialised()).pins) == pins)
    #expect(PinSet.parse(PinSet().serialised()).pins == PinSet())
}

/// A pin's key is an app's name: a key rewind.yaml could not hold (empty,
/// as an anchored empty key gives, or with other characters) is an error,
/// not a pin that cannot be written back.
@Test(arguments: ["  &anchor :\n", "  \"\":\n", "  Api_1:\n"])
func aPinOfNoAppIsAnError(key: String) {
    let text = "pins:\n" + key + "    tree: " + String(repeating: "a", count: 40) + "\n    target: " + String(repeating: "b", count: 40) + "\n"
    let (pins, diagnostics) = PinSet.parse(text)
    #expect(pins == nil)
    #expect(diagnostics.contains { $0.severity == .error && $0.message.contains("not a valid app name") && $0.line == 2 }, "\(diagnostics)")
}

@Test func parsesTrafficHooksAndDownCommands() throws {
    let text = """
        platform: process
        version: "1.6.0"
        process:
          command: ./api
        traffic:
          listen: 127.0.0.1:8080
          strategy: canary
          steps: [10, 25, 50, 100]
          interval: 30s
          analysis:
            - name: errors
              query: 'sum(rate(http_requests_total{app="$app",version="$version",code="500"}[1m]))'
              threshold: 0.05
        hooks:
          preRollback: ./notify.sh start
          postRollback: [./notify.sh, done]
        migrations:
          - id: "001"
          - id: "002"
            down: [./migrate, down, "002"]
        """
    let (spec, diagnostics) = AppSpec.parse(text, file: "apps/api/app.yaml")
    let parsed = try #require(spec, "\(diagnostics)")
    let traffic = try #require(parsed.traffic)
    #expect(traffic.listenPort == 8080 && traffic.strategy == .canary && traffic.steps == [10, 25, 50, 100])
    #expect(traffic.interval.milliseconds == 30_000 && traffic.analysis.map(\.name) == ["errors"] && traffic.failureLimit == 2)
    #expect(parsed.hooks?.preRollback == ["/bin/sh", "-c", "./notify.sh start"] && parsed.hooks?.postRollback == ["./notify.sh", "done"])
    #expect(parsed.migrations.last?.down == ["./migrate", "down", "002"])
    let older = AppSpec(platform: .process, version: "1.0", migrations: [Migration(id: "001", reversible: true)])
    #expect(parsed.migrationsUndone(goingTo: older).map(\.id) == ["002"])
}

private let trafficBase = "platform: process\nversion: 1\nprocess:\n  command: x\ntraffic:\n"

@Test(arguments: [
    (trafficBase + "  listen: 8080\n  strategy: rolling\n", "traffic.strategy", 7, "unknown strategy 'rolling'"),
    (trafficBase + "  listen: 8080\n  strategy: bluegreen\n", "traffic.strategy", 7, "did you mean blueGreen?"),
    (trafficBase + "  listen: 8080\n  strategy: canary\n  steps: [10, 50, 25, 100]\n", "traffic.steps[2]", 8, "does not increase"),
    (trafficBase + "  listen: 8080\n  strategy: canary\n  steps: [10, 50]\n", "traffic.steps", 8, "not 100"),
    (trafficBase + "  listen: 8080\n  strategy: canary\n  steps: [0, 100]\n", "traffic.steps[0]", 8, "percentage from 1 to 100"),
    (trafficBase + "  listen: 8080\n  strategy: canary\n", "traffic.steps", 6, "needs steps"),
    (trafficBase + "  listen: 8080\n  strategy: blueGreen\n  steps: [50, 100]\n", "traffic.steps", 8, "steps are for strategy canary"),
    (trafficBase + "  listen: 10.0.0.1:8080\n  strategy: blueGreen\n", "traffic.listen", 6, "not a loopback address"),
    (trafficBase + "  listen: http\n  strategy: blueGreen\n", "traffic.listen", 6, "not a port"),
    (trafficBase + "  strategy: blueGreen\n", "traffic.listen", 6, "required field is missing"),
    (trafficBase + "  listen: 8080\n  strategy: blueGreen\n  failureLimit: 0\n", "traffic.failureLimit", 8, "whole number from 1 to 100"),
    (trafficBase + "  listen: 8080\n  strategy: blueGreen\n  proxy:\n    socket: run/admin.sock\n    backend: api\n", "traffic.proxy.socket", 9, "not an absolute path"),
    ("platform: process\nversion: 1\nprocess:\n  command: x\n  port: 9000\ntraffic:\n  listen: 8080\n  strategy: blueGreen\n", "process.port", 7, "each version needs a port of its own"),
    ("platform: exec\nversion: 1\nexec:\n  apply: ./a\ntraffic:\n  listen: 8080\n  strategy: blueGreen\n", "traffic", 6, "process and container platforms, not exec"),
    ("platform: process\nversion: 1\nprocess:\n  command: x\nmigrations:\n  - id: a\n    reversible: false\n    down: ./undo\n", "migrations[0].down", 8, "irreversible but has a down command"),
] as [(String, String, Int, String)])
func reportsBadTrafficPrecisely(text: String, field: String, line: Int, message: String) throws {
    try reportsBadAppSpecsPrecisely(text: text, field: field, line: line, message: message)
}
