/// The `dependsOn` graph of the apps.
public struct DependencyGraph: Sendable {
    private let order: [String]
    private let edges: [String: [String]]

    /// Builds the graph; unknown dependencies are ignored here (validation reports them).
    public init(_ apps: [AppRef]) {
        order = apps.map(\.name)
        var edges: [String: [String]] = [:]
        for app in apps { edges[app.name] = app.dependsOn.filter { dep in apps.contains { $0.name == dep } } }
        self.edges = edges
    }

    /// A cycle as a list of names that starts and ends with the same app, or nil.
    public func cycle() -> [String]? {
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        var stack: [String] = []
        func visit(_ name: String) -> [String]? {
            if state[name] == 2 { return nil }
            if state[name] == 1, let start = stack.firstIndex(of: name) { return Array(stack[start...]) + [name] }
            state[name] = 1
            stack.append(name)
            for dep in edges[name] ?? [] {
                if let found = visit(dep) { return found }
            }
            stack.removeLast()
            state[name] = 2
            return nil
        }
        for name in order {
            if let found = visit(name) { return found }
        }
        return nil
    }

    /// The names in dependency order (dependencies first), keeping the
    /// declared order among independent apps. Assumes no cycle.
    public func deployOrder(_ names: [String]) -> [String] {
        var done: Set<String> = []
        var result: [String] = []
        func visit(_ name: String) {
            guard !done.contains(name) else { return }
            done.insert(name)
            for dep in edges[name] ?? [] { visit(dep) }
            result.append(name)
        }
        for name in order { visit(name) }
        let wanted = Set(names)
        return result.filter { wanted.contains($0) }
    }
}
