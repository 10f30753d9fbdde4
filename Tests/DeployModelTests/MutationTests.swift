import Foundation
import Testing
@testable import DeployModel
import TestSupport

private func templateFile(_ path: String) throws -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return try String(contentsOf: root.appendingPathComponent("deploy-repo-template/" + path), encoding: .utf8)
}

/// Truncations, deleted lines, inserted YAML punctuation and swapped bytes:
/// every variant parses to a value or to diagnostics, never a crash, and an
/// invalid result always carries at least one error.
@Test(arguments: ["rewind.yaml", "apps/api/app.yaml", "apps/worker/app.yaml", "apps/web/app.yaml"])
func mutatedFilesNeverCrashTheParser(path: String) throws {
    let original = Array(try templateFile(path).utf8)
    var rng = SplitMix(state: UInt64(path.utf8.count) &* 7919)
    let noise: [UInt8] = Array(":-[]{}&*!|>'\"%@`#,?\t\n ".utf8)
    for round in 0..<400 {
        var bytes = original
        switch round % 4 {
        case 0: bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng)))
        case 1:
            var lines = bytes.split(separator: 10, omittingEmptySubsequences: false)
            if !lines.isEmpty { lines.remove(at: Int.random(in: 0..<lines.count, using: &rng)) }
            bytes = Array(lines.joined(separator: [10]))
        case 2:
            for _ in 0..<Int.random(in: 1...5, using: &rng) {
                bytes.insert(noise.randomElement(using: &rng) ?? 58, at: Int.random(in: 0...bytes.count, using: &rng))
            }
        default:
            if bytes.count > 1 { bytes.swapAt(Int.random(in: 0..<bytes.count, using: &rng), Int.random(in: 0..<bytes.count, using: &rng)) }
        }
        let text = String(decoding: bytes, as: UTF8.self)
        if path == "rewind.yaml" {
            let (config, diagnostics) = RepoConfig.parse(text)
            #expect(config != nil || diagnostics.contains { $0.severity == .error })
        } else {
            let (spec, diagnostics) = AppSpec.parse(text, file: path)
            #expect(spec != nil || diagnostics.contains { $0.severity == .error })
        }
    }
}

@Test func aliasBombIsBoundedByTheFileSizeLimit() {
    // Anchors and aliases expand in memory; app.yaml is at most 1 MiB and the
    // parser must still answer (an alias shares its anchor's node; it is not copied).
    var text = "a0: &a0 [x, x, x, x, x, x, x, x]\n"
    for i in 1..<12 { text += "a\(i): &a\(i) [*a\(i - 1), *a\(i - 1), *a\(i - 1), *a\(i - 1)]\n" }
    let (spec, diagnostics) = AppSpec.parse(text, file: "apps/x/app.yaml")
    #expect(spec == nil)
    #expect(diagnostics.contains { $0.severity == .error })
}
