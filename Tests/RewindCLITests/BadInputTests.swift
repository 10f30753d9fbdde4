import Foundation
import Testing
import TestSupport

/// One way to break a deployment repository, and what `validate` must say.
struct BreakingChange: CustomTestStringConvertible, Sendable {
    let name: String
    let expected: [String]
    let edit: @Sendable (String) throws -> Void
    var testDescription: String { name }
}

private func replace(_ file: String, _ old: String, _ new: String) throws {
    let text = try String(contentsOfFile: file, encoding: .utf8)
    try writeFile(file, text.replacingOccurrences(of: old, with: new))
}

let breakingChanges: [BreakingChange] = [
    BreakingChange(name: "malformed YAML", expected: ["rewind.yaml:", "malformed YAML"]) { try writeFile($0 + "/rewind.yaml", "branch: main\napps: [\n  - name: api\n") },
    BreakingChange(name: "unknown platform", expected: ["apps/api/app.yaml:1:", "unknown platform 'kubernetes'", "process, exec"]) {
        try replace($0 + "/apps/api/app.yaml", "platform: process", "platform: kubernetes")
    },
    BreakingChange(name: "missing app directory", expected: ["apps.db.path", "'apps/db' does not exist"]) {
        try replace($0 + "/rewind.yaml", "apps:\n", "apps:\n  - name: db\n    path: apps/db\n")
    },
    BreakingChange(name: "duplicate app", expected: ["rewind.yaml:", "duplicate app 'api'"]) {
        try replace($0 + "/rewind.yaml", "apps:\n", "apps:\n  - name: api\n    path: apps/api2\n")
    },
    BreakingChange(name: "path with ..", expected: ["apps[1].path", "contains '..'"]) { try replace($0 + "/rewind.yaml", "path: apps/worker", "path: apps/../../worker") },
    BreakingChange(name: "absolute path", expected: ["apps[2].path", "absolute path"]) { try replace($0 + "/rewind.yaml", "path: apps/web", "path: /srv/web") },
    BreakingChange(name: "app directory is a symlink", expected: ["apps/web", "symbolic link"]) {
        try FileManager.default.removeItem(atPath: $0 + "/apps/web")
        try FileManager.default.createSymbolicLink(atPath: $0 + "/apps/web", withDestinationPath: "api")
    },
    BreakingChange(name: "symlink leaving the repository", expected: ["apps/api/secrets", "leaves the repository"]) {
        try FileManager.default.createSymbolicLink(atPath: $0 + "/apps/api/secrets", withDestinationPath: "../../../etc/passwd")
    },
    BreakingChange(name: "dependency cycle", expected: ["dependency cycle: api -> worker -> api"]) {
        try replace($0 + "/rewind.yaml", "path: apps/api\n", "path: apps/api\n    dependsOn: [worker]\n")
    },
    BreakingChange(name: "app.yaml over 1 MiB", expected: ["apps/api/app.yaml", "over the limit of 1048576"]) {
        let text = try String(contentsOfFile: $0 + "/apps/api/app.yaml", encoding: .utf8)
        try writeFile($0 + "/apps/api/app.yaml", text + "# " + String(repeating: "x", count: 1 << 20) + "\n")
    },
    BreakingChange(name: "rewind.yaml over 1 MiB", expected: ["rewind.yaml", "over the limit of 1048576"]) {
        let text = try String(contentsOfFile: $0 + "/rewind.yaml", encoding: .utf8)
        try writeFile($0 + "/rewind.yaml", text + "# " + String(repeating: "x", count: 1 << 20) + "\n")
    },
    BreakingChange(name: "missing app.yaml", expected: ["apps/web/app.yaml", "file is missing"]) { try FileManager.default.removeItem(atPath: $0 + "/apps/web/app.yaml") },
]

@Suite struct BadInputTests {
    @Test(arguments: breakingChanges)
    func invalidCommitsAreRefusedPrecisely(change: BreakingChange) throws {
        try withFixtureRepo("three-apps") { repo in
            try repo.commitChange(change.name) { try change.edit($0) }
            let before = try repo.snapshot()
            let result = try repo.rewind("validate")
            #expect(result.status == 2)
            for text in change.expected { #expect(result.stderr.contains(text), "\(result.stderr)") }
            let json = try repo.rewind("validate", "--format", "json")
            #expect(json.status == 2)
            #expect((try parseJSON(json.stdout) as? [String: Any])?["valid"] as? Bool == false)
            // A rollback that would leave the state invalid is refused and writes nothing.
            let rollback = try repo.rewind("rollback", "worker", "--to", repo.commits[0], "--force")
            #expect(rollback.status != 0)
            #expect(try repo.snapshot() == before)
            // The previous commit is still valid.
            #expect(try repo.rewind("validate", "main~1").status == 0)
        }
    }

    @Test func unknownFieldIsAWarningOnly() throws {
        try withFixtureRepo("three-apps") { repo in
            try repo.commitChange("extra field") { try replace($0 + "/apps/api/app.yaml", "version:", "colour: blue\nversion:") }
            let result = try repo.rewind("validate")
            #expect(result.status == 0)
            #expect(result.stderr.contains("apps/api/app.yaml:2:1: warning: colour: unknown field"))
        }
    }

    /// Operations that must refuse, leaving the repository byte-for-byte as it was.
    @Test(arguments: [
        (["revert", "no-such-revision"], 4, "unknown revision 'no-such-revision'"),
        (["rollback", "nope"], 4, "unknown app 'nope'"),
        (["rollback", "api", "--to", "#9"], 4, "no release #9"),
        (["rollback", "api", "--to", "#2"], 1, "artifact for api 1.1.0 is missing"),
        (["rollback", "worker"], 1, "irreversible migration: worker migration 0002_drop_legacy_jobs"),
        (["revert", "COMMIT1"], 1, "conflicts with later commits in: apps/api/app.yaml"),
        (["revert", "COMMIT0"], 1, "first commit"),
        (["check", "main..nowhere"], 4, "cannot read the range"),
    ] as [([String], Int32, String)])
    func refusalsWriteNothing(arguments: [String], status: Int32, message: String) throws {
        try withFixtureRepo("three-apps") { repo in
            let args = arguments.map { $0.hasPrefix("COMMIT") ? repo.commits[Int($0.dropFirst(6)) ?? 0] : $0 }
            let before = try repo.snapshot()
            let result = try TestSupport.rewind(args + ["--repo", repo.path], environment: ["REWIND_ARTIFACT_ROOT": repo.artifactRoot])
            #expect(result.status == status, "\(result.stderr)")
            #expect(result.stderr.contains(message), "\(result.stderr)")
            #expect(result.stderr.contains("hint:"), "every refusal says what to do next")
            #expect(try repo.snapshot() == before)
        }
    }

    @Test func irreversibleMigrationCanBeForcedByAHuman() throws {
        try withFixtureRepo("three-apps") { repo in
            let result = try repo.rewind("rollback", "worker", "--force", "--reason", "checked the data by hand")
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try repo.git("log", "-1", "--format=%B").contains("Rewind-Forced: worker migration 0002_drop_legacy_jobs is irreversible"))
        }
    }

    @Test func dirtyWorkingTreeIsRefused() throws {
        try withFixtureRepo("three-apps") { repo in
            try writeFile(repo.path + "/apps/api/config.env", "POOL=1234\n")
            let before = try repo.snapshot()
            let result = try repo.rewind("rollback", "api", "--to", "#1")
            #expect(result.status == 1)
            #expect(result.stderr.contains("uncommitted changes") && result.stderr.contains("apps/api/config.env"), "\(result.stderr)")
            #expect(try repo.snapshot() == before)
            #expect(try String(contentsOfFile: repo.path + "/apps/api/config.env", encoding: .utf8) == "POOL=1234\n")
            // Changes elsewhere do not block a rollback of api's files.
            try repo.git("checkout", "--", "apps/api/config.env")
            try writeFile(repo.path + "/apps/web/local.txt", "scratch\n")
            #expect(try repo.rewind("rollback", "api", "--to", "#1").status == 0)
            #expect(try String(contentsOfFile: repo.path + "/apps/web/local.txt", encoding: .utf8) == "scratch\n")
        }
    }

    @Test func aRollbackMayRepairABrokenApp() throws {
        try withFixtureRepo("three-apps") { repo in
            try repo.commitChange("lose web's app.yaml") { try FileManager.default.removeItem(atPath: $0 + "/apps/web/app.yaml") }
            #expect(try repo.rewind("validate").status == 2)
            let result = try repo.rewind("rollback", "web")
            #expect(result.status == 0, "\(result.stderr)")
            #expect(try repo.rewind("validate").status == 0)
        }
    }

    @Test func notARepository() throws {
        try withTemporaryDirectory { tmp in
            let result = try rewind(["releases", "--repo", tmp])
            #expect(result.status == 4)
            #expect(result.stderr.contains("no git repository"))
        }
    }
}
