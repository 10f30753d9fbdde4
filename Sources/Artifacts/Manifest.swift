import FoundationEssentials

/// An OCI (or Docker v2) image manifest or index, as the distribution API
/// serves it. Only what pulling needs is read.
enum ManifestDocument: Equatable {
    case manifest(Manifest)
    case index([Descriptor])

    struct Descriptor: Equatable, Decodable {
        var mediaType: String?
        var digest: String
        var size: Int64
        var platform: Platform?
        var annotations: [String: String]?
    }

    struct Platform: Equatable, Decodable {
        var os: String?
        var architecture: String?
        var variant: String?
    }

    struct Manifest: Equatable {
        var config: Descriptor?
        var layers: [Descriptor]
    }

    static let manifestTypes = ["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"]
    static let indexTypes = ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"]
    /// The Accept header of a manifest request.
    static let accept = (manifestTypes + indexTypes).joined(separator: ", ")
    /// The largest manifest Rewind reads (the distribution registry's own limit is 4 MiB).
    static let maxBytes = 4 << 20

    private struct Wire: Decodable {
        var schemaVersion: Int?
        var mediaType: String?
        var config: Descriptor?
        var layers: [Descriptor]?
        var manifests: [Descriptor]?
    }

    /// Parses a manifest or an index (`contentType`: the answer's, which
    /// wins over the document's own `mediaType` only when that is absent).
    static func parse(_ bytes: [UInt8], contentType: String?) throws(ArtifactError) -> ManifestDocument {
        guard bytes.count <= maxBytes else { throw ArtifactError("the manifest is \(bytes.count) bytes, over the limit of \(maxBytes)") }
        let wire: Wire
        do {
            wire = try JSONDecoder().decode(Wire.self, from: Data(bytes))
        } catch {
            throw ArtifactError("the manifest is not valid JSON of an OCI manifest or index")
        }
        guard wire.schemaVersion == 2 else { throw ArtifactError("the manifest's schemaVersion is \(wire.schemaVersion.map(String.init) ?? "missing"), not 2") }
        let type = wire.mediaType ?? contentType?.split(separator: ";").first.map { String($0).trimmingCharacters() }
        for descriptor in (wire.layers ?? []) + (wire.manifests ?? []) + [wire.config].compactMap({ $0 }) {
            guard isDigest(descriptor.digest) else { throw ArtifactError("the manifest names '\(descriptor.digest.prefix(80))', not a sha256 digest") }
            guard descriptor.size >= 0 else { throw ArtifactError("the manifest gives \(descriptor.digest) a negative size") }
        }
        if let manifests = wire.manifests, wire.layers == nil || indexTypes.contains(type ?? "") {
            return .index(manifests)
        }
        guard let layers = wire.layers else { throw ArtifactError("the manifest has neither layers nor manifests") }
        return .manifest(Manifest(config: wire.config, layers: layers))
    }

    /// `sha256:` and 64 lower-case hex digits.
    static func isDigest(_ text: String) -> Bool {
        text.hasPrefix("sha256:") && text.utf8.count == 71 && text.utf8.dropFirst(7).allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    /// The entry of an index for this host: linux and its architecture.
    static func choose(_ manifests: [Descriptor], architecture: String = hostArchitecture) throws(ArtifactError) -> Descriptor {
        let linux = manifests.filter { ($0.platform?.os ?? "linux") == "linux" }
        if let match = linux.first(where: { $0.platform?.architecture == architecture }) { return match }
        if manifests.count == 1, manifests[0].platform == nil { return manifests[0] }
        let offered = manifests.map { "\($0.platform?.os ?? "?")/\($0.platform?.architecture ?? "?")" }.joined(separator: ", ")
        throw ArtifactError("the image index has no entry for linux/\(architecture) (it offers \(offered.isEmpty ? "nothing" : offered))")
    }

    static var hostArchitecture: String {
        #if arch(x86_64)
        return "amd64"
        #elseif arch(arm64)
        return "arm64"
        #else
        return "unknown"
        #endif
    }
}
