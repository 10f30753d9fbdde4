import CYAML

/// A place in a YAML file: line and column from 1, the column counted in
/// characters (Unicode scalars), as libyaml counts them.
struct Mark: Equatable, Sendable {
    let line: Int
    let column: Int

    init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    init(_ mark: yaml_mark_t) { self.init(line: Int(mark.line) + 1, column: Int(mark.column) + 1) }

    /// Where the byte at `offset` of `text` (UTF-8) is.
    init(offset: Int, in text: UnsafeBufferPointer<UInt8>) {
        var line = 1
        var column = 1
        for byte in text.prefix(offset) {
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1  // the first byte of a character
            }
        }
        self.init(line: line, column: column)
    }
}

/// A composed YAML node: what the readers of rewind.yaml, app.yaml, the
/// pins and the notification routes walk. Every scalar is text: Rewind
/// converts values itself (`int`, `float`, `isNull`), field by field, so no
/// implicit-tag rules run. An alias is the node its anchor names.
enum Node: Sendable {
    case scalar(Scalar)
    case mapping(Mapping)
    case sequence(List)

    struct Scalar: Sendable {
        enum Style: Sendable { case plain, singleQuoted, doubleQuoted, literal, folded }
        let string: String
        let style: Style
        let mark: Mark
    }

    /// Key-value pairs in the file's order.
    struct Mapping: RandomAccessCollection, Sendable {
        let pairs: [(key: Node, value: Node)]
        let mark: Mark
        var startIndex: Int { pairs.startIndex }
        var endIndex: Int { pairs.endIndex }
        subscript(position: Int) -> (key: Node, value: Node) { pairs[position] }
    }

    struct List: RandomAccessCollection, Sendable {
        let items: [Node]
        let mark: Mark
        var startIndex: Int { items.startIndex }
        var endIndex: Int { items.endIndex }
        subscript(position: Int) -> Node { items[position] }
    }

    var mark: Mark {
        switch self {
        case .scalar(let scalar): scalar.mark
        case .mapping(let mapping): mapping.mark
        case .sequence(let list): list.mark
        }
    }

    var scalar: Scalar? {
        if case .scalar(let scalar) = self { return scalar }
        return nil
    }

    var mapping: Mapping? {
        if case .mapping(let mapping) = self { return mapping }
        return nil
    }

    /// The scalar's text; nil for a mapping or a list.
    var string: String? { scalar?.string }
}

/// Why a text is not one YAML document.
struct YAMLSyntaxError: Error, Sendable {
    enum Kind: Sendable {
        /// libyaml's message (`problem`), where it found it.
        case malformed
        /// A mapping has these keys more than once (`keys`, sorted).
        case duplicateKeys([String])
    }
    let kind: Kind
    let problem: String
    /// Nil when libyaml could not say where.
    let mark: Mark?
}

extension Node {
    /// The one document of `text`, or nil when it has none (empty, or only
    /// comments). Throws `YAMLSyntaxError` for text that is not YAML, a
    /// second document, an alias with no anchor, or a key repeated in a
    /// mapping.
    static func compose(_ text: String) throws(YAMLSyntaxError) -> Node? {
        var bytes = Array(text.utf8)
        let count = bytes.count
        // libyaml wants an address even for no input (an empty array has none); the NUL is not read.
        bytes.append(0)
        return try bytes.withUnsafeBufferPointer { (buffer) throws(YAMLSyntaxError) -> Node? in
            var composer = Composer()
            return try composer.run(UnsafeBufferPointer(rebasing: buffer[..<count]))
        }
    }
}

/// Builds nodes from libyaml's events with a stack of open collections
/// (no recursion), at most `maxDepth` deep.
struct Composer {
    /// A list or mapping whose end has not come yet. A mapping's keys and
    /// values alternate in `items`. Appended in place: each node is copied
    /// once, however long the collection.
    private struct Open {
        let isMapping: Bool
        let mark: Mark
        let anchor: String?
        var items: [Node] = []
    }

    private var open: [Open] = []
    private var anchors: [String: Node] = [:]
    private var root: Node?
    private var documents = 0

    mutating func run(_ input: UnsafeBufferPointer<UInt8>) throws(YAMLSyntaxError) -> Node? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw YAMLSyntaxError(kind: .malformed, problem: "out of memory", mark: nil)
        }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
        yaml_parser_set_input_string(&parser, input.baseAddress, input.count)
        var event = yaml_event_t()
        while true {
            guard yaml_parser_parse(&parser, &event) == 1 else { throw Self.error(of: parser, in: input) }
            defer { yaml_event_delete(&event) }
            if event.type == YAML_STREAM_END_EVENT { return root }
            try take(event)
        }
    }

    private mutating func take(_ event: yaml_event_t) throws(YAMLSyntaxError) {
        let mark = Mark(event.start_mark)
        switch event.type {
        case YAML_DOCUMENT_START_EVENT:
            documents += 1
            if documents > 1 {
                throw YAMLSyntaxError(kind: .malformed, problem: "but found another document", mark: mark)
            }
        case YAML_SCALAR_EVENT:
            let data = event.data.scalar
            let scalar = Node.Scalar(string: Self.text(data.value, count: data.length), style: Self.style(data.style), mark: mark)
            finish(.scalar(scalar), anchor: Self.name(data.anchor))
        case YAML_ALIAS_EVENT:
            guard let name = Self.name(event.data.alias.anchor), let node = anchors[name] else {
                throw YAMLSyntaxError(kind: .malformed, problem: "found undefined alias", mark: mark)
            }
            finish(node, anchor: nil)
        case YAML_SEQUENCE_START_EVENT:
            try checkDepth(at: mark)
            open.append(Open(isMapping: false, mark: mark, anchor: Self.name(event.data.sequence_start.anchor)))
        case YAML_MAPPING_START_EVENT:
            try checkDepth(at: mark)
            open.append(Open(isMapping: true, mark: mark, anchor: Self.name(event.data.mapping_start.anchor)))
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            // libyaml pairs every end with its start.
            guard let done = open.popLast() else { return }
            if done.isMapping {
                let pairs = stride(from: 0, to: done.items.count - 1, by: 2).map { (key: done.items[$0], value: done.items[$0 + 1]) }
                try Self.checkKeys(pairs)
                finish(.mapping(Node.Mapping(pairs: pairs, mark: done.mark)), anchor: done.anchor)
            } else {
                finish(.sequence(Node.List(items: done.items, mark: done.mark)), anchor: done.anchor)
            }
        default:
            break  // stream start, document end
        }
    }

    /// How deep lists and mappings may nest. Rewind's files nest a few
    /// levels; a bound keeps every walk of a node (its release included,
    /// which recurses) far from the end of a thread's stack.
    static let maxDepth = 100

    private func checkDepth(at mark: Mark) throws(YAMLSyntaxError) {
        guard open.count >= Self.maxDepth else { return }
        throw YAMLSyntaxError(kind: .malformed, problem: "lists and mappings nested more than \(Self.maxDepth) deep", mark: mark)
    }

    /// A whole node: into the collection open around it, or the root.
    private mutating func finish(_ node: Node, anchor: String?) {
        if let anchor { anchors[anchor] = node }
        if open.isEmpty {
            root = node
        } else {
            open[open.count - 1].items.append(node)
        }
    }

    /// A text key may appear once in a mapping. Reported at the first of
    /// the repeated keys (in sorted order), where it first appears.
    private static func checkKeys(_ pairs: [(key: Node, value: Node)]) throws(YAMLSyntaxError) {
        var seen: [String: Mark] = [:]
        var repeated: [String: Mark] = [:]
        for (key, _) in pairs {
            guard let name = key.string else { continue }
            if let first = seen[name] { repeated[name] = first } else { seen[name] = key.mark }
        }
        guard let firstName = repeated.keys.min() else { return }
        throw YAMLSyntaxError(kind: .duplicateKeys(repeated.keys.sorted()), problem: "key appears more than once", mark: repeated[firstName])
    }

    private static func error(of parser: yaml_parser_t, in input: UnsafeBufferPointer<UInt8>) -> YAMLSyntaxError {
        let problem = parser.problem.map { String(cString: $0) } ?? "cannot parse YAML"
        switch parser.error {
        case YAML_SCANNER_ERROR, YAML_PARSER_ERROR, YAML_COMPOSER_ERROR:
            return YAMLSyntaxError(kind: .malformed, problem: problem, mark: Mark(parser.problem_mark))
        case YAML_READER_ERROR:
            // A character YAML does not allow (a control character, say): libyaml knows only its byte offset.
            return YAMLSyntaxError(kind: .malformed, problem: problem, mark: Mark(offset: parser.problem_offset, in: input))
        default:
            return YAMLSyntaxError(kind: .malformed, problem: problem, mark: nil)
        }
    }

    private static func text(_ bytes: UnsafeMutablePointer<yaml_char_t>?, count: Int) -> String {
        guard let bytes else { return "" }
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    private static func name(_ anchor: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        anchor.map { String(cString: $0) }
    }

    private static func style(_ style: yaml_scalar_style_t) -> Node.Scalar.Style {
        switch style {
        case YAML_SINGLE_QUOTED_SCALAR_STYLE: .singleQuoted
        case YAML_DOUBLE_QUOTED_SCALAR_STYLE: .doubleQuoted
        case YAML_LITERAL_SCALAR_STYLE: .literal
        case YAML_FOLDED_SCALAR_STYLE: .folded
        default: .plain
        }
    }
}

/// Values out of plain scalars, as YAML 1.1 writes them (what Yams read
/// before). A quoted scalar is always text.
extension Node {
    /// `~`, `null`, `Null`, `NULL`, or nothing at all.
    var isNull: Bool {
        guard let scalar, scalar.style == .plain else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    /// A whole number: decimal, `0x` hexadecimal, `0b` binary, `0o` or `0`
    /// octal, or base 60 (`1:30` is 90), with `_` between digits allowed.
    var int: Int? {
        guard let scalar, scalar.style == .plain else { return nil }
        let text = scalar.string.filter { $0 != "_" }
        if text == "0" { return 0 }
        let negative = text.hasPrefix("-")
        let digits = text.dropFirst(negative || text.hasPrefix("+") ? 1 : 0)
        for (prefix, radix) in [("0x", 16), ("0b", 2), ("0o", 8), ("0", 8)] where digits.hasPrefix(prefix) {
            return Int((negative ? "-" : "") + digits.dropFirst(prefix.count), radix: radix)
        }
        guard digits.contains(":") else { return Int(text) }
        var value = 0
        for part in digits.split(separator: ":", omittingEmptySubsequences: false) {
            guard let digit = Int(part) else { return nil }
            let (shifted, over) = value.multipliedReportingOverflow(by: 60)
            let (sum, overAgain) = shifted.addingReportingOverflow(digit)
            if over || overAgain { return nil }
            value = sum
        }
        return negative ? -value : value
    }

    /// A number: what `int` reads, decimals and exponents, and `.inf`,
    /// `-.inf`, `.nan`.
    var float: Double? {
        guard let scalar, scalar.style == .plain else { return nil }
        switch scalar.string.lowercased() {
        case ".inf", "+.inf": return .infinity
        case "-.inf": return -.infinity
        case ".nan": return .nan
        default: break
        }
        let text = scalar.string.filter { $0 != "_" }
        guard text.contains(":") else { return Double(text) }
        let negative = text.hasPrefix("-")
        var value = 0.0
        for part in text.dropFirst(negative || text.hasPrefix("+") ? 1 : 0).split(separator: ":", omittingEmptySubsequences: false) {
            guard let digit = Double(part) else { return nil }
            value = value * 60 + digit
        }
        return negative ? -value : value
    }
}
