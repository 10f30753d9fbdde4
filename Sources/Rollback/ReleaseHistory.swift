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
        try load(repo, config: config, tip: tip, useCache: useCache, limit: limit, detailsWhere: details ? { _ in true } : nil)
    }

    /// `load`, filling in details only for the releases `detailsWhere`
    /// picks (the audit needs them for rollbacks and what they undid, not
    /// for every release of a long history).
    public static func load(_ repo: DeployRepository, config: RepoConfig, tip: OID, useCache: Bool = true, limit: Int? = nil,
                            detailsWhere: ((Release) -> Bool)?) throws -> ReleaseHistory {
        let apps = config.apps
        let key = ([repo.branchRef] + apps.map { "\($0.name)=\($0.path)" }).joined(separator: ";")
        let directory = ReleaseIndex.directory(gitDirectory: repo.git.gitDirectory, key: key)
        var index = useCache ? ReleaseIndex.load(directory: directory, key: key, appCount: apps.count)
                             : ReleaseIndex(directory: directory, key: key, appCount: apps.count)
        if index.tip != tip {
            try GitRuntime.withoutObjectCache { try update(&index, repo, apps: apps, tip: tip) }
        }
        let (releases, totals) = assemble(&index, apps: apps, limit: limit)
        var history = ReleaseHistory(tip: tip, releases: releases, totals: totals)
        if let detailsWhere { history.fillDetails(repo, apps: apps, index: &index, where: detailsWhere) }
        if useCache && index.isDirty { index.save() }
        return history
    }

    /// Brings the index up to `tip`: extends it when the old tip is on the
    /// first-parent chain, else rebuilds it.
    private static func update(_ index: inout ReleaseIndex, _ repo: DeployRepository, apps: [AppRef], tip: OID) throws {
        // Records are encoded into the index as the walk finds them,
        // newest first; finishNewestFirst() orders and numbers them.
        let scanner = try gitStep("opening the object database") { try ReleaseScanner(git: repo.git, paths: apps.map(\.path) + [PinSet.fileName]) }
        func walk(stoppingAt stop: OID?, into target: inout ReleaseIndex) throws -> Bool {
            try gitStep("walking the history of \(repo.branchName)") {
                try scanner.scan(from: tip, stoppingAt: stop) { change in
                    for record in records(repo, apps: apps, change: change).reversed() { target.appendNewestFirst(record) }
                }
            }
        }
        var extended = index
        if let stop = index.tip, try walk(stoppingAt: stop, into: &extended) {
            index = extended
        } else {
            // No index yet, or the old tip is gone from the chain (history
            // was rewritten): build it from nothing.
            index.reset()
            _ = try walk(stoppingAt: nil, into: &index)
        }
        index.finishNewestFirst()
        index.tip = tip
    }

    /// Turns one changed commit into per-app records, in app order.
    private static func records(_ repo: DeployRepository, apps: [AppRef], change: ChangeRecord) -> [NewRecord] {
        let commit = change.header
        // Only a message with a marker is read at all (`markedMessage`).
        let classified = commit.markedMessage.map { CommitKind(message: $0) }
        var treeChanges = [(OID?, OID?)?](repeating: nil, count: apps.count)
        var pinChanges: [String: ReleaseKind] = [:]
        for (leaf, before, after) in change.changes {
            if leaf < apps.count {
                treeChanges[leaf] = (before, after)
            } else {
                pinChanges = pinDifferences(repo, before: before, after: after)
            }
        }
        let summary = commit.summary
        var result: [NewRecord] = []
        for (index, app) in apps.enumerated() {
            let trees = treeChanges[index]
            let pinKind = pinChanges.isEmpty ? nil : pinChanges[app.name]
            guard trees != nil || pinKind != nil else { continue }
            var kind = classified?.kind ?? .deploy
            let target = classified?.target(for: app.name)
            let exact = classified?.isExactRevert ?? false
            if let pinKind, classified?.trailers == nil { kind = pinKind }
            let current = change.leafIDs[index]
            result.append(NewRecord(
                commit: change.commit, app: index, tree: current, previousTree: trees.map { $0.0 } ?? current,
                treeChanged: trees != nil, kind: kind, target: target, reverts: exact && trees != nil,
                time: commit.authorTime, offset: commit.authorOffsetMinutes,
                author: commit.authorName, email: commit.authorEmail, summary: summary))
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

    /// Reads the newest `limit` releases of each app (all when nil) from
    /// the end of the index, marking those that later rollbacks undid: a
    /// revert undoes exactly its target; a rollback or pin undoes every
    /// release since the last one whose tree it restored; when several
    /// rollbacks cover a release, the earliest is named.
    static func assemble(_ index: inout ReleaseIndex, apps: [AppRef], limit: Int?) -> ([String: [Release]], [String: Int]) {
        let n = apps.count
        let need = index.totals.map { total in limit.map { min($0, total) } ?? total }
        var remaining = need.filter { $0 > 0 }.count
        var collected = [[Release]](repeating: [], count: n)
        var exactMarks = [[OID: (position: Int, by: OID)]](repeating: [:], count: n)
        var rangeMarks = [[(restored: OID?, position: Int, by: OID)]](repeating: [], count: n)
        var i = index.count - 1
        while i >= 0 && remaining > 0 {
            defer { i -= 1 }
            guard let r = index.record(i), r.app < n, collected[r.app].count < need[r.app] else { continue }
            let a = r.app
            var mark = exactMarks[a][r.commit]
            rangeMarks[a].removeAll { $0.restored == r.tree }
            for range in rangeMarks[a] where mark == nil || range.position < (mark?.position ?? 0) {
                mark = (range.position, range.by)
            }
            collected[a].append(Release(
                app: apps[a].name, number: r.number, commit: r.commit, tree: r.tree, previousTree: r.previousTree,
                kind: r.kind, target: r.target, reverts: r.reverts, author: "", email: "", time: r.time,
                offsetMinutes: r.offset, summary: "", rolledBackBy: mark?.by, stringOffset: r.stringOffset))
            if collected[a].count == need[a] { remaining -= 1 }
            if r.kind == .rollback || (r.kind == .pin && r.treeChanged) {
                if r.reverts, let target = r.target {
                    exactMarks[a][target] = (i, r.commit)
                } else {
                    rangeMarks[a].append((r.tree, i, r.commit))
                }
            }
        }
        var releases: [String: [Release]] = [:]
        var totals: [String: Int] = [:]
        for (a, app) in apps.enumerated() {
            releases[app.name] = collected[a].reversed()
            totals[app.name] = a < index.totals.count ? index.totals[a] : 0
        }
        return (releases, totals)
    }

    /// Fills author, email, summary and version labels of the loaded
    /// releases, reading each app tree's app.yaml once (and remembering it in
    /// the cache).
    mutating func fillDetails(_ repo: DeployRepository, apps: [AppRef], index: inout ReleaseIndex, where wanted: (Release) -> Bool) {
        var trees: Set<OID> = []
        for list in releases.values {
            for r in list where wanted(r) {
                if let tree = r.tree { trees.insert(tree) }
                if let tree = r.previousTree { trees.insert(tree) }
            }
        }
        var known = index.versions(of: trees)
        func version(_ tree: OID?) -> String? {
            guard let tree else { return nil }
            if let found = known[tree] { return found.isEmpty ? nil : found }
            var found = ""
            if let entry = try? repo.git.entry(in: tree, path: AppSpec.fileName), entry.kind == .blob,
               let bytes = try? repo.git.blob(entry.id) {
                found = AppSpec.quickVersion(bytes) ?? AppSpec.parse(String(decoding: bytes, as: UTF8.self), file: AppSpec.fileName).spec?.version ?? ""
            }
            known[tree] = found
            index.remember(version: found, of: tree)
            return found.isEmpty ? nil : found
        }
        for app in apps {
            guard var list = releases[app.name] else { continue }
            releases[app.name] = nil  // hold the only reference while mutating
            for i in list.indices where wanted(list[i]) {
                (list[i].author, list[i].email, list[i].summary) = index.strings(at: list[i].stringOffset)
                list[i].version = version(list[i].tree)
                list[i].previousVersion = version(list[i].previousTree)
            }
            releases[app.name] = list
        }
    }
}
