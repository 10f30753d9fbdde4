#if canImport(Glibc)
import Glibc
#endif

/// Writes to stdout and stderr.
enum Terminal {
    static func print(_ text: String) {
        write(1, Array((text + "\n").utf8))
    }

    /// Writes bytes to a file descriptor, all of them.
    static func write(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            offset += n
        }
    }

    static func error(_ text: String) {
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
