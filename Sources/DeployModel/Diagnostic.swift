/// One finding about a deployment repository file: where it is, which field,
/// what is wrong, and what to do about it.
public struct Diagnostic: Sendable, Equatable, CustomStringConvertible, Codable {
    /// Errors refuse the desired state as a whole; warnings do not.
    public enum Severity: String, Sendable, Codable { case error, warning }

    public var severity: Severity
    /// Repository-relative path of the file, e.g. `apps/api/app.yaml`.
    public var file: String
    /// 1-based line, when known.
    public var line: Int?
    /// 1-based column, when known.
    public var column: Int?
    /// Dotted field path, e.g. `apps[2].dependsOn`; empty for the whole file.
    public var field: String
    /// What is wrong.
    public var message: String
    /// What to do about it.
    public var hint: String?

    /// Creates a diagnostic.
    public init(_ severity: Severity, file: String, line: Int? = nil, column: Int? = nil, field: String = "", message: String, hint: String? = nil) {
        self.severity = severity
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.message = message
        self.hint = hint
    }

    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        if let column { location += ":\(column)" }
        var text = "\(location): \(severity.rawValue): "
        if !field.isEmpty { text += "\(field): " }
        text += message
        if let hint { text += " (\(hint))" }
        return text
    }
}

/// A desired state that could not be loaded, with every finding.
public struct InvalidDesiredState: Error, CustomStringConvertible, Sendable {
    public let diagnostics: [Diagnostic]

    /// Wraps diagnostics; at least one is expected to be an error.
    public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }

    public var description: String {
        diagnostics.filter { $0.severity == .error }.map(\.description).joined(separator: "\n")
    }
}
