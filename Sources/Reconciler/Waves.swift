import DeployModel
import GitKit
import Platforms
import SystemSupport

extension Reconciler {
    /// Steps 6 and 7 for a whole pass, in dependency waves: the apps whose
    /// dependencies are satisfied start together (at most
    /// `options.concurrency` applies running at once: exec apply commands;
    /// a process starts at once) and are waited for together;
    /// the next wave starts when this one is done. Everything stays on the
    /// reconciler's one thread: starting a process is quick, and waiting is
    /// polling each one's health in turn, so libgit2 handles never cross
    /// threads. A new tip noticed during a wait stops the waits it makes
    /// moot (their apps change again) and ends the pass after the wave, so
    /// that the next pass plans against the new tip. Returns the failures.
    func runWaves(_ steps: [PlannedStep], _ desired: DesiredView, reverse: Bool, tip: OID) -> [Failure] {
        var failures: [Failure] = []
        var flushed = clock.monotonicMilliseconds()
        var tipMoved = false
        for wave in waves(steps, desired, reverse: reverse) {
            var queue = wave[...]
            var inFlight: [DeployMachine] = []
            var nextTipCheck: Int64 = 0
            while !queue.isEmpty || !inFlight.isEmpty {
                // --concurrency 1: one app at a time, started and waited for, as before waves.
                func busy() -> Int { options.concurrency <= 1 ? inFlight.count : inFlight.filter { $0.applying != nil }.count }
                while busy() < max(1, options.concurrency), let step = queue.popFirst() {
                    if step.action == .deploy {
                        let (machine, progress) = beginDeploy(step, tip: tip, background: options.concurrency > 1)
                        if case .done(let failure) = progress { failures += failure.map { [$0] } ?? [] } else { inFlight.append(machine) }
                    } else if let failure = apply(step, tip: tip) {
                        failures.append(failure)
                    }
                    if fatal != nil { return failures }
                }
                inFlight = look(at: inFlight, failures: &failures)
                let now = clock.monotonicMilliseconds()
                if !inFlight.isEmpty && now >= nextTipCheck {
                    nextTipCheck = now + 50
                    if let newTip = try? repo.tip(), newTip != tip {
                        tipMoved = true
                        var wanted: [DeployMachine] = []
                        for var deploy in inFlight {
                            if wantedAgain(deploy.step, at: newTip) { wanted.append(deploy) } else { _ = drive(&deploy, .abandon) }
                        }
                        inFlight = wanted
                        queue = queue.filter { wantedAgain($0, at: newTip) }[...]
                    }
                }
                // In a long pass, write notes about once a second rather than at the end only.
                if now - flushed >= 1_000 {
                    flushNotes()
                    flushed = now
                }
                if !inFlight.isEmpty { clock.sleep(milliseconds: 5) }
            }
            if tipMoved { break }
        }
        return failures
    }

    /// One look at each deploy under way; those that ended are confirmed
    /// (or stopped) together. Returns the deploys still under way.
    private func look(at inFlight: [DeployMachine], failures: inout [Failure]) -> [DeployMachine] {
        var waiting: [DeployMachine] = []
        var done: [(DeployMachine, healthy: Bool)] = []
        for var deploy in inFlight {
            switch drive(&deploy, .look(stopRequested: options.stop.requested)) {
            case .waiting: waiting.append(deploy)
            case .concluded(let healthy): done.append((deploy, healthy))
            case .done(let failure): failures += failure.map { [$0] } ?? []
            }
        }
        // The old versions of the apps that became healthy together are
        // told to stop together; each is then reaped as it is retired.
        for (deploy, healthy) in done where healthy {
            if let retiring = deploy.retiring { drivers[retiring.runsOn]?.requestStop(retiring) }
        }
        for (deploy, _) in done {
            var deploy = deploy
            if case .done(let failure?) = drive(&deploy, .proceed) { failures.append(failure) }
        }
        return waiting
    }

    /// The steps in waves: each app after the apps of the same pass it
    /// depends on (apps already running count as satisfied); a rollback
    /// commit's waves run in reverse.
    func waves(_ steps: [PlannedStep], _ desired: DesiredView, reverse: Bool) -> [[PlannedStep]] {
        let ordered = order(steps, desired, reverse: false)
        let names = Set(ordered.map(\.ref.name))
        var level: [String: Int] = [:]
        for step in ordered {
            let deps = step.ref.dependsOn.filter(names.contains)
            level[step.ref.name] = (deps.compactMap { level[$0] }.max() ?? -1) + 1
        }
        var waves: [[PlannedStep]] = Array(repeating: [], count: (level.values.max() ?? -1) + 1)
        for step in ordered { waves[level[step.ref.name] ?? 0].append(step) }
        return reverse ? waves.reversed() : waves
    }

    /// True when the app still wants the step's tree at `newTip` (its tree
    /// there, or its pin's): a wait for it is not moot.
    private func wantedAgain(_ step: PlannedStep, at newTip: OID) -> Bool {
        guard let tree = try? repo.git.commit(newTip).tree else { return true }
        if let pins = try? repo.pins(tree: tree), let pin = pins.pins[step.ref.name] { return pin.tree == step.tree.hex }
        return (try? repo.appTree(step.ref, in: tree)) == step.tree
    }
}
