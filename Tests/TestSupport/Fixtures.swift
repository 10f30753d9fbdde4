import Foundation

/// A repository built from `fixtures/NAME/`, one commit per step directory.
public struct FixtureRepo: Sendable {
    /// The working tree.
    public let path: String
    /// The artifact root the fixture's artifacts were created in.
    public let artifactRoot: String
    /// Commit ids, one per step, oldest first.
    public let commits: [String]

    /// Runs git in the fixture.
    @discardableResult
    public func git(_ arguments: String...) throws -> String { try TestSupport.git(arguments, in: path) }

    /// Runs rewind against the fixture, with its artifact root.
    @discardableResult
    public func rewind(_ arguments: String...) throws -> ProcessResult {
        try rewind(arguments)
    }

    /// Runs rewind against the fixture, with its artifact root.
    @discardableResult
    public func rewind(_ arguments: [String]) throws -> ProcessResult {
        try TestSupport.rewind(arguments + ["--repo", path], environment: ["REWIND_ARTIFACT_ROOT": artifactRoot])
    }

    /// Commits a change made by `edit` with the git CLI; returns the new commit id.
    @discardableResult
    public func commitChange(_ message: String, _ edit: (String) throws -> Void) throws -> String {
        try edit(path)
        try git("add", "-A")
        try git("commit", "-q", "-m", message)
        return try git("rev-parse", "HEAD")
    }

    /// The commit at the tip of main.
    public func tip() throws -> String { try git("rev-parse", "main") }

    /// Refs and object count: equal before and after means nothing was written.
    public func snapshot() throws -> String {
        let refs = try git("for-each-ref", "--format=%(refname) %(objectname)")
        let objects = try git("count-objects", "-v")
        let status = try git("status", "--porcelain")
        return refs + "\n" + objects + "\n" + status
    }
}

/// Builds `fixtures/NAME/` into a temporary repository and runs `body` with it.
///
/// Each step directory (sorted by name) is copied over the working tree and
/// committed; its name after the first dash is the commit message. A file
/// `.delete` in a step lists paths to remove first. Every `artifact:` path
/// mentioned by any step's app.yaml is created under the artifact root,
/// except those listed in a step's `.missing-artifacts`.
public func withFixtureRepo<T>(_ name: String, bare: Bool = false, _ body: (FixtureRepo) throws -> T) throws -> T {
    try withTemporaryDirectory { tmp in try body(try buildFixture(name, in: tmp, bare: bare)) }
}

/// `withFixtureRepo` for async bodies.
public func withFixtureRepoAsync<T>(_ name: String, bare: Bool = false, _ body: (FixtureRepo) async throws -> T) async throws -> T {
    let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("rewind-test-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: tmp) }
    return try await body(try buildFixture(name, in: tmp, bare: bare))
}

private func buildFixture(_ name: String, in tmp: String, bare: Bool) throws -> FixtureRepo {
    do {
        let work = tmp + "/repo", artifacts = tmp + "/artifacts"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        try TestSupport.git(["init", "-q", "-b", "main", work], in: tmp)
        let fixture = packageRoot + "/fixtures/" + name
        let steps = try FileManager.default.contentsOfDirectory(atPath: fixture).filter { !$0.hasPrefix(".") }.sorted()
        var commits: [String] = []
        var missing: Set<String> = []
        for (i, step) in steps.enumerated() {
            let stepPath = fixture + "/" + step
            if let deletions = try? String(contentsOfFile: stepPath + "/.delete", encoding: .utf8) {
                for line in deletions.split(separator: "\n") { try TestSupport.git(["rm", "-rq", String(line)], in: work) }
            }
            if let list = try? String(contentsOfFile: stepPath + "/.missing-artifacts", encoding: .utf8) {
                missing.formUnion(list.split(separator: "\n").map(String.init))
            }
            try copyTree(from: stepPath, to: work)
            try TestSupport.git(["add", "-A"], in: work)
            let message = step.split(separator: "-", maxSplits: 1).last.map { $0.replacingOccurrences(of: "-", with: " ") } ?? step
            let date = "2026-01-01T00:00:\(String(format: "%02d", i))Z"
            _ = try run("/usr/bin/git", ["commit", "-q", "--allow-empty", "-m", message], in: work, environment: ["GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date])
            commits.append(try TestSupport.git(["rev-parse", "HEAD"], in: work))
        }
        try createArtifacts(in: work, root: artifacts, commits: commits, except: missing)
        var path = work
        if bare {
            path = tmp + "/bare.git"
            try TestSupport.git(["clone", "-q", "--bare", work, path], in: tmp)
        }
        return FixtureRepo(path: path, artifactRoot: artifacts, commits: commits)
    }
}

private func copyTree(from source: String, to destination: String) throws {
    let fm = FileManager.default
    guard let walker = fm.enumerator(atPath: source) else { return }
    while let relative = walker.nextObject() as? String {
        let name = (relative as NSString).lastPathComponent
        if name == ".delete" || name == ".missing-artifacts" { continue }
        let from = source + "/" + relative, to = destination + "/" + relative
        var isDirectory: ObjCBool = false
        fm.fileExists(atPath: from, isDirectory: &isDirectory)
        if isDirectory.boolValue {
            try fm.createDirectory(atPath: to, withIntermediateDirectories: true)
        } else {
            if fm.fileExists(atPath: to) { try fm.removeItem(atPath: to) }
            try fm.copyItem(atPath: from, toPath: to)
        }
    }
}

private func createArtifacts(in work: String, root: String, commits: [String], except missing: Set<String>) throws {
    var paths: Set<String> = []
    for commit in commits {
        let files = try TestSupport.git(["ls-tree", "-r", "--name-only", commit], in: work).split(separator: "\n").filter { $0.hasSuffix("app.yaml") }
        for file in files {
            let text = try TestSupport.git(["show", "\(commit):\(file)"], in: work)
            for line in text.split(separator: "\n") where line.contains("path:") || line.hasPrefix("artifact:") {
                let value = line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                if value.contains(".tar.gz") { paths.insert(value) }
            }
        }
    }
    for path in paths.subtracting(missing) {
        try writeFile(root + "/" + path, "artifact \(path)\n")
    }
}
