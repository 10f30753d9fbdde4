import Testing
@testable import DeployModel

private let goodConfig = """
    branch: main
    apps:
      - name: api
        path: apps/api
      - name: web
        path: apps/web
        dependsOn: [api]
    """

@Test func parsesAValidConfig() throws {
    let (config, diagnostics) = RepoConfig.parse(goodConfig)
    let parsed = try #require(config)
    #expect(diagnostics.isEmpty)
    #expect(parsed.apps.map(\.name) == ["api", "web"])
    #expect(parsed.apps[1].dependsOn == ["api"])
    #expect(parsed.policy.maxPerHour == 3)
}

/// Each bad rewind.yaml names the field and the line that is wrong.
@Test(arguments: [
    ("apps:\n  - name: api\n    path: /etc/api\n", "apps[0].path", 3, "absolute path"),
    ("apps:\n  - name: api\n    path: ../api\n", "apps[0].path", 3, "contains '..'"),
    ("apps:\n  - name: api\n    path: apps/api\n  - name: api\n    path: apps/api2\n", "apps[1].name", 4, "duplicate app 'api'"),
    ("apps:\n  - name: api\n    path: apps/api\n    dependsOn: [db]\n", "apps[0].dependsOn", 2, "unknown app 'db'"),
    ("apps:\n  - name: a\n    path: a\n    dependsOn: [b]\n  - name: b\n    path: b\n    dependsOn: [a]\n", "apps", 2, "dependency cycle: a -> b -> a"),
    ("apps:\n  - path: apps/api\n", "apps[0].name", 2, "required field is missing"),
    // A problem at the end of the input is on the last line, not the one after it.
    ("apps: [\n", "", 1, "malformed YAML"),
    ("apps:\n  - name: api\n    path: [apps\n", "", 3, "malformed YAML"),
    ("apps:\n  - name: api\n    path: apps/api\npolicy:\n  window: soon\n", "policy.window", 5, "expected a duration"),
    ("apps:\n  - name: api\n    path: apps/api\n  - name: sub\n    path: apps/api/sub\n", "apps[1].path", 4, "overlaps"),
    ("branch: main\n", "apps", 1, "required field is missing"),
] as [(String, String, Int, String)])
func reportsBadConfigPrecisely(text: String, field: String, line: Int, message: String) throws {
    let (config, diagnostics) = RepoConfig.parse(text)
    #expect(config == nil)
    let error = try #require(diagnostics.first { $0.severity == .error })
    #expect(error.field == field)
    #expect(error.line == line)
    #expect(error.description.contains(message), "\(error)")
    #expect(error.file == "rewind.yaml")
}

@Test func unknownFieldsAreWarnings() throws {
    let (config, diagnostics) = RepoConfig.parse(goodConfig + "\nsurprise: 1\n")
    #expect(config != nil)
    let warning = try #require(diagnostics.first)
    #expect(warning.severity == .warning)
    #expect(warning.field == "surprise")
    #expect(warning.line == 8)
}

@Test func deployOrderPutsDependenciesFirst() {
    let apps = [AppRef(name: "web", path: "w", dependsOn: ["api"]), AppRef(name: "api", path: "a", dependsOn: ["db"]), AppRef(name: "db", path: "d", dependsOn: [])]
    #expect(DependencyGraph(apps).deployOrder(["web", "api", "db"]) == ["db", "api", "web"])
    #expect(DependencyGraph(apps).cycle() == nil)
}

@Test(arguments: [("90s", 90_000), ("5m", 300_000), ("1h30m", 5_400_000), ("250ms", 250)] as [(String, Int64)])
func parsesDurations(text: String, ms: Int64) {
    #expect(Duration(parsing: text)?.milliseconds == ms)
}

@Test(arguments: ["", "5", "m", "5 minutes", "-1s"])
func rejectsBadDurations(text: String) {
    #expect(Duration(parsing: text) == nil)
}
