/// Artifacts' parsers of outside input, public for the fuzz targets (Fuzz/).
public enum ArtifactInputs {
    /// Parses a registry's manifest or index; a parsed document names only
    /// sha256 digests with sizes that are not negative, and choosing this
    /// host's entry of an index never traps.
    public static func manifest(_ bytes: [UInt8]) -> (parsed: Bool, valid: Bool) {
        guard let document = try? ManifestDocument.parse(bytes, contentType: nil) else { return (false, true) }
        switch document {
        case .manifest(let manifest):
            let descriptors = manifest.layers + [manifest.config].compactMap { $0 }
            return (true, descriptors.allSatisfy { ManifestDocument.isDigest($0.digest) && $0.size >= 0 })
        case .index(let entries):
            _ = try? ManifestDocument.choose(entries)
            return (true, entries.allSatisfy { ManifestDocument.isDigest($0.digest) && $0.size >= 0 })
        }
    }

    /// The tar entry path check: true when an entry named `name` (and, when
    /// `link` is given, a symbolic link to `link`) is accepted. An accepted
    /// path has no `..` and is relative; an accepted link's target, resolved
    /// from where the link is, stays inside the directory.
    public static func entryAccepted(name: String, link: String?) -> (accepted: Bool, staysInside: Bool) {
        guard let components = try? TarExtractor.safeComponents(name) else { return (false, true) }
        let relative = !name.hasPrefix("/") && !components.contains("..") && !components.contains("") && !components.contains { $0.contains("/") }
        guard let link else { return (true, relative) }
        guard !components.isEmpty, (try? TarExtractor.checkSymlink(link, at: components, name: name)) != nil else { return (false, relative) }
        // Resolve lexically from the link's directory: the depth never goes below the root.
        var depth = components.count - 1
        for part in link.split(separator: "/") where part != "." {
            depth += part == ".." ? -1 : 1
            if depth < 0 { return (true, false) }
        }
        return (true, relative && !link.hasPrefix("/"))
    }
}
