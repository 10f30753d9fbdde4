import ArgumentParser
import Artifacts
import Containers
import DeployModel
import ReconcilerStatus
import RewindCLI
import Rollback
import SystemSupport

/// `rewind pull`: an OCI artifact into the reconciler's artifact cache, as
/// the reconciler pulls it (to warm a cache before a release, or to check
/// that a registry serves what app.yaml names).
struct PullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: DaemonHandOver.abstract("pull"),
        discussion: """
            Pulls REGISTRY/REPOSITORY[:TAG]@sha256:DIGEST by digest into <state>/artifacts, every digest \
            verified, and prints the directory it was unpacked into. A cached artifact is not pulled again.
            """)

    @Argument(help: "The artifact: REGISTRY/REPOSITORY[:TAG]@sha256:DIGEST (with --check, also an http(s) URL).")
    var reference: String

    @Flag(help: "Only check that the artifact is at hand (in the cache, or still in its registry) and say where; exit 4 when it is not.")
    var check = false

    @Flag(help: "With --check: the reference is a container image; the container engine's store counts as cached (then its registry is asked).")
    var image = false

    @Option(help: "With --image: the container engine's socket (default: the one the reconciler of the state directory uses, else Docker's or Podman's usual one).")
    var containerSocket: String?

    @Option(help: "With --check and a URL: the download's sha256 (its name in the cache).")
    var sha256: String?

    @Option(help: "The state directory whose artifact cache to fill (default: <git dir>/rewind/state of --repo).")
    var stateDir: String?

    @OptionGroup var registry: RegistryOptions

    @Option(help: "A PEM file of certificate authorities to trust besides the system's.")
    var caFile: String?

    @Option(help: "Output format: table (the directory) or json.")
    var format: OutputFormat = .table

    @OptionGroup var repoOptions: RepoOptions

    func run() throws {
        try runReporting(format: format) {
            if check { return try checkOnly() }
            if image { throw RewindError(.usage, "--image goes with --check", hint: "the reconciler pulls images through the container engine; run rewind pull --check --image REF") }
            let parsed: OCIReference
            switch OCIReference.parse(reference) {
            case .success(let found): parsed = found
            case .failure(let error): throw RewindError(.usage, error.message, hint: error.hint ?? "write REGISTRY/REPOSITORY:TAG@sha256:DIGEST")
            }
            guard parsed.digest != nil else {
                throw RewindError(.usage, "\(parsed) names no digest; Rewind pulls only by digest", hint: "append @sha256:DIGEST (`skopeo inspect --format '{{.Digest}}' docker://\(parsed)`)")
            }
            let store = try artifactStore()
            let cached = store.cached(parsed) != nil
            let path: String
            do { path = try store.pull(parsed) } catch { throw RewindError(.refused, "cannot pull \(parsed): \(error)") }
            switch format {
            case .json: Terminal.print(JSON.object([("reference", .string("\(parsed)")), ("directory", .string(path)), ("cached", .bool(cached))]).pretty)
            case .table: Terminal.print(path)
            }
        }
    }

    private func stateDirectory() throws -> String { try stateDir ?? StateStore(try repoOptions.open(), directory: nil).directory }

    private func artifactStore() throws -> ArtifactStore {
        ArtifactStore(options: try registry.artifactOptions(directory: try stateDirectory() + "/artifacts", caFile: caFile))
    }

    /// `--check`: where the artifact is, or why it is not at hand (exit 4).
    private func checkOnly() throws {
        let artifact: Artifact
        if reference.hasPrefix("https://") || reference.hasPrefix("http://") {
            artifact = Artifact(.url(reference), sha256: sha256)
        } else {
            switch OCIReference.parse(reference) {
            case .success(let found): artifact = Artifact(.oci(found))
            case .failure(let error): throw RewindError(.usage, error.message, hint: error.hint ?? "write REGISTRY/REPOSITORY:TAG@sha256:DIGEST")
            }
        }
        let store = try artifactStore()
        let found: ArtifactCheck
        if image, case .oci(let reference) = artifact.source {
            let socket = try containerSocket ?? FileIO.readText(StateStore.containerSocketFile(in: stateDirectory()))?.trimmingCharacters()
                ?? ContainerEngine.defaultSocket()
            found = EngineAwareAvailability(base: store, engine: socket.flatMap { try? ContainerEngine(socket: $0) }).availability(ofImage: reference)
        } else {
            found = store.availability(of: artifact)
        }
        switch found {
        case .cached(let place): Terminal.print("cached: \(place)")
        case .published(let place): Terminal.print("published: \(place)")
        case .missing(let why): throw RewindError(.notFound, why)
        }
    }
}
