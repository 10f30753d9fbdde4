import DeployModel
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// The CLI's rollback guard for OCI and download artifacts: the artifact
/// cache of the state directory first; otherwise `rewind-daemon pull
/// --check` asks the registry (only the daemon links an HTTP client, so
/// every other command starts without one). Registry settings come from
/// REWIND_PLAIN_HTTP_REGISTRIES and REWIND_REGISTRY_AUTH, as for the reconciler.
struct DaemonArtifactCheck: ArtifactAvailability {
    let stateDirectory: String

    func availability(of artifact: Artifact) -> ArtifactCheck {
        var arguments = ["pull", "--check", "--state-dir", stateDirectory]
        switch artifact.source {
        case .path(let path):
            return FileIO.exists(path) ? .published(path) : .missing("\(path) does not exist")
        case .oci(let reference):
            if let digest = reference.digest, FileIO.exists("\(stateDirectory)/artifacts/oci/\(digest.dropFirst(7)).done") {
                return .cached("\(stateDirectory)/artifacts/oci/\(digest.dropFirst(7))")
            }
            arguments.append("\(reference)")
        case .url(let url):
            if let sha = artifact.sha256, FileIO.exists("\(stateDirectory)/artifacts/url/\(sha)") { return .cached("\(stateDirectory)/artifacts/url/\(sha)") }
            arguments += [url] + (artifact.sha256.map { ["--sha256", $0] } ?? [])
        }
        return ask(arguments)
    }

    /// A container image: `rewind-daemon pull --check --image` asks the
    /// container engine the reconciler uses (its socket is in the state
    /// directory) first, then the registry.
    func availability(ofImage image: OCIReference) -> ArtifactCheck {
        ask(["pull", "--check", "--image", "--state-dir", stateDirectory, "\(image)"])
    }

    private func ask(_ arguments: [String]) -> ArtifactCheck {
        let output = "\(stateDirectory)/.artifact-check.\(getpid())"
        FileIO.makeDirectory(stateDirectory)
        defer { FileIO.removeTree(output) }
        let status: ExitStatus?
        do {
            status = try Spawn.run(SpawnOptions(program: DaemonHandOver.daemonPath(), arguments: arguments, environment: Spawn.currentEnvironment(), outputFile: output),
                                   timeoutMilliseconds: 60_000)
        } catch {
            return .missing("it is not in the artifact cache, and rewind-daemon cannot be run to ask its registry: \(error)")
        }
        let text = (FileIO.readText(output) ?? "").trimmingCharacters()
        guard let status else { return .missing("it is not in the artifact cache, and its registry did not answer within 60 s") }
        if status.succeeded {
            // `rewind pull --check` says "cached: PATH" or "published: WHERE".
            let said = String(text.split(separator: "\n").last ?? "")
            if said.hasPrefix("cached: ") { return .cached(String(said.dropFirst("cached: ".count))) }
            return .published(said.hasPrefix("published: ") ? String(said.dropFirst("published: ".count)) : said)
        }
        let reason = text.split(separator: "\n").first { $0.hasPrefix("error: ") }.map { String($0.dropFirst("error: ".count)) }
        return .missing(reason ?? "the registry check failed (\(status))")
    }
}
