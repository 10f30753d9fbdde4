import Foundation
import TestSupport

/// Parses JSON printed by rewind.
func parseJSON(_ text: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(text.utf8))
}

/// The commit ids of one app's releases, oldest first, from `rewind releases --format json`.
func releaseCommits(_ repo: FixtureRepo, app: String) throws -> [String] {
    let result = try repo.rewind("releases", app, "--format", "json", "--limit", "0")
    guard result.status == 0 else { throw TestFailure("releases failed: \(result.stderr)") }
    let apps = try parseJSON(result.stdout) as? [[String: Any]] ?? []
    let releases = apps.first?["releases"] as? [[String: Any]] ?? []
    return releases.compactMap { $0["commit"] as? String }
}

extension FixtureRepo {
    /// Commits a change made by `edit` with the git CLI; returns the new commit id.
    @discardableResult
    func commitChange(_ message: String, _ edit: (String) throws -> Void) throws -> String {
        try edit(path)
        try git("add", "-A")
        try git("commit", "-q", "-m", message)
        return try git("rev-parse", "HEAD")
    }

    func tip() throws -> String { try git("rev-parse", "main") }
}
