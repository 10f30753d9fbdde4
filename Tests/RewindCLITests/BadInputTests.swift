import Foundation
import Testing
import TestSupport

/// One way to break a deployment repository, and what `validate` must say.
struct BreakingChange: CustomTestStringConvertible, Sendable {
    let name: String
    let expected: [String]
    /// What must not be said (spurious follow-on errors).
    var unexpected: [String] = []
    let edit: @Sendable (String) throws -> Void
    var testDescription: String { name }

    init(name: String, expected: [String], unexpected: [String] = [], edit: @escaping @Sendable (String) throws -> Void) {
        self.name = name
        self.expected = expected
        self.unexpected = unexpected
        self.edit = edit
    }
}

/// A pins file holding `app` at `tree`, pinned from `target`.
private func writePin(_ work: String, app: String, tree: String, target: String) throws {
    try writeFile(work + "/rewind.pins.yaml", "pins:\n  \(app):\n    tree: \(tree)\n    target: \(target)\n")
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
    BreakingChange(name: "duplicate app", expected: ["rewind.yaml:", "duplicate app 'api'"], unexpected: ["dependency cycle"]) {
        try replace($0 + "/rewind.yaml", "apps:\n", "apps:\n  - name: api\n    path: apps/api2\n")
    },
    BreakingChange(name: "path with ..", expected: ["apps[1].path", "contains '..'"]) { try replace($0 + "/rewind.yaml", "path: apps/worker", "path: apps/../../worker") },
    BreakingChange(name: "absolute path", expected: ["apps[2].path", "absolute path"]) { try replace($0 + "/rewind.yaml", "path: apps/web", "path: /srv/web") },
    BreakingChange(name: "app directory is a symlink", expected: ["apps/web", "symbolic link"]) {
        try FileManager.default.removeItem(atPath: $0 + "/apps/web")
        try FileManager.default.createSymbolicLink(atPath: $0 + "/apps/web", withDestinationPath: "api")
    },
    BreakingChange(name: "symlink leaving the app directory", expected: ["apps/api/secrets", "leaves the app directory"]) {
        try FileManager.default.createSymbolicLink(atPath: $0 + "/apps/api/secrets", withDestinationPath: "../../../etc/passwd")
    },
    // Valid relative to the repository, but three levels deeper once deployed
    // it would reach the repository's .git/config: judged from the app's root.
    BreakingChange(name: "symlink that leaves the app once deployed", expected: ["apps/api/d1/d2/d3/d4/repo-config", "leaves the app directory"]) {
        try FileManager.default.createDirectory(atPath: $0 + "/apps/api/d1/d2/d3/d4", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: $0 + "/apps/api/d1/d2/d3/d4/repo-config", withDestinationPath: "../../../../../config")
    },
    BreakingChange(name: "symlink through another symlink", expected: ["apps/api/via", "leaves the app directory"]) {
        try FileManager.default.createSymbolicLink(atPath: $0 + "/apps/api/up", withDestinationPath: "../..")
        try FileManager.default.createSymbolicLink(atPath: $0 + "/apps/api/via", withDestinationPath: "up/..")
    },
    BreakingChange(name: "app.yaml is a symlink", expected: ["apps/web/app.yaml", "is a symbolic link"], unexpected: ["file is missing"]) {
        try FileManager.default.removeItem(atPath: $0 + "/apps/web/app.yaml")
        try FileManager.default.createSymbolicLink(atPath: $0 + "/apps/web/app.yaml", withDestinationPath: "../api/app.yaml")
    },
    BreakingChange(name: "command out of the app's files", expected: ["apps/api/app.yaml:6:", "process.command", "leaves the app's files"]) {
        try replace($0 + "/apps/api/app.yaml", "command: rewind-demo-service", "command: ../../../../bin/sh")
    },
    BreakingChange(name: "working directory out of the app's files", expected: ["process.workingDirectory", "leaves the app's files"]) {
        try replace($0 + "/apps/api/app.yaml", "  command: rewind-demo-service", "  command: rewind-demo-service\n  workingDirectory: ../../..")
    },
    BreakingChange(name: "exec command out of the app's files", expected: ["exec.apply", "leaves the app's files"]) {
        try replace($0 + "/apps/web/app.yaml", "apply: ./deploy.sh", "apply: [../../../usr/bin/env]")
    },
    BreakingChange(name: "NaN threshold", expected: ["policy.triggers[0].threshold", "finite number"]) {
        try replace($0 + "/rewind.yaml", "policy:\n", "policy:\n  triggers:\n    - name: errors\n      query: up\n      threshold: .nan\n")
    },
    BreakingChange(name: "file over the size limit", expected: ["apps/api/big.bin", "over the limit of 4096"]) {
        try replace($0 + "/rewind.yaml", "policy:\n", "limits:\n  maxFileBytes: 4096\npolicy:\n")
        try writeFile($0 + "/apps/api/big.bin", String(repeating: "x", count: 5000))
    },
    BreakingChange(name: "pin to a tree that does not exist", expected: ["rewind.pins.yaml:2:", "pins.api.tree", "does not exist"]) { work in
        let head = try git(["rev-parse", "HEAD"], in: work)
        try writePin(work, app: "api", tree: String(repeating: "1", count: 40), target: head)
    },
    BreakingChange(name: "pin to another app's tree", expected: ["rewind.pins.yaml:2:", "pins.api.tree", "is not api's directory"]) { work in
        let head = try git(["rev-parse", "HEAD"], in: work)
        try writePin(work, app: "api", tree: try git(["rev-parse", "HEAD:apps/worker"], in: work), target: head)
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
            for text in change.unexpected { #expect(!result.stderr.contains(text), "\(result.stderr)") }
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

    /// Operations that must refuse, leaving the repository byte-for-byte as
    /// it was; but a data-loss guard's refusal is recorded as a `refused`
    /// note on the tip (what `rewind audit` counts), and nothing else moves.
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
            let guardName = message.contains("artifact") ? "artifact" : message.contains("migration") ? "migration" : nil
            if let guardName {
                let note = try repo.git("notes", "--ref=rewind", "show", "main")
                #expect(note.hasPrefix("refused app=\(args[1]) guard=\(guardName) trigger=manual reason="), "\(note)")
                // Refused again on the same tip: recorded once.
                _ = try TestSupport.rewind(args + ["--repo", repo.path], environment: ["REWIND_ARTIFACT_ROOT": repo.artifactRoot])
                #expect(try repo.git("notes", "--ref=rewind", "show", "main") == note)
                // Nothing else: the refs but the notes, and the working tree, are as they were.
                let kept = { (snapshot: String) in snapshot.split(separator: "\n").filter { $0.hasPrefix("refs/") && !$0.hasPrefix("refs/notes/rewind ") || $0.hasPrefix(" ") || $0.hasPrefix("?") } }
                #expect(kept(try repo.snapshot()) == kept(before))
            } else {
                #expect(try repo.snapshot() == before)
            }
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

    /// What the reconciler would refuse is refused before it is written.
    @Test func aRollbackToACommitOverTheLimitsIsRefusedAndValidateSaysWhy() throws {
        try withFixtureRepo("three-apps") { repo in
            let big = try repo.commitChange("api with a big file") { try writeFile($0 + "/apps/api/dump.bin", String(repeating: "x", count: 11 << 20)) }
            try repo.commitChange("drop it") { try FileManager.default.removeItem(atPath: $0 + "/apps/api/dump.bin") }
            let validate = try repo.rewind("validate", big)
            #expect(validate.status == 2)
            #expect(validate.stderr.contains("apps/api/dump.bin") && validate.stderr.contains("over the limit of 10485760"), "\(validate.stderr)")
            let before = try repo.snapshot()
            let rollback = try repo.rewind("rollback", "api", "--to", big)
            #expect(rollback.status == 2, "\(rollback.stdout)\(rollback.stderr)")
            #expect(rollback.stderr.contains("over the limit"))
            #expect(try repo.snapshot() == before)
        }
    }

    /// `rewind check` blames the commits that change a pinned app, not the
    /// unrelated ones after the app drifted from its pin.
    @Test func checkBlamesOnlyCommitsThatChangeThePinnedApp() throws {
        try withFixtureRepo("three-apps") { repo in
            #expect(try repo.rewind("pin", "api", "--to", "#3").status == 0)
            let pinCommit = try repo.tip()
            let drift = try repo.commitChange("bump api") { try writeFile($0 + "/apps/api/config.env", "POOL=99\n") }
            let worker = try repo.commitChange("worker only") { try writeFile($0 + "/apps/worker/config.env", "THREADS=4\n") }
            let check = try repo.rewind("check", "\(pinCommit)..main")
            #expect(check.status == 3)
            #expect(check.stderr.contains(String(drift.prefix(7))))
            #expect(!check.stderr.contains(String(worker.prefix(7))), "\(check.stderr)")
            #expect(try repo.rewind("check", "\(drift)..main").status == 0)
        }
    }

    @Test func aBranchThatDoesNotExistIsNamedWithTheBranchesThatDo() throws {
        try withFixtureRepo("three-apps") { repo in
            let result = try repo.rewind("releases", "--branch", "nope")
            #expect(result.status == 4)
            #expect(result.stderr.contains("branch nope does not exist") && result.stderr.contains("main"), "\(result.stderr)")
        }
    }

    @Test func aShallowCloneIsNamedAsSuch() throws {
        try withFixtureRepo("three-apps") { repo in
            let shallow = repo.path + "-shallow"
            defer { try? FileManager.default.removeItem(atPath: shallow) }
            try git(["clone", "-q", "--depth", "2", "file://" + repo.path, shallow], in: repo.path)
            let result = try rewind(["releases", "--repo", shallow])
            #expect(result.status == 4)
            #expect(result.stderr.contains("shallow clone") && result.stderr.contains("git fetch --unshallow"), "\(result.stderr)")
        }
    }

    @Test func aByteOrderMarkIsAccepted() throws {
        try withFixtureRepo("three-apps") { repo in
            try repo.commitChange("BOMs") { work in
                for file in ["/rewind.yaml", "/apps/api/app.yaml"] {
                    try writeFile(work + file, "\u{FEFF}" + (try String(contentsOfFile: work + file, encoding: .utf8)))
                }
            }
            let result = try repo.rewind("validate")
            #expect(result.status == 0, "\(result.stderr)")
        }
    }

    @Test func aGitTokenIsNotSentOverPlainHTTP() throws {
        let result = try rewind(["releases", "--repo", "http://127.0.0.1:1/deploy.git", "--mirror", "/tmp/rewind-never-\(UUID().uuidString)"],
                                environment: ["REWIND_GIT_TOKEN": "plain-http-token-1234"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("--allow-insecure-http"), "\(result.stderr)")
        #expect(!result.stderr.contains("plain-http-token-1234"))
    }

    @Test func aPasswordInAFileURLIsRefusedAndNeverWritten() throws {
        try withTemporaryDirectory { tmp in
            let result = try rewind(["releases", "--repo", "file://admin:hunter2secret@/srv/deploy.git"], environment: ["XDG_STATE_HOME": tmp])
            #expect(result.status == 64)
            #expect(result.stderr.contains("credentials"), "\(result.stderr)")
            #expect(!result.stderr.contains("hunter2secret") && !result.stdout.contains("hunter2secret"))
            #expect(try FileManager.default.contentsOfDirectory(atPath: tmp).isEmpty, "no mirror is made")
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
