import DeployModel
import FoundationEssentials
import GitKit
import SystemSupport
import WebClient

/// Prometheus analysis: `policy.triggers` evaluated through the metrics
/// source during each release's soak window. A breach that lasts `for`
/// fails the release (action rollback, which may then be rolled back
/// automatically under the policy), or is logged (notify, log).
extension Reconciler {
    /// Where the triggers' queries are answered: `options.metrics`, else
    /// the Prometheus at `options.prometheus`; nil: triggers are not evaluated.
    var metrics: (any MetricsSource)? {
        options.metrics ?? options.prometheus.map { PrometheusClient(endpoint: $0, caFile: options.caFile) }
    }

    /// Evaluates the triggers for every healthy app in its soak window, at
    /// most once per analysis interval. Returns what it found; a failed
    /// release ends the round and goes to the policy.
    func analyse() -> [Step] {
        guard let client = metrics, let desired, !desired.config.policy.triggers.isEmpty else { return [] }
        let mono = clock.monotonicMilliseconds()
        guard mono >= nextAnalysis else { return [] }
        nextAnalysis = mono + options.analysisInterval
        let now = clock.wallMilliseconds()
        var steps: [Step] = []
        for (name, app) in state.apps.sorted(by: { $0.key < $1.key }) {
            // A rollout's queries run with its steps (`rolloutAnalysis`).
            guard app.rollout == nil, app.health == .healthy, let since = app.healthySince, let tree = app.instance?.tree else {
                breaches[name] = nil
                continue
            }
            guard now - since <= desired.config.policy.soak.milliseconds else {
                breaches[name] = nil
                if let release = app.verifying {
                    // The soak window ended before the queries came back under their thresholds.
                    return steps + failing(name, release: release, tree: tree, reason: "the triggers' queries did not come back under their thresholds within the soak window")
                }
                continue
            }
            let release = app.release ?? tree
            var allClear = true
            for trigger in desired.config.policy.triggers {
                switch evaluate(trigger, app: name, client: client, now: now, release: release, tree: tree, steps: &steps) {
                case .clear: continue
                case .breaching, .unknown: allClear = false
                case .failed(let failed): return steps + failed
                }
            }
            if allClear, app.verifying == release, let commit = try? repo.git.commit(release) {
                steps.append(.record(.rollback(.verified(app: name, commit, what: "healthy, and its triggers' queries are under their thresholds"))))
            }
        }
        return steps
    }

    private enum Evaluation {
        case clear, breaching, unknown
        /// The release failed: its steps (the failure, then the policy).
        case failed([Step])
    }

    /// What one look at a trigger's query found.
    enum TriggerReading {
        /// Under the threshold, or no data.
        case clear
        /// Prometheus did not answer (logged).
        case unknown
        /// Over the threshold, not yet for the trigger's `for`.
        case breaching
        /// Over the threshold for at least `for`, since `since` (wall ms).
        case lasting(value: Double, since: Int64)
    }

    /// Runs `query` (the trigger's, its variables substituted) and keeps in
    /// `breaches` since when each trigger of `app` breaches: the one
    /// evaluation of soak analysis and of rollout analysis.
    func read(_ trigger: Trigger, query: String, app: String, client: any MetricsSource, now: Int64, breaches: inout [String: [String: Int64]]) -> TriggerReading {
        let value: Double?
        do {
            value = try client.value(of: query)
        } catch {
            logger.warning("trigger \(trigger.name) for \(app): \(error)")
            return .unknown
        }
        guard let value, trigger.breached(by: value) else {
            breaches[app]?[trigger.name] = nil
            return .clear
        }
        let since = breaches[app]?[trigger.name] ?? now
        breaches[app, default: [:]][trigger.name] = since
        return now - since >= trigger.forDuration.milliseconds ? .lasting(value: value, since: since) : .breaching
    }

    /// One trigger of one app; a `notify` breach offers the rollback to a human (in `steps`).
    private func evaluate(_ trigger: Trigger, app: String, client: any MetricsSource, now: Int64, release: OID, tree: OID, steps: inout [Step]) -> Evaluation {
        let value: Double, since: Int64
        let key = "\(app)/\(trigger.name)"
        switch read(trigger, query: trigger.query.replacing("$app", with: app), app: app, client: client, now: now, breaches: &breaches) {
        case .clear:
            suggested.remove(key)
            return .clear
        case .unknown: return .unknown
        case .breaching: return .breaching
        case .lasting(let v, let s): (value, since) = (v, s)
        }
        let reason = "trigger \(trigger.name): \(value) \(trigger.comparison) \(trigger.threshold) for \(Duration(milliseconds: now - since)) during the soak window"
        switch trigger.action {
        case .rollback:
            breaches[app] = nil
            return .failed(failing(app, release: release, tree: tree, reason: reason))
        case .notify:
            // Once per breach: offered again only after the query was under its threshold.
            if suggested.insert(key).inserted { steps.append(.record(.rollback(.suggested(app: app, release: release, reason: reason)))) }
            return .clear
        case .log:
            if since == now || (now - since) % 60_000 < options.analysisInterval { logger.warning("\(app): \(reason) (action \(trigger.action.rawValue))") }
            return .clear
        }
    }
}
