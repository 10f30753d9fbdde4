import ArgumentParser
import Artifacts
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

    @Argument(help: "The artifact: REGISTRY/REPOSITORY[:TAG]@sha256:DIGEST.")
    var reference: String

    @Option(help: "The state directory whose artifact cache to fill (default: <git dir>/rewind/state of --repo).")
    var stateDir: String?

    @Option(help: ArgumentHelp("Credentials: a docker-style config.json with an auths map (never logged).", valueName: "file"))
    var registryAuth: String?

    @Option(help: ArgumentHelp("A registry (HOST:PORT) spoken to over plain HTTP (repeatable).", valueName: "host:port"))
    var plainHttpRegistry: [String] = []

    @Option(help: "A PEM file of certificate authorities to trust besides the system's.")
    var caFile: String?

    @Option(help: "Refuse a layer or unpacked artifact larger than this many bytes.")
    var maxArtifactSize: Int64 = 2 << 30

    @Option(help: "Output format: table (the directory) or json.")
    var format: OutputFormat = .table

    @OptionGroup var repoOptions: RepoOptions

    func run() throws {
        try runReporting(format: format) {
            let parsed: OCIReference
            switch OCIReference.parse(reference) {
            case .success(let found): parsed = found
            case .failure(let error): throw RewindError(.usage, error.message, hint: error.hint ?? "write REGISTRY/REPOSITORY:TAG@sha256:DIGEST")
            }
            guard parsed.digest != nil else {
                throw RewindError(.usage, "\(parsed) names no digest; Rewind pulls only by digest", hint: "append @sha256:DIGEST (`skopeo inspect --format '{{.Digest}}' docker://\(parsed)`)")
            }
            let directory = try stateDir ?? StateStore(try repoOptions.open(), directory: nil).directory
            var options = ArtifactOptions(directory: directory + "/artifacts")
            options.plainHTTP = Set(plainHttpRegistry)
            options.caFile = caFile
            options.maxArtifactSize = maxArtifactSize
            if let registryAuth { options.credentials = try RegistryCredentials.load(registryAuth) }
            let store = ArtifactStore(options: options)
            let cached = store.cached(parsed) != nil
            let path: String
            do { path = try store.pull(parsed) } catch { throw RewindError(.refused, "cannot pull \(parsed): \(error)") }
            switch format {
            case .json: Terminal.print(JSON.object([("reference", .string("\(parsed)")), ("directory", .string(path)), ("cached", .bool(cached))]).pretty)
            case .table: Terminal.print(path)
            }
        }
    }
}
