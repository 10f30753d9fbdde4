/// Reads typed fields out of a composed YAML document, recording a
/// diagnostic (with line and column) for every field that is wrong.
final class YAMLReader {
    let file: String
    private(set) var diagnostics: [Diagnostic] = []

    init(file: String) { self.file = file }

    /// Composes `text`; nil (with a diagnostic) when it is not valid YAML.
    func compose(_ original: String) -> Node? {
        // Editors on Windows write a byte-order mark; it is not part of the YAML.
        let text = original.hasPrefix("\u{FEFF}") ? String(original.dropFirst()) : original
        do {
            guard let node = try Node.compose(text) else {
                error(nil, field: "", "the file is empty", hint: "see deploy-repo-template/ for an example")
                return nil
            }
            return node
        } catch {
            record(error, lastLine: Self.lastLine(of: text))
        }
        return nil
    }

    /// The number of the last line that has text (a final newline ends
    /// that line; it does not start another).
    static func lastLine(of text: String) -> Int {
        var lines = 1
        var pending = false
        for byte in text.utf8 {
            if pending { lines += 1; pending = false }
            if byte == UInt8(ascii: "\n") { pending = true }
        }
        return lines
    }

    private func record(_ syntax: YAMLSyntaxError, lastLine: Int) {
        switch syntax.kind {
        case .duplicateKeys(let keys):
            diagnostics.append(Diagnostic(.error, file: file, line: syntax.mark?.line, column: syntax.mark?.column, field: keys.joined(separator: ", "), message: "key appears more than once", hint: "keep one of them"))
        case .malformed:
            // The parser finds a problem at the end of the input on the line
            // after the last one; report it where the file ends.
            let (line, column) = syntax.mark.map { $0.line > lastLine ? (lastLine, nil) : ($0.line, Optional($0.column)) } ?? (nil, nil)
            diagnostics.append(Diagnostic(.error, file: file, line: line, column: column, message: "malformed YAML: \(syntax.problem)", hint: "fix the syntax at this line"))
        }
    }

    func error(_ node: Node?, field: String, _ message: String, hint: String? = nil) {
        diagnostics.append(Diagnostic(.error, file: file, line: node?.mark.line, column: node?.mark.column, field: field, message: message, hint: hint))
    }

    func warning(_ node: Node?, field: String, _ message: String, hint: String? = nil) {
        diagnostics.append(Diagnostic(.warning, file: file, line: node?.mark.line, column: node?.mark.column, field: field, message: message, hint: hint))
    }

    /// The node as a mapping, or an error naming the field.
    func mapping(_ node: Node, field: String) -> Node.Mapping? {
        if case .mapping(let map) = node { return map }
        error(node, field: field, "expected a mapping of keys to values")
        return nil
    }

    /// The value under `key`, with an error when required and absent.
    func value(_ map: Node.Mapping, _ key: String, parent: String, required: Bool = false) -> Node? {
        for (k, v) in map where k.string == key { return v }
        if required {
            error(.mapping(map), field: join(parent, key), "required field is missing")
        }
        return nil
    }

    func string(_ map: Node.Mapping, _ key: String, parent: String, required: Bool = false) -> String? {
        guard let node = value(map, key, parent: parent, required: required) else { return nil }
        guard case .scalar(let scalar) = node, !node.isNull else {
            error(node, field: join(parent, key), "expected a text value")
            return nil
        }
        if required && scalar.string.isEmpty {
            error(node, field: join(parent, key), "must not be empty")
            return nil
        }
        return scalar.string
    }

    func int(_ map: Node.Mapping, _ key: String, parent: String, range: ClosedRange<Int>) -> Int? {
        guard let node = value(map, key, parent: parent) else { return nil }
        guard let number = node.int, range.contains(number) else {
            error(node, field: join(parent, key), "expected a whole number from \(range.lowerBound) to \(range.upperBound)")
            return nil
        }
        return number
    }

    func double(_ map: Node.Mapping, _ key: String, parent: String, required: Bool = false) -> Double? {
        guard let node = value(map, key, parent: parent, required: required) else { return nil }
        guard let number = node.float ?? node.int.map(Double.init) else {
            error(node, field: join(parent, key), "expected a number")
            return nil
        }
        guard number.isFinite else {
            error(node, field: join(parent, key), "expected a finite number, not \(node.string ?? "\(number)")", hint: "write a number such as 0.05")
            return nil
        }
        return number
    }

    func bool(_ map: Node.Mapping, _ key: String, parent: String) -> Bool? {
        guard let node = value(map, key, parent: parent) else { return nil }
        guard case .scalar(let scalar) = node, scalar.style == .plain, let flag = Self.booleans[scalar.string.lowercased()] else {
            error(node, field: join(parent, key), "expected true or false")
            return nil
        }
        return flag
    }

    /// YAML 1.1's booleans, plain (a quoted "true" is text).
    static let booleans = ["true": true, "yes": true, "on": true, "false": false, "no": false, "off": false]

    func duration(_ map: Node.Mapping, _ key: String, parent: String) -> Duration? {
        guard let node = value(map, key, parent: parent) else { return nil }
        guard let text = node.string, let duration = Duration(parsing: text) else {
            error(node, field: join(parent, key), "expected a duration such as 30s, 5m or 1h")
            return nil
        }
        return duration
    }

    func stringList(_ map: Node.Mapping, _ key: String, parent: String) -> [String]? {
        guard let node = value(map, key, parent: parent) else { return nil }
        if node.isNull { return [] }
        guard case .sequence(let seq) = node else {
            error(node, field: join(parent, key), "expected a list of text values")
            return nil
        }
        var result: [String] = []
        for (i, item) in seq.enumerated() {
            guard case .scalar(let scalar) = item else {
                error(item, field: "\(join(parent, key))[\(i)]", "expected a text value")
                continue
            }
            result.append(scalar.string)
        }
        return result
    }

    func stringMap(_ map: Node.Mapping, _ key: String, parent: String) -> [String: String]? {
        guard let node = value(map, key, parent: parent) else { return nil }
        guard let inner = mapping(node, field: join(parent, key)) else { return nil }
        var result: [String: String] = [:]
        for (k, v) in inner {
            guard let name = k.string, case .scalar(let scalar) = v else {
                error(v, field: join(parent, key), "expected text keys and values")
                continue
            }
            result[name] = scalar.string
        }
        return result
    }

    /// Warns about keys not in `known`, naming the field and the allowed keys.
    func warnUnknown(_ map: Node.Mapping, known: [String], parent: String) {
        for (k, _) in map {
            let name = k.string ?? "?"
            if !known.contains(name) {
                let guess = Spelling.nearest(name, in: known).map { "did you mean '\($0)'? " } ?? ""
                warning(k, field: join(parent, name), "unknown field, ignored", hint: "\(guess)allowed here: \(known.joined(separator: ", "))")
            }
        }
    }

    func join(_ parent: String, _ key: String) -> String {
        parent.isEmpty ? key : "\(parent).\(key)"
    }
}

/// Guesses for misspelt names: fields, commands.
public enum Spelling {
    /// The known name closest to a misspelt one (`helth` → `health`): at
    /// most two edits away, and fewer than half its letters.
    public static func nearest(_ name: String, in known: [String]) -> String? {
        let lowered = name.lowercased()
        let scored = known.map { ($0, editDistance(lowered, $0.lowercased())) }.filter { $0.1 <= 2 && $0.1 * 2 < max(name.count, 2) }
        return scored.min { $0.1 < $1.1 }?.0
    }

    /// Levenshtein distance, with a swap of two neighbours counted as one edit.
    public static func editDistance(_ a: String, _ b: String) -> Int {
        let x = Array(a), y = Array(b)
        if x.isEmpty || y.isEmpty { return max(x.count, y.count) }
        var d = [[Int]](repeating: [Int](repeating: 0, count: y.count + 1), count: x.count + 1)
        for i in 0...x.count { d[i][0] = i }
        for j in 0...y.count { d[0][j] = j }
        for i in 1...x.count {
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
            }
        }
        return d[x.count][y.count]
    }
}
