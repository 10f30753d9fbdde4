/// A duration written as in Prometheus and Kubernetes: `90s`, `5m`, `1h30m`, `250ms`.
public struct Duration: Sendable, Equatable, Codable, CustomStringConvertible {
    public let milliseconds: Int64

    /// Creates a duration of a number of milliseconds.
    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    /// Parses `1h30m`, `45s`, `250ms`; nil when the text is not a duration.
    public init?(parsing text: String) {
        let units: [(String, Int64)] = [("ms", 1), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("d", 86_400_000)]
        var rest = Substring(text.trimmingSpaces)
        var total: Int64 = 0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, digits.count <= 9, let value = Int64(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            guard let (unit, factor) = units.first(where: { rest.hasPrefix($0.0) }) else { return nil }
            rest = rest.dropFirst(unit.count)
            // "999999999d" repeated would overflow: not a duration either.
            let (part, overflowMultiplying) = value.multipliedReportingOverflow(by: factor)
            let (sum, overflowAdding) = total.addingReportingOverflow(part)
            guard !overflowMultiplying, !overflowAdding, sum <= Self.longest else { return nil }
            total = sum
        }
        milliseconds = total
    }

    /// The longest duration written (about 31 years): anything longer is a mistake.
    public static let longest: Int64 = 1_000_000_000_000

    /// Seconds, as a floating-point number.
    public var seconds: Double { Double(milliseconds) / 1000 }

    /// The largest unit that divides it (`90s`, `2h`), else hours, minutes,
    /// seconds and milliseconds together (`288h1ms`): always text that parses back.
    public var description: String {
        if milliseconds == 0 { return "0s" }
        if milliseconds % 3_600_000 == 0 { return "\(milliseconds / 3_600_000)h" }
        if milliseconds % 60_000 == 0, milliseconds / 60_000 <= 999_999_999 { return "\(milliseconds / 60_000)m" }
        if milliseconds % 1_000 == 0, milliseconds / 1_000 <= 999_999_999 { return "\(milliseconds / 1_000)s" }
        if milliseconds <= 999_999_999 { return "\(milliseconds)ms" }
        var text = ""
        var rest = milliseconds
        for (unit, size) in [("h", Int64(3_600_000)), ("m", 60_000), ("s", 1_000), ("ms", 1)] where rest >= size {
            text += "\(rest / size)\(unit)"
            rest %= size
        }
        return text
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s = s.dropFirst() }
        while let c = s.last, c.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
