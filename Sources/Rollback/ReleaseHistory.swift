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
    /// The newest `limit` releases per app (all when no limit), oldest first.
    public private(set) var releases: [String: [Release]]
    /// How many releases each app has in all.
    public let totals: [String: Int]

    /// The loaded releases of one app, oldest first.
    public func of(_ app: String) -> [Release] { releases[app] ?? [] }

    /// Loads the history of `config`'s apps up to `tip`, using and refreshing
    /// the cache unless `useCache` is false. Only the newest `limit` releases
    /// of each app become `Release` values (all when nil); with `details`,
    /// their author, email, summary and version labels are filled in.
    public static func load(_ repo: DeployRepository, config: RepoConfig, tip: OID, useCache: Bool = true, limit: Int? = nil, details: Bool = true) throws -> ReleaseHistory {
        let apps = config.apps
        let key = ([repo.branchRef] + apps.map { "\($0.name)=\($0.path)" }).joined(separator: ";")
        let cachePath = ReleaseCache.path(gitDirectory: repo.git.gitDirectory, key: key)
        var cache = (useCache ? ReleaseCache.load(from: cachePath, key: key, apps: apps.map(\.name)) : nil) ?? ReleaseCache(key: key)
        let changed = cache.tip != tip
        if changed {
            let (changes, reachedStop) = try gitStep("walking the history of \(repo.branchName)") {
                try ReleaseScanner(git: repo.git, paths: apps.map(\.path) + [PinSet.fileName]).scan(from: tip, stoppingAt: cache.tip)
            }
            if !reachedStop {
                cache.records = []
                cache.strings = []
            }
            for change in changes.reversed() {
                cache.records += records(repo, apps: apps, change: change, cache: &cache)
            }
            cache.tip = tip
        }
        let (releases, totals) = assemble(cache.records, apps: apps, limit: limit)
        var history = ReleaseHistory(tip: tip, releases: releases, totals: totals)
        let versionsBefore = cache.versions.count
        if details { history.fillDetails(repo, apps: apps, cache: &cache) }
        if useCache && (changed || cache.versions.count != versionsBefore) { cache.save(to: cachePath) }
        return history
    }

    /// Turns one changed commit into per-app records.
    private static func records(_ repo: DeployRepository, apps: [AppRef], change: ChangeRecord, cache: inout ReleaseCache) -> [ReleaseRecord] {
        let commit = change.header
        let trailers = RollbackTrailers.mayCarryTrailers(commit.message) ? RollbackTrailers.parse(commit.message) : nil
        let revertTarget = trailers == nil ? RollbackTrailers.gitRevertTarget(commit.message) : nil
        var treeChanges = [(OID?, OID?)?](repeating: nil, count: apps.count)
        var pinChanges: [String: ReleaseKind] = [:]
        for (leaf, before, after) in change.changes {
            if leaf < apps.count {
                treeChanges[leaf] = (before, after)
            } else {
                pinChanges = pinDifferences(repo, before: before, after: after)
            }
        }
        var result: [ReleaseRecord] = []
        for (index, app) in apps.enumerated() {
            let trees = treeChanges[index]
            let pinKind = pinChanges.isEmpty ? nil : pinChanges[app.name]
            guard trees != nil || pinKind != nil else { continue }
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
            let summary = String(commit.message.prefix { $0 != "\n" })
            let strings = cache.addStrings(author: commit.authorName, email: commit.authorEmail, summary: summary)
            result.append(ReleaseRecord(
                commit: change.commit, app: index, before: trees?.0 ?? nil, after: trees?.1 ?? nil,
                kind: kind, target: target, revertsExactly: exact && trees != nil,
                time: commit.authorTime, offset: commit.authorOffsetMinutes, stringOffset: strings))
        }
        return result
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

    /// Numbers records per app, marks releases that later rollbacks undid,
    /// and materialises the newest `limit` of each app.
    static func assemble(_ records: [ReleaseRecord], apps: [AppRef], limit: Int?) -> ([String: [Release]], [String: Int]) {
        var perApp = [[Int32]](repeating: [], count: apps.count)
        var trees = [OID?](repeating: nil, count: records.count)
        var previousTrees = [OID?](repeating: nil, count: records.count)
        var rolledBackBy = [Int32](repeating: -1, count: records.count)
        var treeOf = [OID?](repeating: nil, count: apps.count)
        for (index, r) in records.enumerated() where r.app < apps.count {
            let changedTree = r.before != nil || r.after != nil
            previousTrees[index] = changedTree ? r.before : treeOf[r.app]
            trees[index] = changedTree ? r.after : previousTrees[index]
            treeOf[r.app] = trees[index]
            perApp[r.app].append(Int32(index))
            guard r.kind == .rollback || (r.kind == .pin && changedTree) else { continue }
            // A revert undoes exactly its target; a rollback or pin undoes every
            // release since the last one whose tree it restored.
            let list = perApp[r.app].dropLast()
            if r.revertsExactly, let target = r.target, let t = list.last(where: { records[Int($0)].commit == target }) {
                if rolledBackBy[Int(t)] < 0 { rolledBackBy[Int(t)] = Int32(index) }
            } else if let restored = list.lastIndex(where: { trees[Int($0)] == trees[index] }) {
                for i in list[(restored + 1)...] where rolledBackBy[Int(i)] < 0 && trees[Int(i)] != trees[index] {
                    rolledBackBy[Int(i)] = Int32(index)
                }
            }
        }
        var releases: [String: [Release]] = [:]
        var totals: [String: Int] = [:]
        for (a, app) in apps.enumerated() {
            let list = perApp[a]
            totals[app.name] = list.count
            let first = limit.map { max(0, list.count - $0) } ?? 0
            releases[app.name] = (first..<list.count).map { n in
                let i = Int(list[n]), r = records[i]
                return Release(app: app.name, number: n + 1, commit: r.commit, tree: trees[i], previousTree: previousTrees[i],
                               kind: r.kind, target: r.target, reverts: r.revertsExactly, author: "", email: "", time: r.time,
                               offsetMinutes: r.offset, summary: "", rolledBackBy: rolledBackBy[i] >= 0 ? records[Int(rolledBackBy[i])].commit : nil,
                               stringOffset: r.stringOffset)
            }
        }
        return (releases, totals)
    }

    /// Fills author, email, summary and version labels of the loaded
    /// releases, reading each app tree's app.yaml once (and remembering it in
    /// the cache).
    mutating func fillDetails(_ repo: DeployRepository, apps: [AppRef], cache: inout ReleaseCache) {
        func version(_ tree: OID?) -> String? {
            guard let tree else { return nil }
            if let known = cache.versions[tree] { return known.isEmpty ? nil : known }
            var found = ""
            if let entry = try? repo.git.entry(in: tree, path: AppSpec.fileName), entry.kind == .blob,
               let bytes = try? repo.git.blob(entry.id) {
                found = AppSpec.quickVersion(bytes) ?? AppSpec.parse(String(decoding: bytes, as: UTF8.self), file: AppSpec.fileName).spec?.version ?? ""
            }
            cache.versions[tree] = found
            return found.isEmpty ? nil : found
        }
        for app in apps {
            guard var list = releases[app.name] else { continue }
            releases[app.name] = nil  // hold the only reference while mutating
            for i in list.indices {
                (list[i].author, list[i].email, list[i].summary) = cache.decodeStrings(at: list[i].stringOffset)
                list[i].version = version(list[i].tree)
                list[i].previousVersion = version(list[i].previousTree)
            }
            releases[app.name] = list
        }
    }
}
