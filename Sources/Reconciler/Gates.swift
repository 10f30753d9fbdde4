import DeployModel
import GitKit
import Remote
import ReconcilerStatus
import Rollback

extension Reconciler {
    /// Gate 2: the tip must descend from the last commit acted on.
    func ancestryGate(_ tip: OID) -> GateResult {
        guard var anchor = state.lastApplied, anchor != tip else { return .proceed }
        // A rollback commit a mirror replaced (the remote had moved; it was
        // planned again on the remote's tip) is not part of the history: its
        // successor descends from its parent.
        let replaced = ReplacedCommits(gitDirectory: repo.git.gitDirectory).all()
        while replaced.contains(anchor.hex), let parent = try? repo.git.commit(anchor).parents.first { anchor = parent }
        if (try? repo.git.isDescendant(tip, of: anchor)) ?? false { return .proceed }
        return .halted("history rewritten: the tip \(tip.short) of \(repo.branchName) does not descend from \(anchor.short), the last commit applied; "
            + "reconciliation is halted. Check the new history, then run `rewind reconcile --accept-rewrite \(tip.short)`")
    }

    /// Gate 3b: the signature policy (`--verify`, raised by rewind.yaml's
    /// `policy.verify`): the tip, or every new commit, must be signed by an
    /// allowed signer. A tip that fails is refused like an invalid one.
    func signatureGate(_ tip: OID) -> GateResult {
        guard let desired else { return .proceed }
        let level = max(options.verify, SignaturePolicy(rawValue: desired.config.policy.verify) ?? .none)
        guard level != .none, verifiedTip != tip else { return .proceed }
        var commits = [tip]
        if level == .all, let anchor = state.lastApplied, anchor != tip, let range = try? repo.git.commits(inRange: "\(anchor)..\(tip.hex)") {
            commits = range
        }
        let verifier = SignatureVerifier(allowedSigners: options.allowedSigners)
        for commit in commits {
            guard let problem = verifier.problem(with: commit, in: repo.git) else { continue }
            return .refused(RefusedCommit(commit: tip, message: "signature policy '\(level.rawValue)': \(problem)", details: []))
        }
        verifiedTip = tip
        return .proceed
    }

    /// Gate 3: the tip's desired state, valid as a whole (kept in `desired`),
    /// or refused. A tip this state directory already validated and applied
    /// is not parsed again.
    func validationGate(_ tip: OID) -> GateResult {
        if let desired, desired.commit == tip { return .proceed }
        if state.tip == tip, state.lastApplied == tip, state.invalid == nil, let view = try? DesiredView(trusted: tip, repo: repo, host: options.host) {
            desired = view
            return .proceed
        }
        do {
            let loaded = try DesiredState.load(repo, commit: tip, limits: options.limits)
            desired = DesiredView(validated: loaded, repo: repo, host: options.host)
            if let why = loaded.config.unknownHost(options.host) { logger.warning("\(why); add it to hosts: and place apps on it") }
            return .proceed
        } catch let error as RewindError {
            return .refused(RefusedCommit(commit: tip, message: error.message, details: error.diagnostics.map { "\($0)" }))
        } catch {
            return .retry("\(error)")
        }
    }
}
