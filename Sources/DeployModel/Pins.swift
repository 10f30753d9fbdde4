import SystemSupport

/// A hold on one app, written by `rewind pin`.
public struct Pin: Sendable, Equatable, Codable {
    /// The git tree id the app is held at.
    public var tree: String
    /// The commit whose state was pinned.
    public var target: String
    public var reason: String?

    /// Creates a pin.
    public init(tree: String, target: String, reason: String?) {
        self.tree = tree
        self.target = target
        self.reason = reason
    }
}

/// `rewind.pins.yaml` at the repository root: the apps held by a pin.
/// Absent file means no pins.
public struct PinSet: Sendable, Equatable {
    public static let fileName = "rewind.pins.yaml"
    public var pins: [String: Pin] = [:]
    /// The line of each app's entry in the file it was parsed from (not
    /// part of equality: the same holds written elsewhere are the same).
    public var lines: [String: Int] = [:]

    /// An empty set.
    public init() {}

    public static func == (a: PinSet, b: PinSet) -> Bool { a.pins == b.pins }

    /// Parses the pins file.
    public static func parse(_ text: String, file: String = fileName) -> (pins: PinSet?, diagnostics: [Diagnostic]) {
        let reader = YAMLReader(file: file)
        guard let root = reader.compose(text), let map = reader.mapping(root, field: "") else { return (nil, reader.diagnostics) }
        reader.warnUnknown(map, known: ["pins"], parent: "")
        var set = PinSet()
        if let node = reader.value(map, "pins", parent: ""), !node.isNull, let pins = reader.mapping(node, field: "pins") {
            for (key, value) in pins {
                let app = key.string ?? "?"
                let field = "pins.\(app)"
                // A pin holds an app of rewind.yaml; any other key could not be written back.
                guard RepoConfig.isValidAppName(app) else {
                    reader.error(key, field: field, "'\(Bounded.printable(app))' is not a valid app name", hint: RepoConfig.appNameHint)
                    continue
                }
                guard let p = reader.mapping(value, field: field) else { continue }
                reader.warnUnknown(p, known: ["tree", "target", "reason"], parent: field)
                let tree = reader.string(p, "tree", parent: field, required: true)
                let target = reader.string(p, "target", parent: field, required: true)
                for (name, id) in [("tree", tree), ("target", target)] {
                    if let id, id.utf8.count != 40 { reader.error(value, field: "\(field).\(name)", "expected a full 40-digit object id") }
                }
                if let tree, let target {
                    set.pins[app] = Pin(tree: tree, target: target, reason: reader.string(p, "reason", parent: field))
                    set.lines[app] = key.mark.line
                }
            }
        }
        if reader.diagnostics.contains(where: { $0.severity == .error }) { return (nil, reader.diagnostics) }
        return (set, reader.diagnostics)
    }

    /// The file's text, apps in name order, so that the same pins always
    /// produce the same blob.
    public func serialised() -> String {
        var text = "# Apps held by `rewind pin`. Remove a hold with `rewind unpin APP`.\n"
        guard !pins.isEmpty else { return text + "pins: {}\n" }
        text += "pins:\n"
        for name in pins.keys.sorted() {
            guard let pin = pins[name] else { continue }
            text += "  \(name):\n    tree: \(pin.tree)\n    target: \(pin.target)\n"
            if let reason = pin.reason { text += "    reason: \(yamlQuoted(reason))\n" }
        }
        return text
    }

    private func yamlQuoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                // Not printable in YAML, or a line break to it (NEL, U+2028, U+2029): escaped, or it would not read back.
                let v = scalar.value
                if v < 0x20 || (0x7F...0x9F).contains(v) {
                    out += "\\x" + String(v, radix: 16).leftPadded(2)
                } else if v == 0x2028 || v == 0x2029 || v == 0xFEFF || v == 0xFFFE || v == 0xFFFF {
                    out += "\\u" + String(v, radix: 16).leftPadded(4)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
