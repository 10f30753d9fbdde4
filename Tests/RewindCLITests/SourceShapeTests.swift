import Foundation
import Testing
import TestSupport

/// The shape the code keeps so that a newcomer can read it top-down: no
/// Swift file over 400 lines, no function over 60 (generated files aside).
@Suite struct SourceShapeTests {
    static let maxFileLines = 400
    static let maxFunctionLines = 60

    /// The Swift files under `directory` (relative paths), generated ones left out.
    static func swiftFiles(under directory: String) -> [String] {
        let all = FileManager.default.enumerator(atPath: directory)?.compactMap { $0 as? String } ?? []
        return all.filter { $0.hasSuffix(".swift") && !$0.contains(".generated.") }.sorted()
    }

    /// The line without its string literals and `//` comment (one-line
    /// literals only; a multi-line literal's lines hold no braces that count).
    static func code(_ line: Substring) -> String {
        var out = ""
        var quoted = false
        var escaped = false
        var previous: Character = " "
        for character in line {
            if quoted {
                if escaped { escaped = false } else if character == "\\" { escaped = true } else if character == "\"" { quoted = false }
            } else if character == "\"" {
                quoted = true
            } else if character == "/" && previous == "/" {
                out.removeLast()
                break
            } else {
                out.append(character)
            }
            previous = character
        }
        return out
    }

    /// Each function, initialiser or subscript in `text` with its first line and its length in lines.
    static func functions(in text: String) -> [(line: Int, length: Int)] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let keywords: Set<String> = ["func", "init", "init?", "subscript", "deinit"]
        var found: [(line: Int, length: Int)] = []
        for (index, line) in lines.enumerated() {
            let words = code(line).split(whereSeparator: { $0 == " " || $0 == "(" || $0 == "<" }).map(String.init)
            guard let keyword = words.first(where: { !$0.hasPrefix("@") && !modifiers.contains($0) }), keywords.contains(keyword) else { continue }
            var depth = 0
            var opened = false
            var end = index
            scan: for candidate in index..<lines.count {
                for character in code(lines[candidate]) {
                    if character == "{" { depth += 1; opened = true }
                    if character == "}" { depth -= 1 }
                    if opened && depth == 0 { end = candidate; break scan }
                }
                // A requirement or declaration without a body ends at its line.
                if !opened && candidate > index && code(lines[candidate]).trimmingCharacters(in: .whitespaces).isEmpty { break }
            }
            if opened { found.append((index + 1, end - index + 1)) }
        }
        return found
    }

    static let modifiers: Set<String> = [
        "public", "package", "internal", "private", "fileprivate", "static", "class", "final", "override", "mutating", "nonmutating",
        "nonisolated", "convenience", "required", "dynamic", "private(set)", "consuming", "borrowing",
    ]

    @Test func noFileIsOverTheLimit() throws {
        for root in ["Sources", "Tests"] {
            let directory = packageRoot + "/" + root
            for file in Self.swiftFiles(under: directory) {
                let text = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
                let count = text.split(separator: "\n", omittingEmptySubsequences: false).count - (text.hasSuffix("\n") ? 1 : 0)
                #expect(count <= Self.maxFileLines, "\(root)/\(file) has \(count) lines; split it by responsibility (at most \(Self.maxFileLines))")
            }
        }
    }

    @Test func noFunctionIsOverTheLimit() throws {
        let directory = packageRoot + "/Sources"
        var checked = 0
        for file in Self.swiftFiles(under: directory) {
            let text = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
            for function in Self.functions(in: text) {
                checked += 1
                #expect(function.length <= Self.maxFunctionLines, "Sources/\(file):\(function.line): a function of \(function.length) lines (at most \(Self.maxFunctionLines))")
            }
        }
        #expect(checked > 1_000, "only \(checked) functions found: the scan is broken")
    }

    @Test func theScanMeasuresFunctions() {
        let text = """
            struct S {
                /// A "}" in a comment { does not count
                public static func one(_ a: Int) -> Int {
                    let s = "{ not a brace }"
                    return a + s.count
                }
                init?(x: Int) { nil }
                func requirement()

                mutating func two<T>() {
                    if true {
                        print(1)
                    }
                }
            }
            """
        let found = Self.functions(in: text)
        #expect(found.map(\.line) == [3, 7, 10], "\(found)")
        #expect(found.map(\.length) == [4, 1, 5], "\(found)")
    }
}
