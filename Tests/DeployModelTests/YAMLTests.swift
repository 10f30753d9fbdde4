import Testing
@testable import DeployModel

/// The composer over libyaml's events (YAML.swift): what the readers of
/// rewind.yaml, app.yaml, the pins and the routes get from a text.
@Suite struct YAMLTests {
    private func compose(_ text: String) throws -> Node {
        try #require(try Node.compose(text))
    }

    private func syntaxError(_ text: String) -> YAMLSyntaxError? {
        do {
            _ = try Node.compose(text)
            return nil
        } catch {
            return error
        }
    }

    @Test func scalarsKeepTheirTextStyleAndPlace() throws {
        let root = try compose("a: 1\nb: 'x y'\nc:\n  - \"q\"\n  - |\n    block\n")
        let map = try #require(root.mapping)
        #expect(map.map { $0.key.string } == ["a", "b", "c"])
        #expect(map[0].value.scalar?.style == .plain)
        #expect(map[0].value.mark == Mark(line: 1, column: 4))
        #expect(map[1].value.string == "x y")
        #expect(map[1].value.scalar?.style == .singleQuoted)
        guard case .sequence(let list) = map[2].value else {
            Issue.record("c is not a list")
            return
        }
        #expect(list.mark == Mark(line: 4, column: 3))
        #expect(list.map(\.string) == ["q", "block\n"])
        #expect(list.map { $0.scalar?.style } == [.doubleQuoted, .literal])
    }

    @Test func anAliasIsTheNodeItsAnchorNames() throws {
        let map = try #require(try compose("base: &b {k: v}\nother: *b\n").mapping)
        #expect(map[1].value.mapping?.first?.value.string == "v")
        let error = try #require(syntaxError("a: *missing\n"))
        #expect(error.problem == "found undefined alias")
        #expect(error.mark?.line == 1)
    }

    @Test func oneDocumentOnly() throws {
        #expect(try Node.compose("") == nil)
        #expect(try Node.compose("# only a comment\n") == nil)
        let error = try #require(syntaxError("a: 1\n---\nb: 2\n"))
        #expect(error.problem == "but found another document")
        #expect(error.mark?.line == 2)
    }

    @Test func aRepeatedKeyIsAnErrorAtItsFirstPlace() throws {
        let error = try #require(syntaxError("top:\n  y: 1\n  x: 2\n  y: 3\n  x: 4\n"))
        guard case .duplicateKeys(let keys) = error.kind else {
            Issue.record("\(error)")
            return
        }
        #expect(keys == ["x", "y"])
        #expect(error.mark == Mark(line: 3, column: 3))
        let reader = YAMLReader(file: "rewind.yaml")
        #expect(reader.compose("a: 1\na: 2\n") == nil)
        #expect(reader.diagnostics.map(\.field) == ["a"])
        #expect(reader.diagnostics.first?.line == 1)
    }

    @Test func syntaxErrorsSayWhere() throws {
        let unclosed = try #require(syntaxError("apps:\n  - name: api\n    path: [apps\n"))
        #expect(unclosed.mark != nil)
        // A character YAML does not allow is found by libyaml's reader, which knows a byte offset only.
        let control = try #require(syntaxError("a: 1\nb: x\u{1}y\n"))
        #expect(control.problem.contains("control characters"))
        #expect(control.mark?.line == 2)
    }

    @Test func nestingIsBounded() throws {
        func nested(_ depth: Int) -> String { String(repeating: "[", count: depth) + String(repeating: "]", count: depth) }
        var level = 0
        var current: Node? = try compose(nested(Composer.maxDepth))
        while case .sequence(let list)? = current {
            level += 1
            current = list.first
        }
        #expect(level == Composer.maxDepth)
        // Far deeper (the 1 MiB an app.yaml may hold): an error, not the end of the stack.
        let error = try #require(syntaxError(nested(500_000)))
        #expect(error.problem.contains("nested more than"))
        #expect(error.mark == Mark(line: 1, column: Composer.maxDepth + 1))
    }

    @Test func aLongListIsBuiltInOnePass() throws {
        // 200,000 items (the size of the largest file Rewind reads): each
        // appended in place. A copy per item would not finish.
        let count = 200_000
        let root = try compose("[" + String(repeating: "x, ", count: count - 1) + "x]")
        guard case .sequence(let list) = root else {
            Issue.record("not a list")
            return
        }
        #expect(list.count == count)
        let map = try #require(try compose((0..<count).map { "k\($0): v" }.joined(separator: "\n")).mapping)
        #expect(map.count == count)
    }

    @Test(arguments: [
        ("42", 42), ("-7", -7), ("+3", 3), ("1_000", 1_000), ("0x1F", 31), ("0o17", 15), ("017", 15), ("0b101", 5),
        ("1:30", 90), ("-1:30", -90), ("0", 0),
    ])
    func wholeNumbers(text: String, value: Int) throws {
        #expect(try compose(text).int == value)
    }

    @Test(arguments: ["'42'", "4.5", "09", "0x", "1:x", "99999999999999999999", "999999999999999999:1", "abc"])
    func notWholeNumbers(text: String) throws {
        #expect(try compose(text).int == nil)
    }

    @Test func numbersAndNull() throws {
        #expect(try compose("0.05").float == 0.05)
        #expect(try compose("1e3").float == 1_000)
        #expect(try compose("1:30.5").float == 90.5)
        #expect(try compose(".inf").float == .infinity)
        #expect(try compose("-.Inf").float == -.infinity)
        #expect(try compose(".NaN").float?.isNaN == true)
        #expect(try compose("'1.5'").float == nil)
        for null in ["~", "null", "Null", "NULL"] { #expect(try compose("a: \(null)").mapping?.first?.value.isNull == true) }
        #expect(try compose("a:").mapping?.first?.value.isNull == true)
        #expect(try compose("a: 'null'").mapping?.first?.value.isNull == false)
        #expect(try compose("a: nil").mapping?.first?.value.isNull == false)
    }
}
