import SystemSupport

/// A five-field cron schedule (`minute hour day-of-month month
/// day-of-week`): `*`, numbers, ranges `a-b`, lists `a,b` and steps `*/n`
/// or `a-b/n`. Day of week 0 or 7 is Sunday. When both day fields are
/// restricted, either matching is enough (as cron does).
public struct CronSchedule: Sendable, Equatable, Codable, CustomStringConvertible {
    public let text: String
    let minutes: Set<Int>, hours: Set<Int>, days: Set<Int>, months: Set<Int>, weekdays: Set<Int>
    let daysRestricted: Bool, weekdaysRestricted: Bool

    /// Parses `text`; throws a message saying which field is wrong.
    public init(parsing text: String) throws(CronError) {
        let fields = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard fields.count == 5 else { throw CronError("expected 5 fields (minute hour day-of-month month day-of-week), found \(fields.count)") }
        self.text = fields.joined(separator: " ")
        minutes = try Self.field(fields[0], "minute", 0...59)
        hours = try Self.field(fields[1], "hour", 0...23)
        days = try Self.field(fields[2], "day-of-month", 1...31)
        months = try Self.field(fields[3], "month", 1...12)
        weekdays = Set(try Self.field(fields[4], "day-of-week", 0...7).map { $0 % 7 })
        daysRestricted = fields[2] != "*"
        weekdaysRestricted = fields[4] != "*"
    }

    private static func field(_ text: String, _ name: String, _ range: ClosedRange<Int>) throws(CronError) -> Set<Int> {
        var values: Set<Int> = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw CronError("\(name) '\(part)': more than one /") }
            var step = 1
            if pieces.count == 2 {
                guard let n = Int(pieces[1]), n >= 1, n <= range.upperBound else { throw CronError("\(name) '\(part)': the step must be a number from 1 to \(range.upperBound)") }
                step = n
            }
            let span: ClosedRange<Int>
            if pieces[0] == "*" {
                span = range
            } else if let dash = pieces[0].firstIndex(of: "-") {
                guard let low = Int(pieces[0][..<dash]), let high = Int(pieces[0][pieces[0].index(after: dash)...]), low <= high else {
                    throw CronError("\(name) '\(part)': expected a range such as 1-5")
                }
                span = low...high
            } else {
                guard let value = Int(pieces[0]) else { throw CronError("\(name) '\(part)': expected *, a number, a range or a list") }
                span = value...(pieces.count == 2 ? range.upperBound : value)
            }
            guard range.contains(span.lowerBound), range.contains(span.upperBound) else {
                throw CronError("\(name) '\(part)': out of range \(range.lowerBound)-\(range.upperBound)")
            }
            values.formUnion(stride(from: span.lowerBound, through: span.upperBound, by: step))
        }
        return values
    }

    /// Whether the schedule fires at this local civil minute (weekday 0 = Sunday).
    public func matches(minute: Int, hour: Int, day: Int, month: Int, weekday: Int) -> Bool {
        guard minutes.contains(minute), hours.contains(hour), months.contains(month) else { return false }
        let dayMatches = days.contains(day), weekdayMatches = weekdays.contains(weekday)
        if daysRestricted && weekdaysRestricted { return dayMatches || weekdayMatches }
        return dayMatches && weekdayMatches
    }

    public var description: String { text }
}

public struct CronError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A change window of rewind.yaml's `windows:`: from each time `schedule`
/// fires, in `timeZone`, for `duration`. A `deny` window holds new deploy
/// commits of its apps (all when `apps` is empty); an `allow` window lets
/// them through only inside it. Rollbacks pass unless `rollbacks: deny`.
public struct ChangeWindow: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable, CaseIterable { case deny, allow }

    public var kind: Kind
    public var schedule: CronSchedule
    public var duration: Duration
    public var timeZone: String
    public var apps: [String]
    /// Rollback commits (and pins) are held too.
    public var holdsRollbacks: Bool

    public init(kind: Kind, schedule: CronSchedule, duration: Duration, timeZone: String = "UTC", apps: [String] = [], holdsRollbacks: Bool = false) {
        self.kind = kind
        self.schedule = schedule
        self.duration = duration
        self.timeZone = timeZone
        self.apps = apps
        self.holdsRollbacks = holdsRollbacks
    }

    public func applies(to app: String) -> Bool { apps.isEmpty || apps.contains(app) }

    /// The longest window: a freeze is looked for this far back.
    public static let longest = Duration(milliseconds: 31 * 86_400_000)

    public var summary: String { "\(kind.rawValue) window '\(schedule)' \(timeZone) for \(duration)" }
}

extension RepoConfig {
    /// The trailer a human adds to a deploy commit to let it through a freeze.
    public static let overrideTrailer = "Rewind-Override"

    static func parseWindows(_ reader: YAMLReader, _ map: Node.Mapping, apps: [AppRef]) -> [ChangeWindow] {
        guard let node = reader.value(map, "windows", parent: "") else { return [] }
        guard case .sequence(let list) = node else {
            reader.error(node, field: "windows", "expected a list of windows", hint: "each has kind (deny or allow), schedule (cron), duration and optionally timeZone, apps, rollbacks")
            return []
        }
        var windows: [ChangeWindow] = []
        for (i, item) in list.enumerated() {
            let field = "windows[\(i)]"
            guard let window = reader.mapping(item, field: field) else { continue }
            reader.warnUnknown(window, known: ["kind", "schedule", "duration", "timeZone", "apps", "rollbacks"], parent: field)
            let kindText = reader.string(window, "kind", parent: field, required: true)
            let kind = kindText.flatMap(ChangeWindow.Kind.init(rawValue:))
            if let kindText, kind == nil {
                reader.error(reader.value(window, "kind", parent: field), field: "\(field).kind", "unknown kind '\(kindText)'", hint: "use deny or allow")
            }
            var schedule: CronSchedule?
            if let text = reader.string(window, "schedule", parent: field, required: true) {
                do {
                    schedule = try CronSchedule(parsing: text)
                } catch {
                    reader.error(reader.value(window, "schedule", parent: field), field: "\(field).schedule", "'\(text)' is not a cron schedule: \(error)",
                                 hint: "five fields: minute hour day-of-month month day-of-week, for example \"0 18 * * 5\" (Fridays at 18:00)")
                }
            }
            let duration = reader.duration(window, "duration", parent: field)
            if reader.value(window, "duration", parent: field, required: true) != nil, let duration,
               duration.milliseconds < 60_000 || duration.milliseconds > ChangeWindow.longest.milliseconds {
                reader.error(reader.value(window, "duration", parent: field), field: "\(field).duration", "must be from 1m to 31d", hint: "for example 2h or 3d")
            }
            let zone = reader.string(window, "timeZone", parent: field) ?? "UTC"
            if !Self.timeZoneExists(zone) {
                reader.error(reader.value(window, "timeZone", parent: field), field: "\(field).timeZone", "unknown time zone '\(zone)'",
                             hint: "use a name of the tz database, such as UTC, Europe/Berlin or America/New_York")
            }
            let names = reader.stringList(window, "apps", parent: field) ?? []
            for name in names where !apps.contains(where: { $0.name == name }) {
                reader.error(reader.value(window, "apps", parent: field), field: "\(field).apps", "unknown app '\(name)'", hint: "name apps of apps:, or leave apps out for all of them")
            }
            let rollbacks = reader.string(window, "rollbacks", parent: field) ?? "allow"
            if !["allow", "deny"].contains(rollbacks) {
                reader.error(reader.value(window, "rollbacks", parent: field), field: "\(field).rollbacks", "unknown choice '\(rollbacks)'",
                             hint: "allow (default: a rollback is the way out of an incident) or deny")
            }
            guard let kind, let schedule, let duration else { continue }
            windows.append(ChangeWindow(kind: kind, schedule: schedule, duration: duration, timeZone: zone, apps: names, holdsRollbacks: rollbacks == "deny"))
        }
        return windows
    }

    /// A zone of the system's tz database that `ZoneInfo` reads (the same
    /// loader the windows are evaluated with).
    static func timeZoneExists(_ name: String) -> Bool { ZoneInfo.load(name) != nil }
}
