
/// Settings of the `container` platform: an OCI image, pinned by digest,
/// run by a container engine through the Docker Engine API. As in
/// Kubernetes, `command` replaces the image's entrypoint and `args` its
/// default arguments.
public struct ContainerSettings: Sendable, Equatable, Codable {
    public var image: OCIReference
    public var command: [String]?
    public var args: [String]?
    public var env: [String: String] = [:]
    /// The port the app listens on inside the container; each version is
    /// published on a port of its own on 127.0.0.1 (`PORT` names the inside one).
    public var port: Int?
    /// `NAME:/path` (a named volume that outlives versions) or
    /// `./dir:/path` (a directory of the app's files, mounted read-only).
    public var volumes: [Volume] = []
    public var user: String?
    /// Bytes.
    public var memory: Int64?
    public var cpus: Double?
    /// How long a container may take to stop before it is killed.
    public var stopTimeout = Duration(milliseconds: 10_000)

    public struct Volume: Sendable, Equatable, Codable {
        /// A volume name, or a path inside the app's files.
        public var source: String
        public var target: String
        public var isBind: Bool { source.hasPrefix("./") || source == "." }
    }

    public init(image: OCIReference) { self.image = image }
}

extension AppSpec {
    static func parseContainer(_ reader: YAMLReader, _ map: Node.Mapping, required: Bool) -> ContainerSettings? {
        guard let node = reader.value(map, "container", parent: "", required: required), let c = reader.mapping(node, field: "container") else { return nil }
        reader.warnUnknown(c, known: ["image", "command", "args", "env", "port", "volumes", "user", "memory", "cpus", "stopTimeout"], parent: "container")
        guard let text = reader.string(c, "image", parent: "container", required: true) else { return nil }
        let imageNode = reader.value(c, "image", parent: "container")
        let image: OCIReference
        switch OCIReference.parse(text) {
        case .failure(let error):
            reader.error(imageNode, field: "container.image", error.message, hint: error.hint)
            return nil
        case .success(let parsed):
            guard parsed.digest != nil else {
                reader.error(imageNode, field: "container.image", "'\(text)' names a tag but no digest: a tag can move, so Rewind runs only digests",
                             hint: "pin it: \(text)@sha256:… (`skopeo inspect --format '{{.Digest}}' docker://\(text)` prints it)")
                return nil
            }
            image = parsed
        }
        var settings = ContainerSettings(image: image)
        if reader.value(c, "command", parent: "container") != nil { settings.command = nonEmptyList(reader, c, "command") }
        if reader.value(c, "args", parent: "container") != nil { settings.args = reader.stringList(c, "args", parent: "container") }
        settings.env = reader.stringMap(c, "env", parent: "container") ?? [:]
        settings.port = reader.int(c, "port", parent: "container", range: 1...65535)
        settings.user = reader.string(c, "user", parent: "container")
        settings.volumes = parseVolumes(reader, c)
        if let node = reader.value(c, "memory", parent: "container") {
            settings.memory = node.string.flatMap(Self.bytes)
            if settings.memory == nil { reader.error(node, field: "container.memory", "'\(node.string ?? "")' is not an amount of memory", hint: "write 512m, 2g or a number of bytes") }
        }
        if let cpus = reader.double(c, "cpus", parent: "container") {
            if cpus > 0 && cpus <= 1024 { settings.cpus = cpus } else {
                reader.error(reader.value(c, "cpus", parent: "container"), field: "container.cpus", "\(cpus) is not a number of CPUs", hint: "write a number above 0, such as 0.5 or 2")
            }
        }
        if let timeout = reader.duration(c, "stopTimeout", parent: "container") { settings.stopTimeout = timeout }
        return settings
    }

    private static func nonEmptyList(_ reader: YAMLReader, _ c: Node.Mapping, _ key: String) -> [String]? {
        let list = reader.stringList(c, key, parent: "container")
        if list?.isEmpty == true { reader.error(reader.value(c, key, parent: "container"), field: "container.\(key)", "must not be empty", hint: "leave it out to keep the image's") }
        return list?.isEmpty == true ? nil : list
    }

    private static func parseVolumes(_ reader: YAMLReader, _ c: Node.Mapping) -> [ContainerSettings.Volume] {
        var volumes: [ContainerSettings.Volume] = []
        for (i, entry) in (reader.stringList(c, "volumes", parent: "container") ?? []).enumerated() {
            let field = "container.volumes[\(i)]"
            let node: Node? = {
                if case .sequence(let items)? = reader.value(c, "volumes", parent: "container"), i < items.count { return items[i] }
                return nil
            }()
            let parts = entry.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, parts[1].hasPrefix("/") else {
                reader.error(node, field: field, "'\(entry)' is not SOURCE:/path", hint: "a named volume (data:/var/lib/app) or a directory of the app (./config:/etc/app)")
                continue
            }
            let volume = ContainerSettings.Volume(source: parts[0], target: parts[1])
            if volume.isBind, RelativePath.leaves(volume.source) {
                reader.error(node, field: field, "'\(volume.source)' leaves the app's files", hint: "mount a directory inside the app directory")
            } else if !volume.isBind, volume.source.isEmpty || !volume.source.allSatisfy({ $0.isLetter || $0.isNumber || "_.-".contains($0) }) {
                reader.error(node, field: field, "'\(volume.source)' is neither a volume name nor a directory of the app",
                             hint: "name a volume ([A-Za-z0-9_.-]) or a directory of the app starting with ./; host paths are not mounted")
            } else {
                volumes.append(volume)
            }
        }
        return volumes
    }

    /// `512m`, `2g`, `100k` or bytes.
    static func bytes(_ text: String) -> Int64? {
        let lower = text.lowercased().filter { !$0.isWhitespace }
        let units: [(String, Int64)] = [("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30)]
        for (suffix, factor) in units where lower.hasSuffix(suffix) {
            guard let number = Int64(lower.dropLast()), number > 0, number <= Int64.max / factor else { return nil }
            return number * factor
        }
        guard let number = Int64(lower), number > 0 else { return nil }
        return number
    }
}
