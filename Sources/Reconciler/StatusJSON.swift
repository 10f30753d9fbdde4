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
                .object([("url", .string(remote.url)), ("lastAttemptAt", .number(remote.lastAttemptAt)),
                         ("lastSuccessAt", remote.lastSuccessAt.map { .number($0) } ?? .null), ("error", .optional(remote.lastError))])
            } ?? .null),
            ("unpushed", .array(r.unpushed.map { entry in
                .object([("commit", .string(entry.commit)), ("branch", .string(shortBranchName(entry.reference))),
                         ("queuedAt", .number(entry.queuedAt)), ("error", .optional(entry.lastError))])
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
            ("healthObservedAt", a.healthObservedAt.map { .number($0) } ?? .null),
            ("needsHuman", .optional(a.needsHuman)),
            ("failed", .optional(a.failed)),
            ("healthySince", a.healthySince.map { .number($0) } ?? .null),
            ("pin", .optional(a.pin)),
            ("lastError", .optional(a.lastError)),
            ("waitingFor", .string(a.waitingFor)),
            ("pid", a.pid.map { .number(Int64($0)) } ?? .null),
            ("port", a.port.map { .number(Int64($0)) } ?? .null),
            ("startedAt", a.startedAt.map { .number($0) } ?? .null),
            ("restarts", .number(Int64(a.restarts))),
            ("logFile", .optional(a.logFile)),
            ("lastRollback", a.lastRollback.map { t in
                .object([
                    ("failedRelease", .string(t.failedRelease)), ("rollbackCommit", .optional(t.rollbackCommit)), ("reason", .string(t.reason)),
                    ("failedAt", .number(t.failedAt)), ("committedAt", t.committedAt.map { .number($0) } ?? .null),
                    ("healthyAt", t.healthyAt.map { .number($0) } ?? .null),
                ])
            } ?? .null),
        ])
    }
}
