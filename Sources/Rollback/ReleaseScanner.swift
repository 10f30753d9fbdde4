import DeployModel
import GitKit

/// One commit on the first-parent chain that changed at least one watched path.
struct ChangeRecord {
    var commit: OID
    var header: CommitHeader
    /// For each watched leaf that changed: its index, the id before and after.
    var changes: [(leaf: Int, before: OID?, after: OID?)]
    /// The id of every watched leaf at this commit.
    var leafIDs: [OID?]
}

/// Walks the first-parent chain and reports which watched paths (app
/// directories and the pins file) change in each commit. Compares tree ids
/// top-down along a trie of the watched paths, so that a commit costs one
/// commit lookup plus one tree lookup per changed directory on the way.
struct ReleaseScanner {
    private struct Node {
        var name: String
        var parent: Int
        var children: [Int] = []
        var leaf: Int?
    }

    private let reader: ObjectReader
    private var nodes: [Node] = [Node(name: "", parent: -1)]
    /// Node index of each leaf, in the order the paths were given.
    private var leafNodes: [Int] = []

    /// Per directory node: its children's names as bytes, and whether each may be a file.
    private var queries: [ChildQuery] = []

    init(git: Repository, paths: [String]) throws {
        reader = try ObjectReader(git, messageMarkers: RollbackTrailers.messageMarkers)
        for (leaf, path) in paths.enumerated() {
            var current = 0
            for part in path.split(separator: "/").map(String.init) {
                if let existing = nodes[current].children.first(where: { nodes[$0].name == part }) {
                    current = existing
                } else {
                    nodes.append(Node(name: part, parent: current))
                    nodes[current].children.append(nodes.count - 1)
                    current = nodes.count - 1
                }
            }
            nodes[current].leaf = leaf
            leafNodes.append(current)
        }
        queries = nodes.map { node in
            ChildQuery(names: node.children.map { nodes[$0].name },
                       acceptsBlob: node.children.map { nodes[$0].leaf != nil && nodes[$0].children.isEmpty })
        }
    }

    /// The id of each node under a root tree; nil where the path is absent.
    /// Where `known` (the ids under another root) agrees on a directory, the
    /// ids below it are copied instead of read.
    private func resolve(root: OID, known: [OID?]?) throws -> [OID?] {
        var ids = [OID?](repeating: nil, count: nodes.count)
        var same = [Bool](repeating: false, count: nodes.count)
        ids[0] = root
        same[0] = known?[0] == root
        // Nodes are stored parents-first, so one pass in index order suffices.
        for index in nodes.indices where !nodes[index].children.isEmpty {
            let children = nodes[index].children
            if same[index], let known {
                for child in children { ids[child] = known[child]; same[child] = true }
                continue
            }
            guard let tree = ids[index] else { continue }
            let found = try reader.childIDs(of: tree, queries[index])
            for (child, id) in zip(children, found) {
                guard let id else { continue }
                ids[child] = id
                same[child] = known?[child] == id
            }
        }
        return ids
    }

    /// Walks from `tip` towards the root along first parents, newest first,
    /// stopping before `stop` (exclusive) when it is met, and hands each
    /// commit that changed a watched path to `onChange`. Returns whether
    /// `stop` was met.
    func scan(from tip: OID, stoppingAt stop: OID?, onChange: (ChangeRecord) throws -> Void) throws -> Bool {
        var commit = tip
        var step = try reader.commitHeader(commit)
        var ids = try resolve(root: step.tree, known: nil)
        while true {
            if commit == stop { return true }
            var parentIDs = [OID?](repeating: nil, count: nodes.count)
            var parentStep: CommitHeader?
            if let parent = step.firstParent {
                let header = try reader.commitHeader(parent)
                parentStep = header
                parentIDs = try resolve(root: header.tree, known: ids)
            }
            let changes = differences(ids, parentIDs)
            if !changes.isEmpty {
                try onChange(ChangeRecord(commit: commit, header: step, changes: changes, leafIDs: leafNodes.map { ids[$0] }))
            }
            guard let parent = step.firstParent, let parentStep else { return false }
            commit = parent
            step = parentStep
            ids = parentIDs
        }
    }

    private func differences(_ ids: [OID?], _ parentIDs: [OID?]) -> [(leaf: Int, before: OID?, after: OID?)] {
        guard parentIDs[0] != ids[0] else { return [] }
        return leafNodes.enumerated().compactMap { leaf, node in
            parentIDs[node] != ids[node] ? (leaf, parentIDs[node], ids[node]) : nil
        }
    }
}
