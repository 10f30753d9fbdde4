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
