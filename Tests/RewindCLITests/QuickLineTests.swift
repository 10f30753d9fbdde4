import ArgumentParser
import Testing
import TestSupport
@testable import RewindCLI

/// `rewind revert`'s line is read without ArgumentParser when it can be
/// (QuickLine). Whatever it reads must be exactly what ArgumentParser
/// would: the whole command, every option group included, compared as
/// `dump` prints it (an option the quick reading forgot shows up as an
/// unparsed definition). Whatever it cannot read goes to ArgumentParser.
@Suite struct QuickLineTests {
    /// Each option `rewind revert --help` lists, with a value its type takes.
    static func revertOptions() -> [(name: String, value: String?)] {
        let help = RevertCommand.helpMessage(columns: 1_000)
        var options: [(String, String?)] = []
        for line in help.split(separator: "\n") {
            let words = line.split(separator: " ")
            guard let name = words.first.map(String.init), name.hasPrefix("--"), name != "--help" else { continue }
            let takesValue = words.contains { $0.hasPrefix("<") }
            options.append((name, takesValue ? sampleValue(for: name) : nil))
        }
        return options
    }

    static func sampleValue(for name: String) -> String {
        if name.hasSuffix("timeout") { return "30s" }
        if name == "--format" { return "json" }
        return "x"
    }

    /// The quick reading, and ArgumentParser's when there is a quick one.
    static func read(_ line: [String]) -> (quick: String?, parsed: String?) {
        guard let quick = RevertCommand.quick(line).map(dumped) else { return (nil, nil) }
        return (quick, (try? RevertCommand.parse(line)).map(dumped))
    }

    static func dumped(_ value: Any) -> String {
        var text = ""
        dump(value, to: &text)
        return text
    }

    @Test func everyOptionIsReadAsArgumentParserReadsIt() throws {
        let options = Self.revertOptions()
        #expect(options.count >= 19, "\(options.map(\.name))")
        for (name, value) in options {
            for line in [["abc123", name] + (value.map { [$0] } ?? []), value.map { ["\(name)=\($0)", "abc123"] } ?? [name, "abc123"]] {
                let (quick, parsed) = Self.read(line)
                #expect(quick != nil, "not read quickly: \(line)")
                #expect(quick == parsed, "\(line)")
            }
        }
        let (quick, parsed) = Self.read(["abc123"])
        #expect(quick != nil && quick == parsed, "defaults")
    }

    /// Random lines of known options, bad values, repeats, unknown options,
    /// help and stray words: a line read quickly is one ArgumentParser
    /// reads, and reads the same.
    @Test func randomLinesAgreeOrGoToArgumentParser() throws {
        let options = Self.revertOptions()
        let junk = ["--help", "-h", "--", "--nope", "-x", "extra", "--format", "yaml", "0s", "-1", "", "--reason=", "--repo=-x"]
        var random = SplitMix(state: 23)
        var quickly = 0
        for _ in 0..<400 {
            var line: [String] = Int.random(in: 0..<6, using: &random) == 0 ? [] : ["abc123"]
            for _ in 0..<Int.random(in: 0..<5, using: &random) {
                if Int.random(in: 0..<5, using: &random) == 0 {
                    line.insert(junk[Int.random(in: 0..<junk.count, using: &random)], at: Int.random(in: 0...line.count, using: &random))
                    continue
                }
                let (name, value) = options[Int.random(in: 0..<options.count, using: &random)]
                let words = value.map { Int.random(in: 0..<2, using: &random) == 0 ? ["\(name)=\($0)"] : [name, $0] } ?? [name]
                line.insert(contentsOf: words, at: Int.random(in: 0...line.count, using: &random))
            }
            let (quick, parsed) = Self.read(line)
            guard let quick else { continue }
            #expect(parsed != nil, "read quickly, refused by ArgumentParser: \(line)")
            #expect(quick == parsed, "\(line)")
            quickly += 1
        }
        #expect(quickly > 100, "read quickly: \(quickly)")
    }

    /// `rewind --version` skips ArgumentParser too, and prints what it would.
    @Test func theVersionIsPrintedAsArgumentParserPrintsIt() throws {
        #expect(RewindCommand.quickCommand(["--version"]) is RewindCommand.PrintVersion)
        #expect(RewindCommand.quickCommand(["--version", "x"]) == nil)
        let printed = try rewind(["--version"])
        #expect(printed.status == 0)
        #expect(printed.stdout == RewindCommand.configuration.version + "\n")
        #expect(try rewind(["help", "--version"]).stdout == printed.stdout, "ArgumentParser's own --version")
    }
}
