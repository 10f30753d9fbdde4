// The proxy follows the state: whenever an app's state changes (`record`),
// the servers it should have are computed from the state alone
// (`wantedServers`) and synced when they differ from the last sync. So a
// restarted reconciler, or a restarted proxy, routes what the state says.

import DeployModel
import FoundationEssentials
import GitKit
import Platforms
import ReconcilerStatus
import Rollback
import SystemSupport
import Traffic

extension Reconciler {
    /// The proxy's name for an instance: its tree and port (a restart on another port is another server).
    static func serverName(_ instance: Instance) -> String {
        "v\(instance.tree.hex.prefix(12))-\(instance.port ?? 0)"
    }

    /// What `app`'s backend should route, from its state alone.
    static func wantedServers(_ app: AppState) -> [String: TrafficState.Server] {
        var servers: [String: TrafficState.Server] = [:]
        let held = app.trafficHeld != nil
        func add(_ instance: Instance?, _ weight: Int, draining: Bool = false) {
            guard let instance, let port = instance.port else { return }
            servers[serverName(instance)] = TrafficState.Server(address: "127.0.0.1", port: port, weight: held ? 0 : weight, draining: draining)
        }
        if let rollout = app.rollout {
            switch rollout.strategy {
            case .canary:
                add(rollout.stable, 100 - rollout.weight)
                add(app.instance, rollout.weight)
            case .blueGreen:
                add(rollout.stable, 0, draining: true)
                add(app.instance, 100)
            }
        } else if held || (app.health != .failed && app.health != .stopped) {
            add(app.instance, 100)
        }
        return servers
    }

    /// Syncs `app`'s proxy with its state when what it should route changed
    /// (or `force`), and records the outcome: nil when the proxy routes
    /// it, else the problem. For the steps; `record` itself uses `syncProxy`.
    @discardableResult
    func routeTraffic(_ name: String, force: Bool = false) -> String? {
        guard let outcome = syncProxy(name, force: force) else { return nil }
        if state.apps[name]?.trafficError != outcome.problem { carryOut([.record(.traffic(.problem(app: name, outcome.problem)))]) }
        return outcome.problem
    }

    /// What a proxy sync came to: `problem` nil when the proxy routes the app.
    struct ProxySync: Equatable {
        let problem: String?
    }

    /// Tells `app`'s proxy what its state says it should route, when that
    /// changed (or `force`); nil when there was nothing to do. It records
    /// nothing: its caller does (`routeTraffic`, or `update` inside `record`).
    func syncProxy(_ name: String, force: Bool = false) -> ProxySync? {
        guard let app = state.apps[name], let traffic = app.traffic else { return nil }
        let wanted = Self.wantedServers(app)
        guard force || routed[name] != wanted else { return nil }
        do {
            let synced = try router.route(name, traffic, wanted)
            // A server with requests in flight leaves on a later sync (every tick until it has).
            routed[name] = synced.leaving.isEmpty ? wanted : nil
            if synced.changes > 0 { logger.debug("\(name): proxy routes \(wanted.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.weight)" }.joined(separator: " "))") }
            writeTargets()
            return ProxySync(problem: nil)
        } catch {
            routed[name] = nil
            let problem = "proxy: \(error)"
            if app.trafficError != problem { logger.error("\(name): \(problem)") }
            return ProxySync(problem: problem)
        }
    }

    /// Prometheus file_sd targets for every version behind a proxy, with
    /// `app`, `version` and `role` (stable or canary) labels.
    func writeTargets() {
        var groups: [JSON] = []
        for (name, app) in state.apps.sorted(by: { $0.key < $1.key }) where app.traffic != nil {
            var members: [(Instance, String)] = []
            if let instance = app.instance { members.append((instance, app.rollout == nil ? "stable" : "canary")) }
            if let stable = app.rollout?.stable { members.append((stable, "stable")) }
            for (instance, role) in members {
                guard let port = instance.port else { continue }
                groups.append(.object([("targets", .array([.string("127.0.0.1:\(port)")])),
                                       ("labels", .object([("app", .string(name)), ("version", .string(instance.version)), ("role", .string(role))]))]))
            }
        }
        let text = JSON.array(groups).pretty + "\n"
        if FileIO.readText(store.targetsFile) != text {
            FileIO.makeDirectory(store.trafficDirectory)
            _ = FileIO.writeAtomically(store.targetsFile, text: text)
        }
    }

    /// Every tick: each app's proxy is up (restarted with the last known
    /// weights when it died), operators' requests are answered, and each
    /// rollout is checked and moved on.
    func superviseTraffic() {
        let mono = clock.monotonicMilliseconds()
        if mono >= nextProxyLook {
            // A proxy that cannot be brought up is tried again once a second.
            nextProxyLook = mono + (state.apps.values.contains { $0.trafficError != nil } ? 1_000 : 100)
            for (name, app) in state.apps.sorted(by: { $0.key < $1.key }) {
                guard let traffic = app.traffic else { continue }
                let up = router.isUp(name, traffic)
                if !up && traffic.proxySocket == nil && routed[name] != nil { logger.warning("\(name): the proxy is not running; starting it again with the last known weights") }
                // Unforced, this gives an adopted proxy (after a restart) the state's weights.
                routeTraffic(name, force: !up || app.trafficError != nil)
            }
        }
        answerRequests()
        for name in state.apps.keys.sorted() where state.apps[name]?.rollout != nil {
            checkRollout(name)
        }
    }

    /// Stops an instance the proxy no longer routes to, once the proxy has
    /// let go of it (its requests in flight answered; at most 5 s).
    func retire(_ instance: Instance, of name: String) {
        let deadline = clock.monotonicMilliseconds() + 5_000
        while routed[name] == nil, state.apps[name]?.traffic != nil, state.apps[name]?.trafficError == nil, clock.monotonicMilliseconds() < deadline {
            clock.sleep(milliseconds: 5)
            routeTraffic(name)
        }
        drivers[instance.runsOn]?.stop(instance)
    }

}
