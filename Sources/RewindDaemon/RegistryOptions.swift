import ArgumentParser
import Artifacts
import SystemSupport

/// How registries are reached, for `reconcile`, `serve` and `pull`: the
/// flags, with REWIND_REGISTRY_AUTH and REWIND_PLAIN_HTTP_REGISTRIES as
/// their defaults (so that `rewind rollback`'s artifact check, which runs
/// `rewind pull --check`, speaks to registries as the reconciler does).
struct RegistryOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Credentials for OCI registries: a docker-style config.json with an auths map (never logged).", valueName: "file"))
    var registryAuth: String?

    @Option(help: ArgumentHelp("A registry (HOST:PORT) spoken to over plain HTTP instead of HTTPS (repeatable; for a registry on a private network).", valueName: "host:port"))
    var plainHttpRegistry: [String] = []

    @Option(help: "Refuse an artifact (a layer, a download, or its unpacked files) larger than this many bytes.")
    var maxArtifactSize: Int64 = 2 << 30

    func validate() throws {
        guard maxArtifactSize > 0 else { throw ValidationError("--max-artifact-size must be positive") }
        if let registryAuth, FileIO.read(registryAuth) == nil { throw ValidationError("--registry-auth \(registryAuth) cannot be read") }
    }

    /// The credentials file: the flag's, else REWIND_REGISTRY_AUTH.
    var credentialsFile: String? { registryAuth ?? Environment.value("REWIND_REGISTRY_AUTH") }

    /// The artifact cache in `directory` reaching registries as these options
    /// say, trusting `caFile` besides the system's authorities.
    func artifactOptions(directory: String, caFile: String?) throws -> ArtifactOptions {
        var options = ArtifactOptions(directory: directory)
        options.plainHTTP = Set(plainHTTP)
        options.caFile = caFile
        options.maxArtifactSize = maxArtifactSize
        if let file = credentialsFile { options.credentials = try RegistryCredentials.load(file) }
        return options
    }

    /// The flag's registries and REWIND_PLAIN_HTTP_REGISTRIES (HOST:PORT,…).
    var plainHTTP: [String] {
        plainHttpRegistry + (Environment.value("REWIND_PLAIN_HTTP_REGISTRIES") ?? "").split(separator: ",").map { String($0).trimmingCharacters() }.filter { !$0.isEmpty }
    }
}
