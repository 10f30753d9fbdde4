import ArgumentParser
import Testing
import TestSupport
@testable import RewindCLI

/// `rewind revert`'s and `rewind rollback`'s lines are read without
/// ArgumentParser when they can be (QuickLine). Whatever is read must be
/// exactly what ArgumentParser would read: the whole command, every option
/// group included, compared as `dump` prints it (an option the quick reading
/// forgot shows up as an unparsed definition). Whatever cannot be read goes
/// to ArgumentParser.
@Suite struct QuickLineTests {
    /// A command read both ways.
    struct Reading {
        let name: String
        let help: String
        let quick: ([String]) -> ParsableCommand?
        let parse: ([String]) throws -> ParsableCommand
        /// The positional words a line needs beside `option`.
        let words: (_ option: String) -> [String]
        /// Positional words for random lines.
        let strays: [String]
    }

    static var readings: [Reading] { [
        Reading(name: "revert", help: RevertCommand.helpMessage(columns: 1_000), quick: { RevertCommand.quick($0) }, parse: { try RevertCommand.parse($0) },
                words: { _ in ["abc123"] }, strays: ["abc123", "extra"]),
        Reading(name: "rollback", help: RollbackCommand.helpMessage(columns: 1_000), quick: { RollbackCommand.quick($0) }, parse: { try RollbackCommand.parse($0) },
                words: { $0 == "--all" ? [] : ["api"] }, strays: ["api", "web"]),
    ] }

    /// Each option a command's `--help` lists, with a value its type takes.
    static func options(_ reading: Reading) -> [(name: String, value: String?)] {
        var options: [(String, String?)] = []
        for line in reading.help.split(separator: "\n") {
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
    static func read(_ line: [String], _ reading: Reading) -> (quick: String?, parsed: String?) {
        guard let quick = reading.quick(line).map(dumped) else { return (nil, nil) }
        return (quick, (try? reading.parse(line)).map(dumped))
    }

    static func dumped(_ value: Any) -> String {
        var text = ""
        dump(value, to: &text)
        return text
    }

    @Test func everyOptionIsReadAsArgumentParserReadsIt() throws {
        for reading in Self.readings {
            let options = Self.options(reading)
            #expect(options.count >= 19, "\(reading.name): \(options.map(\.name))")
            for (name, value) in options {
                let words = reading.words(name)
                for line in [words + [name] + (value.map { [$0] } ?? []), (value.map { ["\(name)=\($0)"] } ?? [name]) + words] {
                    let (quick, parsed) = Self.read(line, reading)
                    #expect(quick != nil, "\(reading.name): not read quickly: \(line)")
                    #expect(quick == parsed, "\(reading.name): \(line)")
                }
            }
            let (quick, parsed) = Self.read(reading.words(""), reading)
            #expect(quick != nil && quick == parsed, "\(reading.name): defaults")
        }
    }

    /// Random lines of known options, bad values, repeats, unknown options,
    /// help and stray words: a line read quickly is one ArgumentParser
    /// reads, and reads the same.
    @Test func randomLinesAgreeOrGoToArgumentParser() throws {
        let junk = ["--help", "-h", "--", "--nope", "-x", "--format", "yaml", "0s", "-1", "", "--reason=", "--repo=-x"]
        var random = SplitMix(state: 23)
        for reading in Self.readings {
            let options = Self.options(reading)
            var quickly = 0
            for _ in 0..<300 {
                var line = Array(reading.strays.prefix(Int.random(in: 0...reading.strays.count, using: &random)))
                for _ in 0..<Int.random(in: 0..<5, using: &random) {
                    if Int.random(in: 0..<5, using: &random) == 0 {
                        let word = (junk + reading.strays).randomElement(using: &random) ?? ""
                        line.insert(word, at: Int.random(in: 0...line.count, using: &random))
                        continue
                    }
                    let (name, value) = options[Int.random(in: 0..<options.count, using: &random)]
                    let words = value.map { Int.random(in: 0..<2, using: &random) == 0 ? ["\(name)=\($0)"] : [name, $0] } ?? [name]
                    line.insert(contentsOf: words, at: Int.random(in: 0...line.count, using: &random))
                }
                let (quick, parsed) = Self.read(line, reading)
                guard let quick else { continue }
                #expect(parsed != nil, "\(reading.name): read quickly, refused by ArgumentParser: \(line)")
                #expect(quick == parsed, "\(reading.name): \(line)")
                quickly += 1
            }
            #expect(quickly > 60, "\(reading.name): read quickly: \(quickly)")
        }
    }

    /// `rewind --version` skips ArgumentParser too, and prints what it would.
    @Test func theVersionIsPrintedAsArgumentParserPrintsIt() throws {
        #expect(RewindCommand.quickCommand(["--version"]) is RewindCommand.PrintVersion)
        #expect(RewindCommand.quickCommand(["--version", "x"]) == nil)
        #expect(RewindCommand.quickCommand(["rollback", "api", "--all"]) == nil, "refused by validate(): ArgumentParser says why")
        let printed = try rewind(["--version"])
        #expect(printed.status == 0)
        #expect(printed.stdout == RewindCommand.configuration.version + "\n")
        #expect(try rewind(["help", "--version"]).stdout == printed.stdout, "ArgumentParser's own --version")
    }
}
