import Foundation
import Testing
import TestSupport

/// Starts all processes before waiting for any.
private func runConcurrently(_ argumentLists: [[String]], environment: [String: String]) throws -> [ProcessResult] {
    nonisolated(unsafe) var results = [ProcessResult?](repeating: nil, count: argumentLists.count)
    nonisolated(unsafe) var failure: Error?
    let lock = NSLock()
    DispatchQueue.concurrentPerform(iterations: argumentLists.count) { i in
        do {
            let result = try rewind(argumentLists[i], environment: environment)
            lock.lock(); results[i] = result; lock.unlock()
        } catch {
            lock.lock(); failure = error; lock.unlock()
        }
    }
    if let failure { throw failure }
    return results.compactMap { $0 }
}

@Suite struct ConcurrencyTests {
    @Test func twentyWritersSameAppSameTargetMakeOneCommit() throws {
        try withFixtureRepo("three-apps") { repo in
            let tip = try repo.tip()
            let args = Array(repeating: ["rollback", "api", "--to", repo.commits[3], "--repo", repo.path], count: 20)
            let results = try runConcurrently(args, environment: ["REWIND_ARTIFACT_ROOT": repo.artifactRoot])
            #expect(results.allSatisfy { $0.status == 0 }, "\(results.map(\.stderr))")
            #expect(results.filter { $0.stdout.hasPrefix("Wrote ") }.count == 1)
            #expect(results.filter { $0.stdout.contains("already rolled back") }.count == 19)
            #expect(try repo.git("rev-list", "--count", "\(tip)..main") == "1")
            #expect(try repo.git("rev-parse", "main~1") == tip)
            try repo.git("fsck", "--full", "--strict")
        }
    }

    /// Without --to, each writer resolves the default target against the
    /// release it set out to undo; the losers find it rolled back already
    /// instead of going one release further back each.
    @Test func twentyDefaultWritersOnABareRepositoryMakeOneCommit() throws {
        try withFixtureRepo("three-apps", bare: true) { repo in
            let tip = try repo.tip()
            let args = Array(repeating: ["rollback", "api", "--repo", repo.path], count: 20)
            let results = try runConcurrently(args, environment: ["REWIND_ARTIFACT_ROOT": repo.artifactRoot])
            #expect(results.allSatisfy { $0.status == 0 }, "\(results.map(\.stderr))")
            #expect(results.filter { $0.stdout.hasPrefix("Wrote ") }.count == 1)
            #expect(results.filter { $0.stdout.contains("already rolled back") }.count == 19, "\(results.map(\.stdout))")
            #expect(try repo.git("rev-list", "--count", "\(tip)..main") == "1")
            #expect(try repo.git("rev-parse", "main:apps/api") == (try repo.git("rev-parse", "\(repo.commits[3]):apps/api")))
            try repo.git("fsck", "--full", "--strict")
        }
    }

    @Test func twentyWritersDifferentAppsAllLand() throws {
        try withTemporaryDirectory { tmp in
            let repo = tmp + "/repo"
            try git(["init", "-q", "-b", "main", repo], in: tmp)
            var config = "branch: main\napps:\n"
            for i in 0..<20 { config += "  - name: app\(i)\n    path: apps/app\(i)\n" }
            try writeFile(repo + "/rewind.yaml", config)
            func writeApps(_ version: String) throws {
                for i in 0..<20 { try writeFile(repo + "/apps/app\(i)/app.yaml", "platform: exec\nversion: \(version)\nexec:\n  apply: ./deploy.sh\n") }
            }
            try writeApps("1.0.0")
            try git(["add", "-A"], in: repo)
            try git(["commit", "-qm", "v1"], in: repo)
            let first = try git(["rev-parse", "HEAD"], in: repo)
            try writeApps("2.0.0")
            try git(["commit", "-qam", "v2"], in: repo)
            let tip = try git(["rev-parse", "HEAD"], in: repo)
            let args = (0..<20).map { ["rollback", "app\($0)", "--to", first, "--repo", repo] }
            let results = try runConcurrently(args, environment: [:])
            #expect(results.allSatisfy { $0.status == 0 && $0.stdout.hasPrefix("Wrote ") }, "\(results.map(\.stderr))")
            #expect(try git(["rev-list", "--count", "\(tip)..main"], in: repo) == "20")
            #expect(try git(["rev-parse", "main^{tree}"], in: repo) == (try git(["rev-parse", "\(first)^{tree}"], in: repo)))
            try git(["fsck", "--full", "--strict"], in: repo)
            #expect(try git(["status", "--porcelain"], in: repo).isEmpty)
        }
    }
}
