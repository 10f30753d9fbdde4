import Testing
@testable import DeployModel

/// `windows:` in rewind.yaml: cron schedules and change windows, and the
/// file:line of each mistake.
@Suite struct ChangeWindowConfigTests {
    @Test func cronSchedulesParseAndMatch() throws {
        let friday = try CronSchedule(parsing: "0 18 * * 5")
        #expect(friday.matches(minute: 0, hour: 18, day: 4, month: 12, weekday: 5))
        #expect(!friday.matches(minute: 1, hour: 18, day: 4, month: 12, weekday: 5))
        let office = try CronSchedule(parsing: "*/15 9-17 * * 1-5")
        #expect(office.matches(minute: 45, hour: 17, day: 7, month: 12, weekday: 1) && !office.matches(minute: 50, hour: 9, day: 7, month: 12, weekday: 1))
        #expect(!office.matches(minute: 0, hour: 10, day: 5, month: 12, weekday: 6), "not on Saturday")
        let sunday = try CronSchedule(parsing: "30 2 * * 7")
        #expect(sunday.matches(minute: 30, hour: 2, day: 6, month: 12, weekday: 0), "7 is Sunday, as 0")
        // Both day fields restricted: either is enough.
        let either = try CronSchedule(parsing: "0 0 1,15 * 1")
        #expect(either.matches(minute: 0, hour: 0, day: 15, month: 12, weekday: 2) && either.matches(minute: 0, hour: 0, day: 7, month: 12, weekday: 1))
        for (text, message) in [("61 * * * *", "minute '61': out of range 0-59"), ("* * *", "expected 5 fields"), ("a * * * *", "minute 'a'"),
                                ("* * * 13 *", "month '13'"), ("*/0 * * * *", "the step must be"), ("5-1 * * * *", "expected a range")] {
            #expect(throws: CronError.self) { try CronSchedule(parsing: text) }
            do { _ = try CronSchedule(parsing: text) } catch { #expect(error.description.contains(message), "\(text): \(error)") }
        }
    }

    static let apps = "apps:\n  - name: api\n    path: apps/api\n"

    @Test func windowsAreParsed() throws {
        let text = Self.apps + """
            windows:
              - kind: deny
                schedule: "0 18 * * 5"
                duration: 64h
                timeZone: Europe/Berlin
              - kind: allow
                schedule: "0 9 * * 1-5"
                duration: 8h
                apps: [api]
                rollbacks: deny

            """
        let (config, diagnostics) = RepoConfig.parse(text)
        let windows = try #require(config?.windows, "\(diagnostics)")
        #expect(windows.count == 2 && windows[0].kind == .deny && windows[0].timeZone == "Europe/Berlin" && windows[0].duration.milliseconds == 64 * 3_600_000)
        #expect(windows[0].apps.isEmpty && !windows[0].holdsRollbacks && windows[0].applies(to: "api"))
        #expect(windows[1].kind == .allow && windows[1].timeZone == "UTC" && windows[1].holdsRollbacks && windows[1].apps == ["api"])
    }

    @Test(arguments: [
        ("  - kind: maybe\n    schedule: \"0 18 * * 5\"\n    duration: 1h\n", "windows[0].kind", 5, "unknown kind 'maybe'"),
        ("  - kind: deny\n    schedule: \"0 25 * * 5\"\n    duration: 1h\n", "windows[0].schedule", 6, "hour '25': out of range 0-23"),
        ("  - kind: deny\n    schedule: \"0 18 * * 5\"\n", "windows[0].duration", 5, "required field is missing"),
        ("  - kind: deny\n    schedule: \"0 18 * * 5\"\n    duration: 40d\n", "windows[0].duration", 7, "must be from 1m to 31d"),
        ("  - kind: deny\n    schedule: \"0 18 * * 5\"\n    duration: 1h\n    timeZone: Mars/Olympus\n", "windows[0].timeZone", 8, "unknown time zone 'Mars/Olympus'"),
        ("  - kind: deny\n    schedule: \"0 18 * * 5\"\n    duration: 1h\n    timeZone: ../../etc/passwd\n", "windows[0].timeZone", 8, "unknown time zone"),
        ("  - kind: deny\n    schedule: \"0 18 * * 5\"\n    duration: 1h\n    apps: [web]\n", "windows[0].apps", 8, "unknown app 'web'"),
        ("  - kind: deny\n    schedule: \"0 18 * * 5\"\n    duration: 1h\n    rollbacks: never\n", "windows[0].rollbacks", 8, "unknown choice 'never'"),
    ] as [(String, String, Int, String)])
    func badWindowsAreReportedPrecisely(window: String, field: String, line: Int, message: String) throws {
        let (config, diagnostics) = RepoConfig.parse(Self.apps + "windows:\n" + window)
        #expect(config == nil)
        let match = diagnostics.first { $0.severity == .error && $0.field == field && $0.message.contains(message) }
        #expect(match?.line == line && match?.file == "rewind.yaml", "\(diagnostics)")
        #expect(match?.hint != nil || message == "required field is missing", "\(diagnostics)")
    }
}
