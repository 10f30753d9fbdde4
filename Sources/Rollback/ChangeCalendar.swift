import DeployModel
import SystemSupport

/// rewind.yaml's change windows at one instant: which deny windows are
/// open (and until when), and whether each allow window is. Built once per
/// pass (a window is looked for up to 31 days back, minute by minute), then
/// asked per app.
public struct ChangeCalendar: Sendable {
    /// Wall-clock ms.
    public let now: Int64
    let windows: [ChangeWindow]
    /// For each window, when its current opening ends (nil: not open now).
    let openUntil: [Int64?]
    /// For each allow window that is closed, when it next opens (nil: not within 8 days, or not needed).
    let nextOpen: [Int64?]

    public init(_ windows: [ChangeWindow], at now: Int64) {
        self.now = now
        self.windows = windows
        var zones: [String: ZoneInfo] = [:]
        for window in windows where zones[window.timeZone] == nil { zones[window.timeZone] = ZoneInfo.load(window.timeZone) ?? .utc }
        let open = windows.map { Self.openUntil($0, zone: zones[$0.timeZone] ?? .utc, at: now) }
        openUntil = open
        // Once here, not per app: a fleet of apps held outside an allow window would each search a week of minutes.
        nextOpen = zip(windows, open).map { window, open in
            window.kind == .allow && open == nil ? Self.nextOpening(window, zone: zones[window.timeZone] ?? .utc, after: now) : nil
        }
    }

    /// Why a deploy of `app` (a rollback or pin with `rollback`) does not
    /// apply now, or nil: it may. `overridden`: the commit carries
    /// `Rewind-Override: freeze`.
    public func hold(app: String, rollback: Bool, overridden: Bool = false) -> String? {
        guard !overridden else { return nil }
        let relevant = windows.indices.filter { windows[$0].applies(to: app) && (!rollback || windows[$0].holdsRollbacks) }
        let denying = relevant.filter { windows[$0].kind == .deny }.compactMap { index in openUntil[index].map { (index, $0) } }
        if let (index, until) = denying.max(by: { $0.1 < $1.1 }) {
            return "held by freeze until \(Clock.iso8601UTC(milliseconds: until)) (\(windows[index].summary)); "
                + "a human may let a commit through with the trailer \(RepoConfig.overrideTrailer): freeze"
        }
        let allowing = relevant.filter { windows[$0].kind == .allow }
        if !allowing.isEmpty && !allowing.contains(where: { openUntil[$0] != nil }) {
            let next = allowing.compactMap { nextOpen[$0] }.min()
            return "held outside every allow window (" + allowing.map { windows[$0].summary }.joined(separator: "; ") + "); "
                + (next.map { "the next opens at \(Clock.iso8601UTC(milliseconds: $0))" } ?? "none opens within 8 days")
        }
        return nil
    }

    /// The end of the window's latest opening when `now` falls in it.
    static func openUntil(_ window: ChangeWindow, zone: ZoneInfo, at now: Int64) -> Int64? {
        let minute = now / 60_000
        let span = window.duration.milliseconds / 60_000
        for back in 0..<max(span, 1) {
            let start = (minute - back) * 60_000
            if fires(window.schedule, zone: zone, atMinute: minute - back) {
                let end = start + window.duration.milliseconds
                return end > now ? end : nil
            }
        }
        return nil
    }

    /// When the window next opens after `now`, looking 8 days ahead.
    static func nextOpening(_ window: ChangeWindow, zone: ZoneInfo, after now: Int64) -> Int64? {
        let minute = now / 60_000
        for ahead in 1...(8 * 24 * 60) where fires(window.schedule, zone: zone, atMinute: minute + Int64(ahead)) {
            return (minute + Int64(ahead)) * 60_000
        }
        return nil
    }

    /// Whether `schedule` fires at UTC minute `utcMinute`, in `zone`'s local time.
    static func fires(_ schedule: CronSchedule, zone: ZoneInfo, atMinute utcMinute: Int64) -> Bool {
        let local = utcMinute * 60 + Int64(zone.offset(atUTC: utcMinute * 60))
        let days = local >= 0 ? local / 86_400 : (local - 86_399) / 86_400
        let seconds = local - days * 86_400
        let (_, month, day) = Dates.civil(days)
        let weekday = Int(((days % 7) + 11) % 7)  // 1970-01-01 was a Thursday (4)
        return schedule.matches(minute: Int(seconds / 60 % 60), hour: Int(seconds / 3_600), day: Int(day), month: Int(month), weekday: weekday)
    }
}
