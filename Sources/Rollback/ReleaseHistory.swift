import DeployModel
import GitKit

/// Every app's releases on the followed branch.
///
/// Releases come from the first-parent chain: a commit is a release of app A
/// when A's directory tree id differs from its first parent's, or when it
/// changes A's entry in the pins file. The record list is cached in the git
/// directory and extended incrementally when the branch moves forward.
public struct ReleaseHistory: Sendable {
    public let tip: OID
    /// Releases per app, oldest first, numbered from 1.
    public private(set) var releases: [String: [Release]]

    /// Releases of one app, oldest first.
    public func of(_ app: String) -> [Release] { releases[app] ?? [] }

    /// Loads the history of `config`'s apps up to `tip`, using and refreshing
    /// the cache unless `useCache` is false.
    /// Version labels are read for the newest `versionLimit` releases of each
    /// app (all when nil).
    public static func load(_ repo: DeployRepository, config: RepoConfig, tip: OID, useCache: Bool = true, versionLimit: Int? = nil) throws -> ReleaseHistory {
        let apps = config.apps
        let key = ([repo.branchRef] + apps.map { "\($0.name)=\($0.path)" }).joined(separator: ";")
        let cachePath = ReleaseCache.path(gitDirectory: repo.git.gitDirectory, key: key)
        var cache = (useCache ? ReleaseCache.load(from: cachePath, key: key) : nil) ?? ReleaseCache(key: key)
        let changed = cache.tip != tip
        if changed {
            let scanner = ReleaseScanner(git: repo.git, paths: apps.map(\.path) + [PinSet.fileName])
            let (changes, reachedStop) = try gitStep("walking the history of \(repo.branchName)") {
                try scanner.scan(from: tip, stoppingAt: cache.tip)
            }
            if !reachedStop { cache.records = [] }
            let fresh = try changes.reversed().flatMap { try records(repo, apps: apps, change: $0) }
            cache.records += fresh
            cache.tip = tip
        }
        var history = ReleaseHistory(tip: tip, releases: assemble(cache.records, apps: apps))
        let versionsBefore = cache.versions.count
        history.fillVersions(repo, apps: apps, limit: versionLimit, versions: &cache.versions)
        if useCache && (changed || cache.versions.count != versionsBefore) { cache.save(to: cachePath) }
        return history
    }

    /// Turns one changed commit into per-app records.
    private static func records(_ repo: DeployRepository, apps: [AppRef], change: ChangeRecord) throws -> [ReleaseRecord] {
        let commit = try gitStep("reading commit \(change.commit.short)") { try repo.git.commit(change.commit) }
        let trailers = RollbackTrailers.parse(commit.message)
        let revertTarget = trailers == nil ? RollbackTrailers.gitRevertTarget(commit.message) : nil
        var treeChanges: [String: (OID?, OID?)] = [:]
        var pinChanges: [String: ReleaseKind] = [:]
        for (leaf, before, after) in change.changes {
            if leaf < apps.count {
                treeChanges[apps[leaf].name] = (before, after)
            } else {
                pinChanges = pinDifferences(repo, before: before, after: after)
            }
        }
        return apps.compactMap { app -> ReleaseRecord? in
            let trees = treeChanges[app.name]
            let pinKind = pinChanges[app.name]
            guard trees != nil || pinKind != nil else { return nil }
            var kind: ReleaseKind = .deploy
            var target: OID?
            var exact = false
            if let trailers {
                switch trailers.action {
                case .revert: kind = .rollback; exact = true
                case .rollback: kind = .rollback
                case .pin: kind = .pin
                case .unpin: kind = .unpin
                }
                target = trailers.target(for: app.name)
            } else if let revertTarget {
                kind = .rollback
                target = revertTarget
                exact = true
            }
            if let pinKind, trailers == nil { kind = pinKind }
            let (before, after) = trees ?? (nil, nil)
            let unchangedTree = trees == nil
            return ReleaseRecord(
                commit: change.commit, app: app.name,
                before: unchangedTree ? nil : before, after: unchangedTree ? nil : after,
                kind: kind, target: target, revertsExactly: exact && !unchangedTree,
                time: commit.author.time, offset: commit.author.offsetMinutes,
                author: commit.author.name, email: commit.author.email, summary: commit.summary)
        }
    }

    /// Which apps gained (pin) or lost (unpin) an entry between two pins blobs.
    private static func pinDifferences(_ repo: DeployRepository, before: OID?, after: OID?) -> [String: ReleaseKind] {
        func pins(_ blob: OID?) -> [String: Pin] {
            guard let blob, let bytes = try? repo.git.blob(blob) else { return [:] }
            return PinSet.parse(String(decoding: bytes, as: UTF8.self)).pins?.pins ?? [:]
        }
        let old = pins(before), new = pins(after)
        var result: [String: ReleaseKind] = [:]
        for (app, pin) in new where old[app] != pin { result[app] = .pin }
        for app in old.keys where new[app] == nil { result[app] = .unpin }
        return result
    }

    /// Numbers records per app and marks releases that later rollbacks undid.
    static func assemble(_ records: [ReleaseRecord], apps: [AppRef]) -> [String: [Release]] {
        var result: [String: [Release]] = [:]
        var treeOf: [String: OID?] = [:]
        for r in records {
            var list = result[r.app] ?? []
            let changedTree = r.before != nil || r.after != nil
            let previous = changedTree ? r.before : (treeOf[r.app] ?? nil)
            let current = changedTree ? r.after : previous
            treeOf[r.app] = current
            list.append(Release(app: r.app, number: list.count + 1, commit: r.commit, tree: current, previousTree: previous,
                                kind: r.kind, target: r.target, reverts: r.revertsExactly, author: r.author, email: r.email, time: r.time,
                                offsetMinutes: r.offset, summary: r.summary))
            if r.kind == .rollback || (r.kind == .pin && changedTree) {
                markRolledBack(&list, by: list.count - 1, exact: r.revertsExactly)
            }
            result[r.app] = list
        }
        for app in apps where result[app.name] == nil { result[app.name] = [] }
        return result
    }

    /// A revert undoes exactly its target; a rollback or pin undoes every
    /// release since the last one whose tree it restored.
    private static func markRolledBack(_ list: inout [Release], by index: Int, exact: Bool) {
        let rollback = list[index]
        if exact, let target = rollback.target, let t = list[..<index].lastIndex(where: { $0.commit == target }) {
            if list[t].rolledBackBy == nil { list[t].rolledBackBy = rollback.commit }
            return
        }
        guard let restored = list[..<index].lastIndex(where: { $0.tree == rollback.tree }) else { return }
        for i in (restored + 1)..<index where list[i].rolledBackBy == nil && list[i].tree != rollback.tree {
            list[i].rolledBackBy = rollback.commit
        }
    }

    /// Sets `version` and `previousVersion` on every release, reading each
    /// app tree's app.yaml once (and remembering it in `versions`).
    mutating func fillVersions(_ repo: DeployRepository, apps: [AppRef], limit: Int?, versions: inout [OID: String]) {
        func version(_ tree: OID?) -> String? {
            guard let tree else { return nil }
            if let known = versions[tree] { return known }
            var found = ""
            if let entry = try? repo.git.entry(in: tree, path: AppSpec.fileName), entry.kind == .blob,
               let bytes = try? repo.git.blob(entry.id) {
                found = AppSpec.quickVersion(bytes) ?? AppSpec.parse(String(decoding: bytes, as: UTF8.self), file: AppSpec.fileName).spec?.version ?? ""
            }
            versions[tree] = found
            return found
        }
        for app in apps {
            guard var list = releases[app.name] else { continue }
            let first = limit.map { max(0, list.count - $0) } ?? 0
            for i in list.indices where i >= first {
                list[i].version = version(list[i].tree).flatMap { $0.isEmpty ? nil : $0 }
                list[i].previousVersion = version(list[i].previousTree).flatMap { $0.isEmpty ? nil : $0 }
            }
            releases[app.name] = list
        }
    }
}
