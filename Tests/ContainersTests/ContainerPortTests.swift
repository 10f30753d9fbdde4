import Containers
import DeployModel
import Foundation
import GitKit
import Platforms
import Synchronization
import SystemSupport
import Testing
import TestSupport

/// The container platform's start without a reconciler, against Podman: a
/// port that was free when picked but is taken when the engine binds it.
@Suite(.serialized) struct ContainerPortTests {
    @Test func aPortTakenBeforeTheEngineBindsItIsReplacedAndThreeInARowFailNamingTheAppAndPorts() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        let podman = try TestPodman(insecure: [registry.host])
        defer { podman.close() }
        let demo = EngineTests.demo
        let digest = try registry.publishImage("team/api", tag: "1.0", program: demo)
        let busy = try #require(Loopback.freeAppPort())
        let holder = try Spawn.start(SpawnOptions(program: "/usr/bin/python3",
                                                  arguments: ["-c", "import socket,time; s=socket.socket(); s.bind(('127.0.0.1', \(busy))); s.listen(); time.sleep(120)"],
                                                  environment: [:], outputFile: podman.root + "/holder.log"))
        defer { Spawn.stop(holder, graceMilliseconds: 1_000) }
        let deadline = Date().addingTimeInterval(10)
        while !Loopback.canConnect(port: busy) { guard Date() < deadline else { throw TestFailure("the port holder did not listen") }; Thread.sleep(forTimeInterval: 0.02) }

        let free = try #require(Loopback.freeAppPort())
        let picks = Mutex<[Int]>([busy, free])
        let platform = ContainerPlatform(engine: try ContainerEngine(socket: podman.socket), owner: podman.root,
                                         ports: { picks.withLock { $0.isEmpty ? busy : $0.removeFirst() } })
        let yaml = """
            platform: container
            version: "1.0"
            container:
              image: \(registry.host)/team/api:1.0@\(digest)
              command: ["\(demo)"]
              args: ["--address", "0.0.0.0"]
              port: 8080
              stopTimeout: 1s
            health:
              http: /health

            """
        let spec = try #require(AppSpec.parse(yaml, file: "apps/api/app.yaml").spec)
        let deployment = Deployment(app: "api", spec: spec, commit: try #require(OID(hex: String(repeating: "1", count: 40))),
                                    tree: try #require(OID(hex: String(repeating: "2", count: 40))), files: podman.root, artifactPath: nil, logDirectory: podman.root)
        var journaled: [Instance] = []
        let instance = try platform.start(deployment) { journaled.append($0) }
        #expect(instance.port == free, "the taken port was replaced")
        #expect(journaled.first?.port == busy && journaled.last?.port == free, "each attempt was journaled before it started")
        let healthy = Date().addingTimeInterval(30)
        while (try? Loopback.get(port: free, path: "/health", timeoutMilliseconds: 1_000))?.status != 200 {
            guard Date() < healthy else { throw TestFailure("the container on \(free) did not answer") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        platform.stop(instance)

        // Every pick taken: the error names the app and the ports; nothing is left behind.
        var message = ""
        do {
            _ = try platform.start(deployment) { _ in }
        } catch {
            message = "\(error)"
        }
        #expect(message.contains("api: ports \(busy), \(busy), \(busy) on 127.0.0.1 were each in use"), "\(message)")
        let left = try podman.podman(["ps", "-a", "--filter", "label=rewind.app=api", "--format", "{{.ID}}"]).stdout
        #expect(left.isEmpty, "no container left: \(left)")
    }

    /// An engine older than API 1.41 (dockerd 19.03 here, a stand-in on a
    /// unix socket: no such engine runs on this machine) fails the start,
    /// naming the app, both API ranges and what to use; nothing else is asked of it.
    @Test func anEngineThatDoesNotSpeakTheAPIFailsTheStartNamingWhatToUse() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("rewind-old-engine-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let socket = root + "/docker.sock"
        let server = """
            import http.server, json, socketserver, sys
            class Engine(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    if self.path == "/version":
                        body = json.dumps({"Version": "19.03.15", "ApiVersion": "1.40", "MinAPIVersion": "1.12", "Components": [{"Name": "Engine"}]}).encode()
                        self.send_response(200)
                    else:
                        body = json.dumps({"message": "not asked of an old engine: " + self.path}).encode()
                        self.send_response(404)
                        open(sys.argv[2], "a").write(self.path + "\\n")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                do_POST = do_GET
                def log_message(self, *args): pass
                def address_string(self): return "unix"
            socketserver.UnixStreamServer(sys.argv[1], Engine).serve_forever()
            """
        let fake = try Spawn.start(SpawnOptions(program: "/usr/bin/python3", arguments: ["-c", server, socket, root + "/asked"], environment: [:],
                                                outputFile: root + "/engine.log"))
        defer { Spawn.stop(fake, graceMilliseconds: 1_000) }
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: socket) { guard Date() < deadline else { throw TestFailure("the stand-in engine did not listen") }; Thread.sleep(forTimeInterval: 0.02) }

        let platform = ContainerPlatform(engine: try ContainerEngine(socket: socket), owner: root)
        let yaml = "platform: container\nversion: \"1.0\"\ncontainer:\n  image: 127.0.0.1:5000/team/api:1.0@sha256:\(String(repeating: "a", count: 64))\n"
        let spec = try #require(AppSpec.parse(yaml, file: "apps/api/app.yaml").spec)
        let deployment = Deployment(app: "api", spec: spec, commit: try #require(OID(hex: String(repeating: "1", count: 40))),
                                    tree: try #require(OID(hex: String(repeating: "2", count: 40))), files: root, artifactPath: nil, logDirectory: root)
        var message = ""
        do {
            _ = try platform.start(deployment) { _ in Issue.record("nothing is journaled for an engine Rewind cannot speak to") }
        } catch {
            #expect(error is PlatformError, "a failure, not a wait: \(type(of: error))")
            message = "\(error)"
        }
        #expect(message.contains("api: Engine 19.03.15 at \(socket) speaks API 1.12 to 1.40; Rewind speaks 1.41: use dockerd 20.10 or later, or Podman 4 or later"), "\(message)")
        #expect(FileIO.readText(root + "/asked") == nil, "only /version was asked")
    }
}
