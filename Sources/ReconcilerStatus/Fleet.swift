import DeployModel
import FoundationEssentials
import GitKit
import Remote
import Rollback
import SystemSupport

/// The fleet view (`rewind status --fleet`): each host of rewind.yaml's
/// `hosts:` with the status it publishes under `refs/rewind/hosts/NAME`.
/// A host's own ref is local; the others' come from the git host
/// (`refs/rewind/remote/hosts/`, fetched by the mirror). A host that has
/// not written for 3 heartbeats (3 minutes) is stale.
public struct FleetReport: Sendable {
    public struct HostApp: Sendable, Decodable {
        public let app: String
        public let version: String?
        public let tree: String?
        public let health: String
        public let lastError: String?
        /// Wall ms since when it has been healthy (a stage's soak counts from here).
        public let healthySince: Int64?
        /// Why the host does not apply the app's new release yet (a staged rollout).
        public let stage: StageHold?

        enum CodingKeys: String, CodingKey { case app, version, tree, health, lastError, healthySince, stage }

        /// Leniently: a field this version does not understand (written by a
        /// newer or older Rewind) is left out rather than losing the host.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            app = try c.decode(String.self, forKey: .app)
            health = (try? c.decode(String.self, forKey: .health)) ?? "unknown"
            version = try? c.decodeIfPresent(String.self, forKey: .version)
            tree = try? c.decodeIfPresent(String.self, forKey: .tree)
            lastError = try? c.decodeIfPresent(String.self, forKey: .lastError)
            healthySince = try? c.decodeIfPresent(Int64.self, forKey: .healthySince)
            stage = try? c.decodeIfPresent(StageHold.self, forKey: .stage)
        }
    }

    public struct Host: Sendable {
        public var name: String
        /// Wall-clock ms of the status, nil when the host never published one.
        public var writtenAt: Int64?
        public var lastApplied: String?
        /// Wall-clock ms when its mirror last reached the git host (as of `writtenAt`; nil: a local repository, or never).
        public var lastSync: Int64?
        public var apps: [HostApp] = []
        /// Not heard from for longer than `staleAfter`.
        public var stale: Bool
    }

    /// A host writes its status at least once per heartbeat (a minute unless
    /// `--status-interval` says otherwise, and the status says which): three missed make it stale.
    public static func staleAfter(heartbeat: Int64?) -> Int64 { 3 * (heartbeat ?? 60_000) }

    public var hosts: [Host]

    /// What `status.json` holds (Reconciler's HostStatus writes it).
    struct Published: Decodable {
        let host: String
        let lastApplied: String?
        let apps: [HostApp]
        let writtenAtMilliseconds: Int64
        /// How often the host writes even when nothing changed (older hosts: a minute).
        let heartbeatMilliseconds: Int64?
        let lastSyncMilliseconds: Int64?
    }

    /// Each host's newest status: its own ref here, or what was fetched from the git host.
    static func published(_ git: Repository) -> [String: Published] {
        var published: [String: Published] = [:]
        for prefix in [Mirror.remoteHostRefs, Mirror.hostRefs] {
            for (reference, target) in (try? git.references(matching: prefix + "*")) ?? [] {
                // A status counts for the host its ref names, and only when it says so itself.
                guard let status = read(git, target), reference == prefix + status.host else { continue }
                // A host's own ref (read last) wins unless the fetched one is newer.
                if let known = published[status.host], known.writtenAtMilliseconds > status.writtenAtMilliseconds { continue }
                published[status.host] = status
            }
        }
        return published
    }

    /// What every host last published, as a staged rollout reads it.
    public static func reports(_ git: Repository) -> [String: FleetStages.HostReport] {
        published(git).mapValues { status in
            FleetStages.HostReport(writtenAt: status.writtenAtMilliseconds, apps: Dictionary(status.apps.map {
                ($0.app, FleetStages.Report(tree: $0.tree, health: $0.health, healthySince: $0.healthySince))
            }, uniquingKeysWith: { a, _ in a }))
        }
    }

    /// `hosts`: rewind.yaml's at the tip, when the caller has parsed it already (nil: it is read here).
    public static func build(repo: DeployRepository, hosts: [HostSpec]? = nil, now: Int64) -> FleetReport {
        let published = published(repo.git)
        let declared = (hosts ?? (try? repo.tip()).flatMap { try? repo.config(tree: repo.git.commit($0).tree) }?.hosts ?? []).map(\.name)
        let names = declared + published.keys.filter { !declared.contains($0) }.sorted()
        return FleetReport(hosts: names.map { name in
            guard let status = published[name] else { return Host(name: name, stale: true) }
            return Host(name: name, writtenAt: status.writtenAtMilliseconds, lastApplied: status.lastApplied, lastSync: status.lastSyncMilliseconds, apps: status.apps,
                        stale: now - status.writtenAtMilliseconds > staleAfter(heartbeat: status.heartbeatMilliseconds))
        })
    }

    private static func read(_ git: Repository, _ commit: OID) -> Published? {
        guard let tree = try? git.commit(commit).tree, let entry = try? git.entry(in: tree, path: "status.json"),
              let bytes = try? git.blob(entry.id) else { return nil }
        return try? JSONDecoder().decode(Published.self, from: Data(bytes))
    }

    public var json: JSON {
        .object([("hosts", .array(hosts.map { host in
            .object([("host", .string(host.name)), ("writtenAt", JSON.time(host.writtenAt)), ("lastSync", JSON.time(host.lastSync)), ("stale", .bool(host.stale)),
                     ("lastApplied", .optional(host.lastApplied)),
                     ("apps", .array(host.apps.map { app in
                         .object([("app", .string(app.app)), ("version", .optional(app.version)), ("tree", .optional(app.tree)),
                                  ("health", .string(app.health)), ("lastError", .optional(app.lastError)),
                                  ("stage", app.stage?.json ?? .null)])
                     }))])
        }))])
    }
}

/// How far a release has reached across the hosts: for one app it
/// changes, each host it is placed on, and what that host last published.
public struct ReleaseReach: Sendable {
    public struct Host: Sendable {
        public let host: String
        /// `runs` (the release's tree), `waits` (a stage holds it), `other` (another tree), `unknown` (nothing published).
        public let state: String
        public let health: String?
        public let detail: String?
        public let stale: Bool
    }

    public let app: String
    public let hosts: [Host]
    /// Hosts that run the release healthy.
    public var reached: Int { hosts.filter { $0.state == "runs" && $0.health == "healthy" }.count }

    public var json: JSON {
        .object([("app", .string(app)), ("reached", .number(Int64(reached))), ("of", .number(Int64(hosts.count))),
                 ("hosts", .array(hosts.map { host in
                     .object([("host", .string(host.host)), ("state", .string(host.state)), ("health", .optional(host.health)),
                              ("detail", .optional(host.detail)), ("stale", .bool(host.stale))])
                 }))])
    }
}

extension FleetReport {
    /// Where `app` at `tree` runs among `placed` (host names).
    public func reach(app: String, tree: String, placed: [String]) -> ReleaseReach {
        ReleaseReach(app: app, hosts: placed.map { name in
            guard let host = hosts.first(where: { $0.name == name }), host.writtenAt != nil else {
                return ReleaseReach.Host(host: name, state: "unknown", health: nil, detail: "never reported", stale: true)
            }
            guard let running = host.apps.first(where: { $0.app == app }) else {
                return ReleaseReach.Host(host: name, state: "unknown", health: nil, detail: "does not report \(app)", stale: host.stale)
            }
            if running.tree == tree { return ReleaseReach.Host(host: name, state: "runs", health: running.health, detail: running.lastError, stale: host.stale) }
            if let stage = running.stage {
                return ReleaseReach.Host(host: name, state: "waits", health: running.health, detail: (stage.halted ? "halted: " : "") + stage.reason, stale: host.stale)
            }
            return ReleaseReach.Host(host: name, state: "other", health: running.health, detail: running.version.map { "runs \($0)" }, stale: host.stale)
        })
    }
}
