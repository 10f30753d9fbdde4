import DeployModel
import GitKit
import ReconcilerStatus

/// What a pass needs for a staged rollout across hosts (`rollout:` of an
/// app, `--host`): this host, the fleet, what each host last published
/// (its own ref, and the others' fetched from the git host), and the time.
struct FleetSnapshot {
    let host: String
    let hosts: [HostSpec]
    let reports: [String: FleetStages.HostReport]
    /// Wall ms: hosts publish wall-clock times.
    let now: Int64

    /// Why this host does not apply `ref`'s `tree` yet, or nil: it may.
    func hold(_ ref: AppRef, tree: OID, waitingSince: Int64?, skipped: inout [String]) -> StageHold? {
        guard let rollout = ref.rollout, let placement = ref.placement else { return nil }
        return FleetStages.hold(app: ref.name, rollout: rollout, placed: placement.select(hosts), host: host, tree: tree.hex,
                                reports: reports, now: now, waitingSince: waitingSince, skipped: &skipped)
    }
}

extension Reconciler {
    /// A held release is looked at again this often (monotonic ms): the
    /// other hosts' status arrives with each fetch of the mirror.
    static let stageRecheck: Int64 = 500

    /// The fleet as this pass sees it; nil without `--host`, or when no app
    /// placed here rolls out in stages.
    func fleetSnapshot(_ desired: DesiredView) -> FleetSnapshot? {
        guard let host = options.host, desired.config.apps.contains(where: { $0.rollout != nil }) else { return nil }
        return FleetSnapshot(host: host, hosts: desired.config.hosts, reports: FleetReport.reports(repo.git), now: clock.wallMilliseconds())
    }
}
