import DeployModel
import SystemSupport

/// Why a host does not apply an app's new release yet (`rollout:` across
/// hosts): it waits for an earlier stage, or the rollout is halted because
/// a host of an earlier stage has not reported for `hostTimeout`.
public struct StageHold: Sendable, Codable, Equatable {
    /// True when the rollout stops here until a human acts (`onTimeout: halt`).
    public var halted: Bool
    public var reason: String
    /// When (wall ms) this host began to wait: a host of an earlier stage
    /// that never reported is silent since then.
    public var since: Int64

    public init(halted: Bool, reason: String, since: Int64) {
        self.halted = halted
        self.reason = reason
        self.since = since
    }

    /// As status, the fleet view and the API show it.
    public var json: JSON { .object([("halted", .bool(halted)), ("reason", .string(reason)), ("since", JSON.time(since))]) }
    /// As a host publishes it under refs/rewind/hosts/ (read back by `Codable`).
    public var published: JSON { .object([("halted", .bool(halted)), ("reason", .string(reason)), ("since", .number(since))]) }
}

/// A staged rollout across hosts, decided by each host on its own from what
/// the others publish (no coordinator, no consensus): the app's hosts, in
/// the order of `hosts:`, form batches, stage by stage, `maxParallel` hosts
/// at a time. A host applies a new release once every host of the batches
/// before its own runs that release healthy, and, for an earlier stage,
/// has done so for that stage's `soak`. A host that has not reported for
/// `hostTimeout` holds the rollout back until then; after it, the rollout
/// halts or goes on without it, as `onTimeout` says.
public enum FleetStages {
    /// Hosts that apply together, and the stage they belong to (0-based).
    /// The app's hosts no stage selects come last, as a stage of their own.
    public struct Batch: Sendable, Equatable {
        public var stage: Int
        public var hosts: [String]
        public var soakMilliseconds: Int64
    }

    /// What one host of the fleet last published about one app.
    public struct Report: Sendable, Equatable {
        public var tree: String?
        public var health: String
        /// Wall ms since when it has been healthy (nil: not known).
        public var healthySince: Int64?

        public init(tree: String?, health: String, healthySince: Int64?) {
            self.tree = tree
            self.health = health
            self.healthySince = healthySince
        }
    }

    /// One host's last status: when it wrote it (wall ms), and its apps.
    public struct HostReport: Sendable, Equatable {
        public var writtenAt: Int64
        public var apps: [String: Report]

        public init(writtenAt: Int64, apps: [String: Report]) {
            self.writtenAt = writtenAt
            self.apps = apps
        }
    }

    public static func batches(_ rollout: FleetRollout, placed: [HostSpec]) -> [Batch] {
        var assigned: Set<String> = []
        var batches: [Batch] = []
        for (index, stage) in rollout.stages.enumerated() {
            let hosts = placed.filter { stage.selector.selects($0) && !assigned.contains($0.name) }.map(\.name)
            assigned.formUnion(hosts)
            batches += chunks(hosts, stage.maxParallel).map { Batch(stage: index, hosts: $0, soakMilliseconds: stage.soak.milliseconds) }
        }
        let rest = placed.map(\.name).filter { !assigned.contains($0) }
        if !rest.isEmpty { batches.append(Batch(stage: rollout.stages.count, hosts: rest, soakMilliseconds: 0)) }
        return batches
    }

    private static func chunks(_ hosts: [String], _ size: Int?) -> [[String]] {
        guard !hosts.isEmpty else { return [] }
        let size = max(1, size ?? hosts.count)
        return stride(from: 0, to: hosts.count, by: size).map { Array(hosts[$0..<min($0 + size, hosts.count)]) }
    }

    /// Whether `host` may apply `app`'s `tree` now: nil when it may, else why
    /// not. `waitingSince`: when it began to wait (nil: it begins now).
    /// `skipped` gets the hosts `onTimeout: proceed` went on without.
    public static func hold(app: String, rollout: FleetRollout, placed: [HostSpec], host: String, tree: String,
                            reports: [String: HostReport], now: Int64, waitingSince: Int64? = nil, skipped: inout [String]) -> StageHold? {
        let since = waitingSince ?? now
        let batches = batches(rollout, placed: placed)
        guard let mine = batches.firstIndex(where: { $0.hosts.contains(host) }) else { return nil }
        let stageCount = batches.last.map { $0.stage + 1 } ?? 1
        let myStage = batches[mine].stage
        let timeout = rollout.hostTimeout.milliseconds
        for batch in batches[..<mine] {
            for other in batch.hosts {
                let report = reports[other]
                let silent = now - (report?.writtenAt ?? since)
                if silent > timeout {
                    let heard = report.map { "has not reported since \(Clock.iso8601UTC(milliseconds: $0.writtenAt))" } ?? "has never reported"
                    if rollout.onTimeout == .proceed {
                        skipped.append(other)
                        continue
                    }
                    return StageHold(halted: true, reason: "stage \(myStage + 1) of \(stageCount) is halted: \(other) (stage \(batch.stage + 1)) \(heard), over rollout.hostTimeout "
                        + "(\(rollout.hostTimeout)), and onTimeout is halt; bring \(other) back, or set onTimeout: proceed", since: since)
                }
                let waiting = "stage \(myStage + 1) of \(stageCount) waits: \(other) (stage \(batch.stage + 1))"
                guard let running = report?.apps[app], running.tree == tree, running.health == "healthy" else {
                    let what = report?.apps[app].map { $0.tree == tree ? "runs it \($0.health)" : "does not run it yet" } ?? "does not run \(app) yet"
                    return StageHold(halted: false, reason: "\(waiting) \(what)", since: since)
                }
                // Inside a stage, the next batch follows once this one is healthy; the next stage after the soak.
                guard batch.stage != myStage, batch.soakMilliseconds > 0 else { continue }
                let soaked = (running.healthySince ?? now) + batch.soakMilliseconds
                if soaked > now {
                    // A fixed end rather than a countdown: the hold (and the host's status) stays the same while it soaks.
                    return StageHold(halted: false, reason: "\(waiting) soaks it for \(Duration(milliseconds: batch.soakMilliseconds)), until \(Clock.iso8601UTC(milliseconds: soaked))", since: since)
                }
            }
        }
        return nil
    }
}
