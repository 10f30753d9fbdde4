import DeployModel
import GitKit
import ReconcilerStatus
import Remote
import Rollback
import SystemSupport

/// A host of a fleet (`--host NAME`) publishes what it runs under
/// `refs/rewind/hosts/NAME`: a commit without parents holding
/// `status.json`, replaced on every change and at least every `hostStatusInterval` (default a
/// minute), so others can tell a silent host from a stale one. Only this host writes
/// it, and the mirror pushes it with a force refspec; since each commit has
/// no parent, the ref never holds more than one commit, tree and blob.
extension Reconciler {
    func publishHostStatus() {
        guard let host = options.host else { return }
        let now = clock.monotonicMilliseconds()
        if let last = hostStatusWritten, now - last.at < 1_000 { return }
        let fields = hostStatusFields(host)
        let content = JSON.object(fields).serialised
        if let last = hostStatusWritten, last.content == content, now - last.at < options.hostStatusInterval { return }
        do {
            let git = repo.git
            let wall = clock.wallMilliseconds()
            // When this host's mirror last reached the git host: written along, but no reason to write by itself
            // (every sync would change it, and each write triggers a sync).
            let lastSync = RemoteSyncStatus.read(gitDirectory: git.gitDirectory)?.lastSuccessAt
            let document = JSON.object(fields + [("writtenAt", .string(Clock.iso8601UTC(milliseconds: wall))), ("writtenAtMilliseconds", .number(wall)),
                                                    ("lastSyncMilliseconds", lastSync.map { .number($0) } ?? .null),
                                                    ("heartbeatMilliseconds", .number(options.hostStatusInterval))])
                .bytes(indent: 2) + [10]
            let blob = try git.writeBlob(document)
            let tree = try git.replacingEntry(in: try git.emptyTree(), path: "status.json", with: TreeEntry(name: "status.json", id: blob, kind: .blob, mode: 0o100644))
            let signature = git.defaultSignature(now: wall / 1000)
            let commit = try git.createCommit(tree: tree, parents: [], message: "rewind: status of host \(host)\n", author: signature, committer: signature)
            let reference = Mirror.hostRefs + host
            try git.updateReference(reference, to: commit, expecting: try git.referenceTarget(reference), logMessage: "rewind: host status")
            hostStatusWritten = (content, now)
            // The mirror pushes it now, not at its next interval: later stages wait for it.
            options.onWrite()
        } catch {
            logger.warning("cannot write this host's status under \(Mirror.hostRefs)\(host): \(error); trying again in a second")
            hostStatusWritten = (hostStatusWritten?.content ?? "", now)
        }
    }

    /// What this host runs: the last commit applied and each app's version, tree, health and last error.
    private func hostStatusFields(_ host: String) -> [(String, JSON)] {
        let apps = state.apps.keys.sorted().map { name -> JSON in
            let app = state.apps[name] ?? AppState()
            return .object([("app", .string(name)), ("version", .optional(app.instance?.version)), ("tree", .optional(app.instance?.tree.hex)),
                            ("health", .string(app.health.rawValue)), ("lastError", .optional(app.lastError)),
                            ("healthySince", app.health == .healthy ? app.healthySince.map { .number($0) } ?? .null : .null),
                            ("stage", app.stageHold?.published ?? .null)])
        }
        return [("host", .string(host)), ("lastApplied", .optional(state.lastApplied?.hex)), ("apps", .array(apps))]
    }
}
