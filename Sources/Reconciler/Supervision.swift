import DeployModel
import GitKit
import Platforms
import SystemSupport

extension Reconciler {
    /// Between passes: restart crashed processes with capped exponential
    /// backoff, probe health, and fail a release that crash-loops or stays
    /// unhealthy within its soak window (which may roll it back).
    package func supervise() {
        guard let desired else { return }
        let policy = desired.config.policy
        var failures: [Failure] = []
        defer { if !failures.isEmpty { _ = automaticRollback(failures) } }
        for (name, app) in state.apps.sorted(by: { $0.key < $1.key }) {
            // A rollout's new version is checked by `superviseTraffic`: a failure aborts it at once.
            guard app.rollout == nil, let instance = app.instance, instance.runsOn == .process, app.health != .failed, app.health != .stopped,
                  let ref = desired.config.app(named: name), let driver = drivers[instance.runsOn],
                  let deployment = deployment(of: instance, ref) else { continue }
            if app.health == .restarting {
                if clock.wallMilliseconds() >= app.nextRestartAt ?? 0 { restart(name, deployment, driver) }
                continue
            }
            switch driver.observe(instance, deployment, thorough: false) {
            case .exited(let why), .drifted(let why):
                if let failure = processEnded(name, why: why, policy: policy) { failures.append(failure) }
            case .running:
                if let failure = probeIfDue(name, instance, deployment, driver, policy: policy) { failures.append(failure) }
            }
        }
    }

    /// Restarts of a crashed process: 0.5 s, 1 s, 2 s... up to `maxRestartBackoff`.
    var restartBackoff: Backoff { Backoff(base: 500, cap: options.maxRestartBackoff) }

    /// The deployment a running instance was started from (rebuilt after a restart).
    func deployment(of instance: Instance, _ ref: AppRef) -> Deployment? {
        if let known = deployments[instance.tree] { return known }
        guard let tree = OID(hex: instance.tree), let commit = OID(hex: instance.commit),
              let spec = repo.appSpec(appTree: tree, app: ref) else { return nil }
        let step = PlannedStep(ref: ref, spec: spec, tree: tree, action: .none)
        guard let deployment = try? makeDeployment(step, commit: commit) else { return nil }
        deployments[instance.tree] = deployment
        return deployment
    }

    /// A supervised process ended: restart it later, or, when it keeps
    /// crashing within the soak window, fail its release.
    private func processEnded(_ name: String, why: String, policy: RollbackPolicy) -> Failure? {
        let now = clock.wallMilliseconds()
        guard let app = state.apps[name], let instance = app.instance else { return nil }
        let soakStart = app.healthySince ?? now
        let inSoak = now - soakStart <= policy.soak.milliseconds
        let exits = (app.exits + [now]).filter { $0 >= soakStart && now - $0 <= policy.soak.milliseconds }
        if inSoak && exits.count >= policy.crashLoopRestarts, let tree = OID(hex: instance.tree) {
            let release = app.release ?? tree
            record(.supervision(.crashLooping(app: name, exits: exits)))
            return fail(name, release: release, tree: tree,
                        reason: "crash-looping: exited \(exits.count) times within \(Int(Double(now - soakStart) / 1000))s of becoming healthy (last: \(why))")
        }
        record(.supervision(.restarting(app: name, why: why, backoffMilliseconds: restartBackoff.delay(attempt: app.restarts + 1), exits: exits)))
        return nil
    }

    private func restart(_ name: String, _ deployment: Deployment, _ driver: any PlatformDriver) {
        do {
            record(.supervision(.restarted(app: name, try driver.start(deployment) { _ in })))
        } catch {
            record(.supervision(.restartFailed(app: name, "\(error)", backoffMilliseconds: restartBackoff.delay(attempt: (state.apps[name]?.restarts ?? 1) + 1))))
        }
    }

    /// Probes health every `health.interval` (faster while starting). A
    /// release unhealthy for `health.timeout` within its soak window fails.
    private func probeIfDue(_ name: String, _ instance: Instance, _ deployment: Deployment, _ driver: any PlatformDriver, policy: RollbackPolicy) -> Failure? {
        let mono = clock.monotonicMilliseconds()
        guard mono >= nextProbe[name] ?? 0, let before = state.apps[name] else { return nil }
        let interval = deployment.spec.health?.interval.milliseconds ?? 1_000
        nextProbe[name] = mono + (before.health == .healthy ? interval : min(interval, 100))
        let problem = driver.healthProblem(instance, deployment)
        if problem == "starting" { return nil }
        record(.supervision(.probed(app: name, instance, problem: problem)))
        let now = clock.wallMilliseconds()
        let timeout = deployment.spec.health?.timeout.milliseconds ?? 60_000
        guard let app = state.apps[name], let since = app.unhealthySince, now - since >= timeout, let soakStart = app.healthySince,
              now - soakStart <= policy.soak.milliseconds, let tree = OID(hex: instance.tree) else { return nil }
        let release = app.release ?? tree
        return fail(name, release: release, tree: tree, reason: "unhealthy for \(Duration(milliseconds: now - since)) during its soak window: \(problem ?? "")")
    }
}
