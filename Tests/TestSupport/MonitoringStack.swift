import Foundation
import SystemSupport

/// Real Prometheus and Alertmanager (Debian's packages) on free loopback
/// ports, with generated configuration, stopped and deleted by `close()`.
public final class MonitoringStack {
    public let root: String
    public let prometheusPort: Int
    public let alertmanagerPort: Int
    private var pids: [pid_t] = []

    /// - Parameters:
    ///   - scrape: host:port targets scraped every second.
    ///   - rules: the `rules:` list of one rule group evaluated every second (YAML, indented by 4).
    ///   - webhook: the URL Alertmanager posts to, with a bearer token.
    ///   - fileTargets: a Prometheus file_sd file scraped too (Rewind's `<state>/traffic/targets.json`).
    public init(scrape: [String], rules: String, webhook: String, token: String, fileTargets: String? = nil) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("rewind-mon-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        guard let p = Loopback.freeAppPort(), let a = Loopback.freeAppPort() else { throw TestFailure("no free ports") }
        prometheusPort = p
        alertmanagerPort = a
        try writeFile(root + "/token", token + "\n")
        try writeFile(root + "/alertmanager.yml", """
            route:
              receiver: rewind
              group_by: [alertname, app]
              group_wait: 0s
              group_interval: 1s
              repeat_interval: 1h
            receivers:
              - name: rewind
                webhook_configs:
                  - url: \(webhook)
                    send_resolved: true
                    http_config:
                      authorization:
                        credentials_file: \(root)/token
            """)
        try writeFile(root + "/rules.yml", "groups:\n  - name: rewind-test\n    interval: 1s\n    rules:\n" + rules)
        try writeFile(root + "/prometheus.yml", """
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            rule_files: [\(root)/rules.yml]
            alerting:
              alertmanagers:
                - static_configs:
                    - targets: ["127.0.0.1:\(a)"]
            scrape_configs:
              - job_name: apps
                honor_labels: true
                static_configs:
                  - targets: [\(scrape.map { "\"\($0)\"" }.joined(separator: ", "))]
            """ + (fileTargets.map { "\n  - job_name: versions\n    honor_labels: true\n    file_sd_configs:\n      - files: [\"\($0)\"]\n        refresh_interval: 1s\n" } ?? ""))
        let env = ProcessInfo.processInfo.environment
        pids.append(try Spawn.start(SpawnOptions(
            program: "/usr/bin/prometheus-alertmanager",
            arguments: ["--config.file=\(root)/alertmanager.yml", "--storage.path=\(root)/am", "--web.listen-address=127.0.0.1:\(a)", "--cluster.listen-address="],
            environment: env, outputFile: root + "/alertmanager.log")))
        pids.append(try Spawn.start(SpawnOptions(
            program: "/usr/bin/prometheus",
            arguments: ["--config.file=\(root)/prometheus.yml", "--storage.tsdb.path=\(root)/tsdb", "--web.listen-address=127.0.0.1:\(p)"],
            environment: env, outputFile: root + "/prometheus.log")))
        try waitReady(port: a, path: "/-/ready", what: "alertmanager")
        try waitReady(port: p, path: "/-/ready", what: "prometheus")
    }

    private func waitReady(port: Int, path: String, what: String) throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let response = try? Loopback.get(port: port, path: path, timeoutMilliseconds: 1_000), response.status == 200 { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw TestFailure("\(what) did not become ready:\n\(log(what))")
    }

    /// A component's log.
    public func log(_ what: String) -> String {
        (try? String(contentsOfFile: "\(root)/\(what).log", encoding: .utf8)) ?? ""
    }

    /// Stops both and deletes their files.
    public func close() {
        for pid in pids { Spawn.stop(pid, graceMilliseconds: 2_000) }
        pids = []
        try? FileManager.default.removeItem(atPath: root)
    }
}

/// Sends requests to 127.0.0.1:`port()`/ every 10 ms on a thread of its own until stopped.
public final class TrafficGenerator: Sendable {
    private let stopped = AtomicFlag()

    public init(port: @escaping @Sendable () -> Int?) {
        let stopped = stopped
        Thread {
            while !stopped.value {
                if let p = port() { _ = try? Loopback.get(port: p, path: "/", timeoutMilliseconds: 500) }
                Thread.sleep(forTimeInterval: 0.01)
            }
        }.start()
    }

    public func stop() { stopped.set() }
}
