import Artifacts
import DeployModel
import GitKit
import ReconcilerStatus
import Rollback
import SystemSupport

/// One check of one app's `updates:`: ask the registry for the newest tag
/// the policy accepts, and write an update commit for it through the same
/// compare-and-swap writer as every rollback, unless
/// - the app already runs it,
/// - a pin holds the app,
/// - that digest was rolled back (until a newer one appears or `rewind allow`),
/// - or the current release is not yet healthy through its soak window
///   (one update per app at a time, so an update and an automatic rollback
///   cannot loop).
public struct UpdateProposer {
    let repo: DeployRepository
    let store: StateStore
    let artifacts: ArtifactStore
    /// `Rewind-Actor` of update commits.
    let actor: String
    let now: () -> Int64

    public init(repo: DeployRepository, store: StateStore, artifacts: ArtifactStore, actor: String = "rewind@\(Clock.hostName())",
                now: @escaping () -> Int64 = { Clock.wallMilliseconds() }) {
        (self.repo, self.store, self.artifacts, self.actor, self.now) = (repo, store, artifacts, actor, now)
    }

    /// Checks `app` against the tip and writes its update when one is due.
    public func check(_ name: String) -> UpdateCheck {
        let checkedAt = now()
        do {
            let tip = try repo.tip()
            let tipTree = try gitStep("reading the tip") { try repo.git.commit(tip).tree }
            let config = try repo.config(tree: tipTree)
            guard let app = config.app(named: name), let tree = try repo.appTree(app, in: tipTree), let spec = repo.appSpec(appTree: tree, app: app),
                  let policy = spec.updates, case .oci(let current) = spec.artifact?.source else {
                return UpdateCheck(state: .failed, checkedAt: checkedAt, message: "\(name) has no updates: with an OCI artifact at \(tip.short)")
            }
            let newest: (tag: String, digest: String)
            do {
                newest = try artifacts.newest(policy)
            } catch {
                return UpdateCheck(state: .failed, checkedAt: checkedAt, message: "cannot ask the registry: \(error)")
            }
            var result = UpdateCheck(state: .current, checkedAt: checkedAt, tag: newest.tag, digest: newest.digest, message: "")
            if current.digest == newest.digest {
                result.message = "runs \(newest.tag), the newest version its tag policy accepts"
                return result
            }
            if try repo.pins(tree: tipTree).pins[name] != nil {
                (result.state, result.message) = (.held, "held by a pin: \(newest.tag) is not proposed until `rewind unpin \(name)`")
                return result
            }
            if let blocked = try RolledBackDigests.load(repo, config: config, tip: tip, app: app).blocking(newest.digest) {
                (result.state, result.message) = (.blocked, "not proposed: \(blocked.describe(app: name)); it is proposed again once a newer version appears, "
                                                  + "or after `rewind allow \(name) \(newest.tag)`")
                return result
            }
            if !config.windows.isEmpty, let why = ChangeCalendar(config.windows, at: now()).hold(app: name, rollback: false) {
                (result.state, result.message) = (.waiting, "\(newest.tag) waits for the change window: \(why)")
                return result
            }
            if let why = try soaking(name, tree: tree, soak: config.policy.soak) {
                (result.state, result.message) = (.waiting, "\(newest.tag) waits: \(why)")
                return result
            }
            let reference = OCIReference(registry: policy.repository.registry, repository: policy.repository.repository, tag: newest.tag, digest: newest.digest)
            return write(name, to: reference, result)
        } catch let error as RewindError {
            return UpdateCheck(state: .failed, checkedAt: checkedAt, message: error.message + (error.hint.map { " (\($0))" } ?? ""))
        } catch {
            return UpdateCheck(state: .failed, checkedAt: checkedAt, message: "\(error)")
        }
    }

    /// Why the app's current release is not yet through its soak window, or
    /// nil when it is: applied, healthy for `soak`, and no rollout under way.
    func soaking(_ name: String, tree: OID, soak: Duration) throws -> String? {
        guard let state = store.loadApp(name), let instance = state.instance, instance.tree == tree, state.pending == nil else {
            return "the current release of \(name) is not applied yet"
        }
        if state.rollout != nil { return "a rollout of \(name) is under way" }
        guard state.health == .healthy, let since = state.healthySince else { return "the current release of \(name) is \(state.health.rawValue), not healthy" }
        let end = since + soak.milliseconds
        if end > now() { return "the current release of \(name) soaks until \(Clock.iso8601UTC(milliseconds: end, fraction: false))" }
        return nil
    }

    private func write(_ name: String, to reference: OCIReference, _ found: UpdateCheck) -> UpdateCheck {
        var result = found
        let request = RollbackRequest(.update(name, to: reference), reason: "\(reference.tag ?? "a new version") is the newest tag the tag policy accepts",
                                      by: RequestAuthor(trigger: .registry, actor: actor, artifactRoot: nil, artifacts: artifacts))
        do {
            switch try CommitWriter(repo: repo).run(request) {
            case let .written(commit, plan, _):
                let proposal = MirrorJournal(repo)?.proposal(for: plan)
                result.state = .proposed
                result.commit = commit?.hex
                result.message = "update commit \(commit?.short ?? "?") moves \(name) to \(reference.tag ?? "?")"
                    + (proposal.map { " (proposed on branch \(shortBranchName($0)): merge it to apply)" } ?? "")
            case .alreadyDone(let why):
                // A proposal branch for this tip exists: it waits for its merge.
                (result.state, result.message) = (why.hasPrefix("already proposed") ? .proposed : .current, why)
            }
        } catch let error as RewindError {
            result.state = error.message.hasPrefix("not proposed") ? .blocked : .failed
            result.message = error.message + (error.hint.map { " (\($0))" } ?? "")
        } catch {
            (result.state, result.message) = (.failed, "\(error)")
        }
        return result
    }
}
