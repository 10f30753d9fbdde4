import Artifacts
import Containers
import DeployModel
import Foundation
import SystemSupport
import Testing
import TestSupport

/// The Docker Engine API client against a real engine: Debian's Podman
/// serving it on a unix socket, pulling from Debian's docker-registry.
@Suite(.serialized) struct EngineTests {
    static var demo: String { (rewindBinary as NSString).deletingLastPathComponent + "/rewind-demo-service" }

    @Test func anImageIsPulledByDigestRunLabelledStoppedAndRemoved() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        let podman = try TestPodman(insecure: [registry.host])
        defer { podman.close() }
        let digest = try registry.publishImage("team/api", tag: "1.0", program: Self.demo)
        let engine = try ContainerEngine(socket: podman.socket)
        let version = try engine.version()
        #expect(version.name == "Podman Engine", "\(version.Components?.map(\.Name) ?? [])")

        let reference = OCIReference(registry: registry.host, repository: "team/api", tag: "1.0", digest: digest)
        try engine.pull(reference)
        #expect(engine.hasImage("\(registry.host)/team/api@\(digest)"))

        let port = try #require(Loopback.freeAppPort())
        var spec = ContainerSpec(name: "rewind-api-test", image: "\(registry.host)/team/api@\(digest)")
        spec.command = [Self.demo, "--name", "api", "--port", "\(port)"]
        spec.labels = ["rewind.app": "api", "rewind.version": "1.0"]
        spec.networkMode = "host"
        spec.stopTimeoutSeconds = 2
        let id = try engine.create(spec)
        try engine.start(id)
        let deadline = Date().addingTimeInterval(30)
        while (try? Loopback.get(port: port, path: "/health", timeoutMilliseconds: 1_000))?.status != 200 {
            guard Date() < deadline else {
                let state = try engine.inspect(id).State
                let logs = try podman.podman(["logs", id])
                throw TestFailure("the container did not answer /health (running \(state.Running), exit \(state.ExitCode), \(state.Status ?? "")):\n\(logs.stdout)\(logs.stderr)\n\(podman.log.suffix(2000))")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let running = try engine.inspect(id)
        #expect(running.State.Running && running.Config.Labels?["rewind.app"] == "api")
        #expect(try engine.list(label: "rewind.app=api").map(\.Id) == [id])
        #expect(try engine.list(label: "rewind.app=web").isEmpty)
        // The podman CLI, as an oracle, sees the same container and its labels.
        #expect(try podman.podman(["ps", "--filter", "label=rewind.version=1.0", "--format", "{{.ID}}"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == String(id.prefix(12)))

        try engine.stop(id, timeoutSeconds: 2)
        try engine.stop(id, timeoutSeconds: 2)  // already stopped: fine
        #expect(try !engine.inspect(id).State.Running)
        try engine.remove(id)
        #expect(try engine.list(label: "rewind.app").isEmpty)
    }

    /// A registry that wants credentials: the engine is refused without
    /// them, and pulls with the `X-Registry-Auth` made from the docker
    /// config.json that `--registry-auth` names; no error carries the password.
    @Test func aRegistryThatWantsCredentialsGetsThemFromRegistryAuth() throws {
        let password = "pw-\(UUID().uuidString.prefix(8))"
        let registry = try TestRegistry(user: ("deployer", password), tokens: true)
        defer { registry.close() }
        let podman = try TestPodman(insecure: [registry.host])
        defer { podman.close() }
        let digest = try registry.publishImage("team/private", tag: "1.0", program: Self.demo)
        let engine = try ContainerEngine(socket: podman.socket)
        let reference = OCIReference(registry: registry.host, repository: "team/private", tag: "1.0", digest: digest)
        var refusal = ""
        do {
            try engine.pull(reference)
        } catch {
            refusal = "\(error)"
        }
        #expect(refusal.contains("could not pull \(reference)"), "\(refusal)")
        #expect(!engine.hasImage("\(registry.host)/team/private@\(digest)"))

        let file = podman.root + "/auth.json"
        let basic = Data("deployer:\(password)".utf8).base64EncodedString()
        try writeFile(file, #"{"auths": {"\#(registry.host)": {"auth": "\#(basic)"}}}"#)
        let credentials = try RegistryCredentials.load(file)
        #expect(credentials.engineAuth(for: "elsewhere.example:5000") == nil)
        try engine.pull(reference, auth: credentials.engineAuth(for: registry.host))
        #expect(engine.hasImage("\(registry.host)/team/private@\(digest)"))
        #expect(!refusal.contains(password) && !"\(credentials)".contains(password))
    }

    /// Each failure names what and where, and what to do.
    @Test func failuresSayWhatAndWhere() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        let podman = try TestPodman(insecure: [registry.host])
        defer { podman.close() }
        let missingSocket = try ContainerEngine(socket: podman.root + "/nothing.sock")
        #expect(throws: EngineError.self) { try missingSocket.version() }
        do { _ = try missingSocket.version() } catch { #expect(error.description.contains("no container engine at") && error.description.contains("--container-socket")) }

        let engine = try ContainerEngine(socket: podman.socket)
        let absent = OCIReference(registry: registry.host, repository: "team/none", tag: "1.0", digest: "sha256:" + String(repeating: "e", count: 64))
        do {
            try engine.pull(absent)
            Issue.record("pulling an image the registry does not have succeeded")
        } catch {
            #expect(error.description.contains("team/none"), "\(error)")
        }
        do {
            _ = try engine.inspect("no-such-container")
            Issue.record("inspecting a missing container succeeded")
        } catch {
            #expect(error.status == 404 && error.description.contains("no-such-container"), "\(error)")
        }
        #expect(ContainerEngineTestHooks.accepts(min: "1.24", max: "1.41") && !ContainerEngineTestHooks.accepts(min: "1.24", max: "1.40")
                && !ContainerEngineTestHooks.accepts(min: "1.42", max: "1.45"))
    }
}

/// The engine's multiplexed output: frames may arrive split anywhere.
@Test func multiplexedOutputIsReassembledAcrossPieces() {
    let frames: [UInt8] = [1, 0, 0, 0, 0, 0, 0, 3] + Array("ab\n".utf8) + [2, 0, 0, 0, 0, 0, 0, 2] + Array("c\n".utf8)
    for cut in 0...frames.count {
        var pending = Array(frames[..<cut])
        var payloads = ContainerEngineTestHooks.demultiplex(&pending)
        pending += frames[cut...]
        payloads += ContainerEngineTestHooks.demultiplex(&pending)
        #expect(payloads == [Array("ab\n".utf8), Array("c\n".utf8)] && pending.isEmpty, "cut at \(cut)")
    }
}
