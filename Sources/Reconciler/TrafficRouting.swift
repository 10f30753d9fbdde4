import DeployModel
import Traffic

/// Where an app's traffic is routed: the rollout controller tells it which
/// servers (instances and weights) an app's backend has. HAProxy implements
/// it (`HAProxyRouter`); the reconciler's unit tests pass a fake.
public protocol TrafficRouting: AnyObject {
    /// Makes `app`'s backend route to exactly `servers`; returns what changed.
    @discardableResult
    func route(_ app: String, _ traffic: TrafficSettings, _ servers: [String: TrafficState.Server]) throws(TrafficError) -> SyncResult
    /// True when `app`'s proxy is up.
    func isUp(_ app: String, _ traffic: TrafficSettings) -> Bool
    /// Stops the proxy Rewind started for `app`, if it started one.
    func stop(_ app: String)
    func stopAll()
}


/// The proxies of the apps with `traffic:`: one HAProxy per app that Rewind
/// starts (in `<state>/traffic/<app>/`), or an existing one it attaches to.
final class HAProxyRouter: TrafficRouting {
    let directory: String
    let haproxy: String
    private var managed: [String: HAProxySupervisor] = [:]

    init(directory: String, haproxy: String) {
        self.directory = directory
        self.haproxy = haproxy
    }

    /// Makes `app`'s backend route to exactly `servers`; returns the commands sent.
    @discardableResult
    func route(_ app: String, _ traffic: TrafficSettings, _ servers: [String: TrafficState.Server]) throws(TrafficError) -> SyncResult {
        if let socket = traffic.proxySocket, let backend = traffic.proxyBackend {
            return try HAProxyRuntime(socket: socket).sync(backend: backend, to: servers)
        }
        var state = TrafficState()
        state.backends[app] = servers
        return try supervisor(app, traffic).ensure(state)
    }

    /// True when `app`'s proxy is up (an attached proxy answers its socket;
    /// a managed one runs).
    func isUp(_ app: String, _ traffic: TrafficSettings) -> Bool {
        if let socket = traffic.proxySocket { return (try? HAProxyRuntime(socket: socket).command("show info")) != nil }
        return supervisor(app, traffic).isRunning
    }

    /// Stops the proxy Rewind started for `app` (an attached one is left alone).
    func stop(_ app: String) {
        let supervisor = managed[app] ?? HAProxySupervisor(config: HAProxyConfig(directory: "\(directory)/\(app)", frontends: []), haproxy: haproxy)
        supervisor.stop()
        managed[app] = nil
    }

    func stopAll() {
        for app in managed.keys.sorted() { stop(app) }
    }

    private func supervisor(_ app: String, _ traffic: TrafficSettings) -> HAProxySupervisor {
        let config = HAProxyConfig(directory: "\(directory)/\(app)", frontends: [.init(app: app, listenPort: traffic.listenPort)])
        if let known = managed[app] {
            known.reconfigure(config)
            return known
        }
        let supervisor = HAProxySupervisor(config: config, haproxy: haproxy)
        managed[app] = supervisor
        return supervisor
    }
}
