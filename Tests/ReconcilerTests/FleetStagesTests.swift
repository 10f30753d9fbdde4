import DeployModel
import ReconcilerStatus
import Testing

/// A staged rollout across hosts, decided by each host from what the others
/// published: batches by stage and maxParallel, the soak between stages,
/// and a silent host that holds the rollout for hostTimeout, then halts it
/// or is gone on without. Pure: no repository, reconciler or clock.
@Suite struct FleetStagesTests {
    let fleet = ["canary-1", "web-1", "web-2", "web-3", "web-4", "db-1"].map { name in
        HostSpec(name: name, labels: name == "canary-1" ? ["tier": "canary"] : name.hasPrefix("web") ? ["role": "web"] : ["role": "db"])
    }
    let tree = String(repeating: "a", count: 40)
    let old = String(repeating: "b", count: 40)

    /// The canary host first (soak 30 s), then the web hosts two at a time; db-1 is placed but in no stage.
    var rollout: FleetRollout {
        var rollout = FleetRollout(stages: [
            .init(selector: HostSelector(labels: ["tier": "canary"]), soak: Duration(milliseconds: 30_000)),
            .init(selector: HostSelector(labels: ["role": "web"]), maxParallel: 2),
        ])
        rollout.hostTimeout = Duration(milliseconds: 60_000)
        return rollout
    }

    func healthy(_ tree: String, since: Int64, at: Int64) -> FleetStages.HostReport {
        FleetStages.HostReport(writtenAt: at, apps: ["api": .init(tree: tree, health: "healthy", healthySince: since)])
    }

    func hold(_ host: String, _ reports: [String: FleetStages.HostReport], now: Int64, since: Int64? = nil, rollout: FleetRollout? = nil) -> (StageHold?, [String]) {
        var skipped: [String] = []
        let hold = FleetStages.hold(app: "api", rollout: rollout ?? self.rollout, placed: fleet, host: host, tree: tree, reports: reports, now: now,
                                    waitingSince: since, skipped: &skipped)
        return (hold, skipped)
    }

    @Test func hostsFormBatchesByStageAndMaxParallelAndTheRestComeLast() {
        let batches = FleetStages.batches(rollout, placed: fleet)
        #expect(batches.map(\.hosts) == [["canary-1"], ["web-1", "web-2"], ["web-3", "web-4"], ["db-1"]])
        #expect(batches.map(\.stage) == [0, 1, 1, 2])
        #expect(batches.map(\.soakMilliseconds) == [30_000, 0, 0, 0])
    }

    @Test func theCanaryGoesFirstAndTheNextStageWaitsForItsSoak() {
        #expect(hold("canary-1", [:], now: 0).0 == nil, "the first stage waits for nobody")
        let waiting = hold("web-1", [:], now: 1_000).0
        #expect(waiting?.halted == false)
        #expect(waiting?.reason.contains("canary-1 (stage 1) does not run api yet") == true, "\(waiting?.reason ?? "")")
        // The canary runs the old tree: still waiting.
        #expect(hold("web-1", ["canary-1": healthy(old, since: 0, at: 1_000)], now: 1_000).0?.reason.contains("does not run it yet") == true)
        // Healthy for 10 s of its 30 s soak: waiting, with a fixed end (the status does not change every second).
        let soaking = hold("web-1", ["canary-1": healthy(tree, since: 10_000, at: 20_000)], now: 20_000).0
        #expect(soaking?.reason.contains("soaks it for 30s, until 1970-01-01T00:00:40Z") == true, "\(soaking?.reason ?? "")")
        #expect(hold("web-1", ["canary-1": healthy(tree, since: 10_000, at: 35_000)], now: 35_000, since: 20_000).0 == soaking, "the same hold while it soaks")
        // Soaked: the first web batch goes; the second waits for it, with no soak inside the stage.
        let soaked = ["canary-1": healthy(tree, since: 10_000, at: 40_000)]
        #expect(hold("web-1", soaked, now: 40_000).0 == nil)
        #expect(hold("web-2", soaked, now: 40_000).0 == nil, "maxParallel 2: web-1 and web-2 together")
        #expect(hold("web-3", soaked, now: 40_000).0?.reason.contains("web-1 (stage 2) does not run api yet") == true)
        var batch = soaked
        batch["web-1"] = healthy(tree, since: 41_000, at: 41_000)
        batch["web-2"] = healthy(tree, since: 41_500, at: 41_500)
        #expect(hold("web-3", batch, now: 41_500).0 == nil, "inside a stage, healthy is enough")
        #expect(hold("db-1", batch, now: 41_500).0?.reason.contains("web-3 (stage 2)") == true, "the hosts in no stage come last")
    }

    @Test func aHostThatRunsTheReleaseUnhealthyHoldsTheNextStage() {
        let failing = FleetStages.HostReport(writtenAt: 50_000, apps: ["api": .init(tree: tree, health: "restarting", healthySince: nil)])
        let held = hold("web-1", ["canary-1": failing], now: 50_000).0
        #expect(held?.reason.contains("canary-1 (stage 1) runs it restarting") == true, "\(held?.reason ?? "")")
    }

    @Test func aSilentHostHoldsTheStageForHostTimeoutThenHaltsOrIsSkipped() {
        let silent = ["canary-1": healthy(old, since: 0, at: 0)]
        #expect(hold("web-1", silent, now: 59_000).0?.halted == false, "within hostTimeout: waiting")
        let halted = hold("web-1", silent, now: 61_000).0
        #expect(halted?.halted == true)
        #expect(halted?.reason.contains("canary-1 (stage 1) has not reported since 1970-01-01T00:00:00Z, over rollout.hostTimeout (1m), and onTimeout is halt") == true,
                "\(halted?.reason ?? "")")
        // A host that never reported is silent since this host began to wait.
        #expect(hold("web-1", [:], now: 59_000, since: 0).0?.halted == false)
        let never = hold("web-1", [:], now: 61_000, since: 0).0
        #expect(never?.halted == true && never?.reason.contains("canary-1 (stage 1) has never reported") == true, "\(never?.reason ?? "")")
        #expect(never?.since == 0, "the wait keeps its start")
        var proceeding = rollout
        proceeding.onTimeout = .proceed
        let (none, skipped) = hold("web-1", silent, now: 61_000, rollout: proceeding)
        #expect(none == nil && skipped == ["canary-1"], "onTimeout: proceed goes on without it")
    }

    @Test func aHostOfNoBatchOrAnAppWithOneStageIsNeverHeld() {
        #expect(hold("elsewhere", [:], now: 0).0 == nil, "not one of the app's hosts")
        let one = FleetRollout(stages: [.init(selector: HostSelector(labels: ["role": "web"]))])
        #expect(hold("web-4", [:], now: 0, rollout: one).0 == nil, "one stage, no maxParallel: every web host at once")
    }
}
