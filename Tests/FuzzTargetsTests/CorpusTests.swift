import DeployModel
import Foundation
import FuzzTargets
import Testing
import TestSupport

/// Every seed and every regression input of `fixtures/fuzz/<target>/` goes
/// through its fuzz target: the corpora stay valid, and a crash that `make
/// fuzz` found (saved there as `crash-*`) stays fixed.
@Suite struct CorpusTests {
    static let root = packageRoot + "/fixtures/fuzz"

    @Test(arguments: FuzzTargets.all.map(\.name))
    func everyCorpusFileRunsThrough(target: String) throws {
        let run = try #require(FuzzTargets.named(target))
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.root + "/" + target).sorted()
        #expect(files.count >= 3, "the \(target) corpus has seeds")
        for file in files {
            let data = try #require(FileManager.default.contents(atPath: Self.root + "/" + target + "/" + file))
            run(Array(data))
        }
    }

    @Test func everyCorpusHasATarget() throws {
        let folders = try FileManager.default.contentsOfDirectory(atPath: Self.root).sorted()
        #expect(folders == FuzzTargets.all.map(\.name).sorted())
    }

    /// Found by reasoning about what the fuzzer would find: repeated large
    /// units overflowed Int64 and trapped.
    @Test func anOverflowingDurationIsNotADuration() {
        #expect(Duration(parsing: String(repeating: "999999999d", count: 200)) == nil)
        #expect(Duration(parsing: "1h30m")?.milliseconds == 5_400_000)
    }

    /// Found by `make fuzz` (fixtures/fuzz/durations/crash-2f41…): 12 days
    /// and a millisecond printed as 1036800001ms, which does not parse back.
    @Test(arguments: ["1ms12d", "1ms", "90s", "2h", "1h1m1s1ms", "999999999d"])
    func aDurationPrintsAsTextThatParsesBack(text: String) throws {
        let duration = Duration(parsing: text)
        if text == "999999999d" { #expect(duration == nil, "longer than Duration.longest"); return }
        let parsed = try #require(duration)
        #expect(Duration(parsing: parsed.description) == parsed, "\(parsed)")
    }
}
