/// Paths inside an app's files, as written in app.yaml or a symbolic link.
public enum RelativePath {
    /// True when `path`, taken relative to a directory `depth` levels below
    /// the root it must stay in, reaches outside that root (an absolute
    /// path always does).
    public static func leaves(_ path: String, depth: Int = 0) -> Bool {
        if path.hasPrefix("/") { return true }
        var level = depth
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == ".." { level -= 1 } else if part != "." { level += 1 }
            if level < 0 { return true }
        }
        return false
    }
}
