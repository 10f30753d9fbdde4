
/// The smallest edit of an app.yaml that moves it to another OCI artifact:
/// the `artifact.oci` value is replaced where it stands (and `version`, when
/// it names the old tag), and every other byte stays: comments, order,
/// quoting and blank lines. What `updates:` commits write.
public enum AppYAMLEdit {
    /// Why the file cannot be edited in place.
    public struct Refusal: Error, Sendable {
        public let message: String
    }

    /// The file with its artifact set to `new`, and the version label it
    /// now has when that changed. The old tag becomes the new tag in
    /// `version` when the label is the tag (with or without a leading `v`).
    public static func movingArtifact(in original: String, to new: OCIReference, file: String = AppSpec.fileName) throws(Refusal) -> (text: String, version: String?) {
        let bom = original.hasPrefix("\u{FEFF}")
        let text = bom ? String(original.dropFirst()) : original
        guard let root = (try? Node.compose(text)) ?? nil, let map = root.mapping,
              let artifact = value(map, "artifact")?.mapping, let oci = value(artifact, "oci"), let ociScalar = oci.scalar else {
            throw Refusal(message: "\(file) has no artifact.oci value to update")
        }
        guard case .success(let old) = OCIReference.parse(ociScalar.string) else {
            throw Refusal(message: "\(file): artifact.oci '\(ociScalar.string)' is not a valid reference")
        }
        var edits = [(mark: ociScalar.mark, scalar: ociScalar, replacement: new.description)]
        var newVersion: String?
        if let node = value(map, "version"), let scalar = node.scalar, let oldTag = old.tag, let newTag = new.tag,
           let label = Self.label(scalar.string, oldTag: oldTag, newTag: newTag) {
            edits.append((scalar.mark, scalar, label))
            newVersion = label
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { Array($0.unicodeScalars) }
        // Right to left within a line, bottom to top across lines: earlier marks stay valid.
        for edit in edits.sorted(by: { ($0.mark.line, $0.mark.column) > ($1.mark.line, $1.mark.column) }) {
            try replace(in: &lines, at: edit.mark, scalar: edit.scalar, with: edit.replacement, file: file)
        }
        var result = lines.map { String(String.UnicodeScalarView($0)) }.joined(separator: "\n")
        if bom { result = "\u{FEFF}" + result }
        // The edit is checked by the parser it feeds: the same file, moved.
        let parsed = AppSpec.parse(result, file: file)
        guard case .oci(let written)? = parsed.spec?.artifact?.source, written == new else {
            throw Refusal(message: "\(file): the edited file does not parse to the new artifact; nothing was written")
        }
        return (result, newVersion)
    }

    /// The value under a text key.
    private static func value(_ map: Node.Mapping, _ key: String) -> Node? {
        map.first { $0.key.string == key }?.value
    }

    /// The version label after a move from `oldTag` to `newTag`, or nil
    /// when the label is not the tag (a label of its own stays).
    static func label(_ label: String, oldTag: String, newTag: String) -> String? {
        if label == oldTag { return newTag }
        if "v" + label == oldTag, newTag.hasPrefix("v") { return String(newTag.dropFirst()) }
        return nil
    }

    /// Replaces a one-line plain or quoted scalar that starts at `mark`.
    private static func replace(in lines: inout [[Unicode.Scalar]], at mark: Mark, scalar: Node.Scalar, with replacement: String, file: String) throws(Refusal) {
        let where_ = "\(file):\(mark.line):\(mark.column)"
        guard mark.line >= 1, mark.line <= lines.count else { throw Refusal(message: "\(where_): the value is not where the parser put it") }
        let line = lines[mark.line - 1]
        let start = mark.column - 1
        let value = Array(scalar.string.unicodeScalars)
        let quote: [Unicode.Scalar]
        switch scalar.style {
        case .plain: quote = []
        case .singleQuoted: quote = ["'"]
        case .doubleQuoted: quote = ["\""]
        default: throw Refusal(message: "\(where_): write this value on one line (plain or quoted) so that Rewind can update it in place")
        }
        let expected = quote + value + quote
        guard start >= 0, start + expected.count <= line.count, Array(line[start..<(start + expected.count)]) == expected else {
            throw Refusal(message: "\(where_): write this value on one line without escapes so that Rewind can update it in place")
        }
        lines[mark.line - 1] = Array(line[..<start]) + quote + Array(replacement.unicodeScalars) + quote + Array(line[(start + expected.count)...])
    }
}
