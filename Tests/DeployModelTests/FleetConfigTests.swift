import Testing
@testable import DeployModel

/// `hosts:`, `placement` and `rollout` in rewind.yaml (the fleet of hosts).
private let fleet = """
    hosts:
      - name: canary-1
        labels: {role: web, stage: canary}
      - name: web-1
        labels: {role: web}
      - name: web-2
        labels: {role: web}
      - name: db-1
        labels: {role: db}
    apps:
      - name: db
        path: apps/db
        placement: {hosts: [db-1]}
      - name: api
        path: apps/api
        placement: {labels: {role: web}}
        rollout:
          stages:
            - labels: {stage: canary}
              soak: 5m
            - hosts: [web-1, web-2]
              maxParallel: 1
          hostTimeout: 2m
          onTimeout: proceed
      - name: edge
        path: apps/edge
        placement: {hosts: [db-1], labels: {stage: canary}}
        dependsOn: [db]
    """

@Test func aFleetIsParsedAndEachHostGetsItsApps() throws {
    let (config, diagnostics) = RepoConfig.parse(fleet)
    let parsed = try #require(config, "\(diagnostics)")
    #expect(diagnostics.isEmpty, "\(diagnostics)")
    #expect(parsed.hosts.map(\.name) == ["canary-1", "web-1", "web-2", "db-1"])
    #expect(parsed.apps(on: "canary-1").map(\.name) == ["api", "edge"])
    #expect(parsed.apps(on: "web-2").map(\.name) == ["api"])
    #expect(parsed.apps(on: "db-1").map(\.name) == ["db", "edge"])
    #expect(parsed.apps(on: "elsewhere").isEmpty)
    #expect(parsed.unknownHost("elsewhere")?.contains("host 'elsewhere' is not in rewind.yaml's hosts (canary-1, web-1, web-2, db-1)") == true)
    #expect(parsed.unknownHost("web-1") == nil)
    let rollout = try #require(parsed.app(named: "api")?.rollout)
    #expect(rollout.stages.count == 2 && rollout.stages[0].soak == Duration(milliseconds: 300_000) && rollout.stages[1].maxParallel == 1)
    #expect(rollout.hostTimeout == Duration(milliseconds: 120_000) && rollout.onTimeout == .proceed)
    // On canary-1, edge's dependency on db (placed on db-1 only) is not kept: each host orders its own apps.
    #expect(parsed.placed(on: "canary-1").app(named: "edge")?.dependsOn == [])
    #expect(parsed.placed(on: "db-1").app(named: "edge")?.dependsOn == ["db"])
}

@Test func withoutHostsEveryHostRunsEveryApp() throws {
    let parsed = try #require(RepoConfig.parse("apps:\n  - name: api\n    path: apps/api\n").config)
    #expect(parsed.apps(on: "any-host").map(\.name) == ["api"] && parsed.unknownHost("any-host") == nil)
}

/// Each bad fleet names the field and the line, and what to do.
@Test(arguments: [
    ("hosts:\n  - name: a\napps:\n  - name: api\n    path: apps/api\n", "apps[0].placement", 4, "app 'api' is placed on no host"),
    ("hosts:\n  - name: a\napps:\n  - name: api\n    path: apps/api\n    placement: {hosts: [b]}\n", "apps[0].placement.hosts", 6, "unknown host 'b'"),
    ("hosts:\n  - name: a\n    labels: {role: web}\napps:\n  - name: api\n    path: apps/api\n    placement: {labels: {role: db}}\n", "apps[0].placement", 7,
     "placed on no host: labels role=db matches none of a"),
    ("hosts:\n  - name: a\napps:\n  - name: api\n    path: apps/api\n    placement: {}\n", "apps[0].placement", 6, "selects no host"),
    ("apps:\n  - name: api\n    path: apps/api\n    placement: {hosts: [a]}\n", "apps[0].placement", 4, "placement needs hosts: in rewind.yaml"),
    ("hosts:\n  - name: a\n  - name: b\napps:\n  - name: api\n    path: apps/api\n    placement: {hosts: [a]}\n    rollout:\n      stages:\n        - hosts: [b]\n",
     "apps[0].rollout.stages[0]", 10, "stage 1 selects none of the app's hosts (a)"),
    ("hosts:\n  - name: a\napps:\n  - name: api\n    path: apps/api\n    placement: {hosts: [a]}\n    rollout:\n      stages: [{hosts: [a]}]\n      onTimeout: wait\n",
     "apps[0].rollout.onTimeout", 9, "unknown choice 'wait'"),
    ("hosts:\n  - name: a\n  - name: b\napps:\n  - name: db\n    path: apps/db\n    placement: {hosts: [a]}\n  - name: api\n    path: apps/api\n    placement: {hosts: [b]}\n    dependsOn: [db]\n",
     "apps[1].dependsOn", 8, "'api' depends on 'db', but they share no host"),
    ("hosts:\n  - name: a\n  - name: a\napps:\n  - name: api\n    path: apps/api\n    placement: {hosts: [a]}\n", "hosts[1].name", 3, "duplicate host 'a'"),
    ("hosts:\n  - name: Web_1\napps:\n  - name: api\n    path: apps/api\n    placement: {hosts: [Web_1]}\n", "hosts[0].name", 2, "not a valid host name"),
] as [(String, String, Int, String)])
func reportsBadFleetsPrecisely(text: String, field: String, line: Int, message: String) throws {
    let (config, diagnostics) = RepoConfig.parse(text)
    #expect(config == nil)
    let match = diagnostics.first { $0.severity == .error && $0.field == field && $0.message.contains(message) }
    #expect(match?.line == line, "\(diagnostics)")
    #expect(match?.file == "rewind.yaml" && match?.hint != nil, "\(diagnostics)")
}
