#if canImport(Glibc)
import Glibc
#endif

/// Writes to stdout and stderr.
package enum Terminal {
    package static func print(_ text: String) {
        write(1, Array((text + "\n").utf8))
    }

    /// Writes bytes to a file descriptor, all of them.
    package static func write(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            offset += n
        }
    }

    package static func error(_ text: String) {
        write(2, Array((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }
}

/// Lays out rows as aligned columns.
enum Table {
    static func render(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                i == cells.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
            }.joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}

/// Colour on a terminal; none when stdout is not one, under `NO_COLOR`
/// (any value, https://no-color.org), or with `TERM=dumb`.
enum Colour {
    static let enabled: Bool = {
        guard isatty(1) == 1, getenv("NO_COLOR") == nil else { return false }
        return getenv("TERM").map { String(cString: $0) != "dumb" } ?? false
    }()

    static func paint(_ text: String, _ code: String) -> String { enabled ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text }

    /// A unified diff with added lines green, removed red, hunks cyan.
    static func diff(_ patch: String) -> String {
        guard enabled else { return patch }
        return patch.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            if line.hasPrefix("+++") || line.hasPrefix("---") || line.hasPrefix("diff ") || line.hasPrefix("index ") { return paint(String(line), "1") }
            if line.hasPrefix("+") { return paint(String(line), "32") }
            if line.hasPrefix("-") { return paint(String(line), "31") }
            if line.hasPrefix("@@") { return paint(String(line), "36") }
            return String(line)
        }.joined(separator: "\n")
    }
}

extension String {
    /// Without the newlines at its end.
    var withoutTrailingNewlines: String {
        var text = Substring(self)
        while text.last == "\n" { text = text.dropLast() }
        return String(text)
    }
}
