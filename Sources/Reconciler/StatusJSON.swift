import Rollback
import SystemSupport

extension StatusReport {
    /// The report as JSON (`rewind status --format json`, `GET /api/v1/status`).
    public var json: JSON {
        let r = self
        return .object([
            ("branch", .string(r.branch)), ("tip", .optional(r.tip)), ("lastApplied", .optional(r.lastApplied)),
            ("reconcilerPid", r.reconcilerPid.map { .number(Int64($0)) } ?? .null),
            ("halted", .optional(r.halted)),
            ("refused", r.invalid.map { .object([("commit", .string($0.commit)), ("message", .string($0.message)), ("details", .array($0.details.map { .string($0) }))]) } ?? .null),
            ("error", .optional(r.lastError)),
            ("needsHuman", .array(r.needsHuman.map { .string($0) })),
            ("apps", .array(r.apps.map(\.json))),
            ("remote", r.remote.map { remote in
                .object([("url", .string(remote.url)), ("lastAttemptAt", .time(remote.lastAttemptAt)),
                         ("lastSuccessAt", JSON.time(remote.lastSuccessAt)), ("error", .optional(remote.lastError))])
            } ?? .null),
            ("unpushed", .array(r.unpushed.map { entry in
                .object([("commit", .string(entry.commit)), ("branch", .string(shortBranchName(entry.reference))),
                         ("queuedAt", .time(entry.queuedAt)), ("error", .optional(entry.lastError))])
            })),
        ])
    }
}

extension AppStatus {
    /// One app as JSON.
    public var json: JSON {
        let a = self
        return .object([
            ("app", .string(a.name)),
            ("desired", .object([("version", .optional(a.desiredVersion)), ("tree", .optional(a.desiredTree))])),
            ("applied", .object([("version", .optional(a.appliedVersion)), ("commit", .optional(a.appliedCommit)), ("tree", .optional(a.appliedTree))])),
            ("health", .string(a.health.rawValue)),
            ("healthIsLive", .bool(a.healthIsLive)),
            ("healthObservedAt", JSON.time(a.healthObservedAt)),
            ("needsHuman", .optional(a.needsHuman)),
            ("failed", .optional(a.failed)),
            ("healthySince", JSON.time(a.healthySince)),
            ("pin", .optional(a.pin)),
            ("lastError", .optional(a.lastError)),
            ("waitingFor", .string(a.waitingFor)),
            ("pid", a.pid.map { .number(Int64($0)) } ?? .null),
            ("port", a.port.map { .number(Int64($0)) } ?? .null),
            ("startedAt", JSON.time(a.startedAt)),
            ("restarts", .number(Int64(a.restarts))),
            ("logFile", .optional(a.logFile)),
            ("lastRollback", a.lastRollback.map { t in
                .object([
                    ("failedRelease", .string(t.failedRelease)), ("rollbackCommit", .optional(t.rollbackCommit)), ("reason", .string(t.reason)),
                    ("failedAt", .time(t.failedAt)), ("committedAt", JSON.time(t.committedAt)),
                    ("healthyAt", JSON.time(t.healthyAt)),
                ])
            } ?? .null),
        ])
    }
}

extension JSON {
    /// A wall-clock time (ms) as RFC 3339 in UTC with milliseconds,
    /// `2026-12-01T12:18:54.123Z`: the one time form of Rewind's JSON.
    static func time(_ milliseconds: Int64) -> JSON { .string(Clock.iso8601UTC(milliseconds: milliseconds, fraction: true)) }

    static func time(_ milliseconds: Int64?) -> JSON { milliseconds.map { time($0) } ?? .null }
}
