import Foundation
import Synchronization
import Testing
import TestSupport

/// A harness whose repository is served by `git daemon` from a bare clone;
/// the harness's working tree plays the engineer who pushes with the git CLI.
final class RemoteSetup {
    let harness: ReconcilerHarness
    let daemon: GitDaemon
    let bare: String
    var url: String { daemon.url("deploy.git") }

    init(apps: [HarnessApp]) throws {
        harness = try ReconcilerHarness(apps: apps)
        let served = harness.root + "/served"
        try FileManager.default.createDirectory(atPath: served, withIntermediateDirectories: true)
        bare = served + "/deploy.git"
        try git(["clone", "-q", "--bare", harness.repo, bare], in: harness.root)
        try git(["remote", "add", "origin", bare], in: harness.repo)
        daemon = try GitDaemon(base: served)
        harness.remoteURL = url
    }

    /// Commits in the engineer's working tree and pushes with the git CLI,
    /// rebasing on what others pushed meanwhile; returns the pushed commit.
    static func engineerPushes(_ message: String, path: String, text: String, repo: String, url: String) throws -> String {
        try git(["pull", "-q", "--rebase", url, "main"], in: repo)
        try writeFile(repo + "/" + path, text)
        try git(["commit", "-q", "-am", message], in: repo)
        for _ in 0..<50 {
            if (try? git(["push", "-q", url, "HEAD:main"], in: repo)) != nil { return try git(["rev-parse", "HEAD"], in: repo) }
            try git(["pull", "-q", "--rebase", url, "main"], in: repo)
        }
        throw TestFailure("the engineer could not push \(message)")
    }

    /// `rewind ARGS --repo URL --mirror DIR` with the artifact root, from any thread.
    static func rewind(_ arguments: [String], url: String, mirror: String, artifacts: String) throws -> ProcessResult {
        try TestSupport.rewind(arguments + ["--repo", url, "--mirror", mirror], environment: ["REWIND_ARTIFACT_ROOT": artifacts])
    }

    /// `rewind ARGS --repo URL --mirror MIRROR`.
    func rewind(_ arguments: [String], mirror: String? = nil, environment: [String: String] = [:]) throws -> ProcessResult {
        try TestSupport.rewind(arguments + ["--repo", url, "--mirror", mirror ?? harness.mirror],
                               environment: environment.merging(["REWIND_ARTIFACT_ROOT": harness.artifacts]) { a, _ in a })
    }

    /// Commits on the served branch, newest first, with their subjects.
    func served() throws -> [(id: String, subject: String)] {
        try git(["log", "--format=%H %s", "main"], in: bare).split(separator: "\n").map { line in
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            return (parts[0], parts.count > 1 ? parts[1] : "")
        }
    }

    func close() {
        harness.close()
        daemon.stop()
    }
}

func withRemote<T>(apps: [HarnessApp], _ body: (RemoteSetup) throws -> T) throws -> T {
    let setup = try RemoteSetup(apps: apps)
    defer { setup.close() }
    return try body(setup)
}

/// Two exec apps at 1.0, then api at 1.1 and 1.2; returns the 1.1 commit.
func threeReleases(_ setup: RemoteSetup) throws -> String {
    try setup.harness.writeApp(execApp("api", version: "1.1"))
    let good = try setup.harness.commit("api 1.1")
    try setup.harness.writeApp(execApp("api", version: "1.2"))
    try setup.harness.commit("api 1.2")
    try git(["push", "-q", setup.url, "main"], in: setup.harness.repo)
    return good
}

/// Strings collected from concurrent work.
final class ResultsBox: Sendable {
    private let values = Mutex<[String]>([])
    func append(_ value: String) { values.withLock { $0.append(value) } }
    var all: [String] { values.withLock { $0 } }
}
