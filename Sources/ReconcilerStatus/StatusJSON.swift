import Rollback
import SystemSupport

extension StatusReport {
    /// The report as JSON (`rewind status --format json`, `GET /api/v1/status`).
    public var json: JSON {
        let r = self
        return .object([
            ("branch", .string(r.branch)), ("tip", .optional(r.tip)), ("lastApplied", .optional(r.lastApplied)),
            ("reconcilerPid", r.reconcilerPid.map { .number(Int64($0)) } ?? .null),
            ("host", .optional(r.host)),
            ("halted", .optional(r.halted)),
            ("refused", r.invalid.map { .object([("commit", .string($0.commit.hex)), ("message", .string($0.message)), ("details", .array($0.details.map { .string($0) }))]) } ?? .null),
            ("error", .optional(r.lastError)),
            ("needsHuman", .array(r.needsHuman.map { .string($0) })),
            ("apps", .array(r.apps.map(\.json))),
            ("remote", r.remote.map { remote in
                .object([("url", .string(remote.url)), ("lastAttemptAt", .time(remote.lastAttemptAt)),
                         ("lastSuccessAt", JSON.time(remote.lastSuccessAt)), ("error", .optional(remote.lastError)),
                         ("failingSince", JSON.time(remote.failingSince)), ("timedOut", remote.lastErrorTimedOut.map { .bool($0) } ?? .null)])
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
            ("stage", a.stage?.json ?? .null),
            ("freeze", .optional(a.freeze)),
            ("lastError", .optional(a.lastError)),
            ("waitingFor", .string(a.waitingFor)),
            ("pid", a.pid.map { .number(Int64($0)) } ?? .null),
            ("container", .optional(a.container)),
            ("image", .optional(a.image)),
            ("port", a.port.map { .number(Int64($0)) } ?? .null),
            ("startedAt", JSON.time(a.startedAt)),
            ("restarts", .number(Int64(a.restarts))),
            ("logFile", .optional(a.logFile)),
            ("traffic", a.traffic.map { $0.json(app: a.name, applied: a.appliedVersion) } ?? .null),
            ("updates", a.updates?.json ?? .null),
            ("lastRollback", a.lastRollback.map { t in
                .object([
                    ("failedRelease", .string(t.failedRelease.hex)), ("rollbackCommit", .optional(t.rollbackCommit?.hex)), ("reason", .string(t.reason)),
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

extension TrafficStatus {
    /// The proxy's view of one app as JSON: listen, strategy, the rollout's step and each version's weight.
    func json(app: String, applied: String?) -> JSON {
        var rollout = JSON.null
        var weights: [(String, JSON)] = [(applied ?? "", .number(held == nil ? 100 : 0))]
        if let version = rolloutVersion {
            let step: JSON = self.step.map { .number(Int64($0)) } ?? .null
            let steps: JSON = self.steps.map { .number(Int64($0)) } ?? .null
            rollout = .object([("version", .string(version)), ("stableVersion", .optional(stableVersion)), ("weight", .number(Int64(weight))),
                               ("step", step), ("steps", steps), ("paused", .bool(paused)), ("line", .string(line(app: app)))])
            weights = [(version, .number(Int64(weight))), (stableVersion ?? "stable", .number(Int64(100 - weight)))]
        }
        return .object([("listen", .string("127.0.0.1:\(listenPort)")), ("strategy", .string(strategy)), ("rollout", rollout),
                        ("weights", .object(weights)), ("held", .optional(held)), ("error", .optional(error))])
    }
}
