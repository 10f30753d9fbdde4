import Containers
import DeployModel
import Foundation
import SystemSupport
import Testing
import TestSupport

/// `platform: container` end to end: `rewind reconcile` runs images from
/// Debian's docker-registry through Debian's Podman serving the Docker
/// Engine API; a release and a rollback each end with one healthy,
/// labelled container.
@Suite(.serialized) struct ContainerPlatformTests {
    static var demo: String { (rewindBinary as NSString).deletingLastPathComponent + "/rewind-demo-service" }

    static func appYAML(_ version: String, _ image: String, args: [String] = [], command: [String]? = nil) -> String {
        let quoted = (["--address", "0.0.0.0"] + args).map { "\"\($0)\"" }.joined(separator: ", ")
        let commandList = (command ?? [demo]).map { "\"\($0)\"" }.joined(separator: ", ")
        return """
        platform: container
        version: "\(version)"
        container:
          image: \(image)
          command: [\(commandList)]
          args: [\(command == nil ? quoted : "")]
          port: 8080
          stopTimeout: 2s
        health:
          http: /health
          timeout: 30s
          interval: 200ms

        """
    }

    /// A registry holding REPOSITORY 1.0 and 2.0 (each with busybox as /bin/sh
    /// when `shell`), and Podman trusting it; both closed afterwards.
    struct Engine {
        let registry: TestRegistry
        let podman: TestPodman
        let repository: String
        let one: String
        let two: String
        /// `HOST/REPOSITORY:TAG@DIGEST` of 1.0 or 2.0.
        func image(_ version: String) -> String { "\(registry.host)/\(repository):\(version)@\(version == "1.0" ? one : two)" }
    }

    static func withEngine(_ repository: String = "team/api", shell: Bool = false, _ body: (Engine) throws -> Void) throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        let podman = try TestPodman(insecure: [registry.host])
        defer { podman.close() }
        let one = try registry.publishImage(repository, tag: "1.0", program: demo, files: ["VERSION": "1.0\n"], shell: shell)
        let two = try registry.publishImage(repository, tag: "2.0", program: demo, files: ["VERSION": "2.0\n"], shell: shell)
        try body(Engine(registry: registry, podman: podman, repository: repository, one: one, two: two))
    }

    @Test func aReleaseAndARollbackEachEndWithOneHealthyLabelledContainer() throws {
        try Self.withEngine() { engine in
            let (registry, podman, one, two) = (engine.registry, engine.podman, engine.one, engine.two)
            func running(_ version: String) throws -> [String] {
                try podman.podman(["ps", "--filter", "label=rewind.app=api", "--filter", "label=rewind.version=\(version)", "--format", "{{.ID}}"])
                    .stdout.split(separator: "\n").map(String.init)
            }
            // Someone else's container on the same engine: Rewind never touches it.
            let engine = try ContainerEngine(socket: podman.socket)
            try engine.pull(OCIReference(registry: registry.host, repository: "team/api", tag: "1.0", digest: one))
            var other = ContainerSpec(name: "not-rewinds", image: "\(registry.host)/team/api@\(one)")
            other.command = [Self.demo, "--port", "\(try #require(Loopback.freeAppPort()))"]
            other.networkMode = "host"
            try engine.start(try engine.create(other))
            try withReconciler(apps: [HarnessApp("api", appYAML: Self.appYAML("1.0", "\(registry.host)/team/api:1.0@\(one)"))]) { h in
                try h.start(["--container-socket", podman.socket])
                try h.waitHealthy("api", "1.0", timeout: 60)
                #expect(try running("1.0").count == 1)
                let id = try h.app("api")["container"] as? String ?? ""
                #expect(try !id.isEmpty && id.hasPrefix(running("1.0").first ?? "?"), "status names the container")
                let port = try #require(try h.app("api")["port"] as? Int)
                #expect(try Loopback.get(port: port, path: "/", timeoutMilliseconds: 2_000).status == 200, "published on 127.0.0.1:\(port)")
                // The container's output reaches `rewind logs`.
                try h.waitUntil("the container's output in rewind logs") {
                    try rewind(["logs", "api", "--repo", h.repo, "--state-dir", h.stateDir]).stdout.contains("demo service api 1.0 listening on 0.0.0.0:8080")
                }

                // A crash (killed behind Rewind's back) is seen from the engine's events and restarted.
                let first = try #require(try running("1.0").first)
                _ = try podman.podman(["kill", first])
                try h.waitUntil("a new 1.0 container after the crash", timeout: 60) {
                    let now = try running("1.0")
                    let restarts = try h.app("api")["restarts"] as? Int ?? 0
                    return restarts >= 1 && now.count == 1 && now.first != first
                }
                try h.waitHealthy("api", "1.0", timeout: 60)
                #expect(try podman.podman(["ps", "-a", "--filter", "id=\(first)", "--format", "{{.ID}}"]).stdout.isEmpty, "the crashed container was removed")

                try h.write("apps/api/app.yaml", Self.appYAML("2.0", "\(registry.host)/team/api:2.0@\(two)"))
                try h.commit("api 2.0")
                try h.waitHealthy("api", "2.0", timeout: 60)
                try h.waitUntil("the 1.0 container is gone") { try running("1.0").isEmpty }
                #expect(try running("2.0").count == 1)

                let rollback = try rewind(["rollback", "api", "--repo", h.repo, "--state-dir", h.stateDir, "--reason", "container drill"])
                #expect(rollback.status == 0, "\(rollback.stdout)\(rollback.stderr)")
                try h.waitHealthy("api", "1.0", timeout: 60)
                try h.waitUntil("only the 1.0 container runs") { try running("2.0").isEmpty && running("1.0").count == 1 }

                // kill -9 of Rewind: the container keeps running and is adopted again, with no second one started.
                let adopted = try running("1.0")
                h.kill9()
                _ = h.waitForExit()
                try h.start(["--container-socket", podman.socket])
                try h.waitHealthy("api", "1.0", timeout: 60)
                #expect(try running("1.0") == adopted, "the same container, adopted")
            }
            #expect(try podman.podman(["ps", "--filter", "name=not-rewinds", "--format", "{{.Names}}"]).stdout.contains("not-rewinds"), "a container Rewind did not start is left alone")
            #expect(try podman.podman(["ps", "--filter", "label=rewind.app=api", "--format", "{{.ID}}"]).stdout.isEmpty == false,
                    "stopping Rewind leaves containers to the engine; they are adopted again on the next start")
        }
    }

    /// An image the registry does not have fails the release before anything
    /// else happens: the running container keeps serving, and the error names the image.
    @Test func aMissingImageFailsTheReleaseAndTheRunningContainerStays() throws {
        try Self.withEngine() { engine in
            let (registry, podman, one) = (engine.registry, engine.podman, engine.one)
            let missing = "sha256:" + String(repeating: "e", count: 64)
            try withReconciler(apps: [HarnessApp("api", appYAML: Self.appYAML("1.0", "\(registry.host)/team/api:1.0@\(one)"))],
                               policy: "  window: 30m\n  cooldown: 0s\n  maxPerHour: 0\n") { h in
                try h.start(["--container-socket", podman.socket])
                try h.waitHealthy("api", "1.0", timeout: 60)
                let before = try h.app("api")["container"] as? String
                try h.write("apps/api/app.yaml", Self.appYAML("2.0", "\(registry.host)/team/api:2.0@\(missing)"))
                try h.commit("api 2.0")
                var error = ""
                try h.waitUntil("the release fails naming the image", timeout: 60) {
                    error = (try h.app("api")["lastError"] as? String) ?? ""
                    return error.contains("could not pull") && error.contains("team/api")
                }
                #expect(try h.applied("api").version == "1.0")
                #expect(try h.app("api")["container"] as? String == before, "the running container was not touched")
            }
        }
    }

    /// A container that crash-loops after becoming healthy, and one that
    /// exits at once, each lead to one rollback commit, after which the
    /// old version's container serves again.
    @Test func aCrashLoopAndAContainerThatExitsAtOnceAreEachRolledBackByOneCommit() throws {
        try Self.withEngine(shell: true) { engine in
            let (registry, podman, one, two) = (engine.registry, engine.podman, engine.one, engine.two)
            try withReconciler(apps: [HarnessApp("api", appYAML: Self.appYAML("1.0", "\(registry.host)/team/api:1.0@\(one)"))],
                               policy: "  window: 30m\n  cooldown: 0s\n  maxPerHour: 10\n") { h in
                try h.start(["--container-socket", podman.socket])
                try h.waitHealthy("api", "1.0", timeout: 60)
                let stable = try #require(try h.app("api")["container"] as? String)
                try h.write("apps/api/app.yaml", Self.appYAML("2.0", "\(registry.host)/team/api:2.0@\(two)", args: ["--crash-after", "300ms"]))
                let looping = try h.commit("api 2.0 crash-loops")
                try h.waitUntil("a rollback commit for the crash loop", timeout: 90) { try h.commits().count == 3 }
                let first = try git(["log", "-1", "--format=%B", try h.commits()[0]], in: h.repo)
                #expect(first.contains("Rewind-Action: rollback"))
                #expect(first.contains("Rewind-Reason: api release \(looping.prefix(7)) failed: crash-looping"), "\(first)")
                try h.waitHealthy("api", "1.0", timeout: 60)
                #expect(try h.app("api")["container"] as? String != stable, "a new 1.0 container: the old one was stopped for 2.0")
                #expect(h.log.contains("restarting in 500 ms (restart 1)"), "restarted with backoff before the rollback")

                try h.write("apps/api/app.yaml", Self.appYAML("3.0", "\(registry.host)/team/api:2.0@\(two)", command: ["/bin/sh", "-c", "echo no config; exit 3"]))
                let exiting = try h.commit("api 3.0 exits at once")
                try h.waitUntil("a rollback commit for the container that exits at once", timeout: 90) { try h.commits().count == 5 }
                let second = try git(["log", "-1", "--format=%B", try h.commits()[0]], in: h.repo)
                #expect(second.contains("Rewind-Reason: api release \(exiting.prefix(7)) failed"), "\(second)")
                #expect(second.contains("exited with status 3; last output: no config"), "the reason gives the exit status and output: \(second)")
                try h.waitHealthy("api", "1.0", timeout: 60)
                let containers = try podman.podman(["ps", "-a", "--filter", "label=rewind.app=api", "--format", "{{.Labels}}"]).stdout
                #expect(containers.split(separator: "\n").count == 1, "only the 1.0 container is left: \(containers)")
            }
        }
    }

    /// A rollback across two reversible migrations on the container
    /// platform: the newer container is stopped, each `down` runs newest
    /// first as a one-off container of the target's image (with the app's
    /// named volume and environment), and the target version then starts.
    @Test func downCommandsRunAsOneOffContainersOfTheTargetImage() throws {
        try Self.withEngine("team/db", shell: true) { engine in
            let (registry, podman, one, two) = (engine.registry, engine.podman, engine.one, engine.two)
            let volume = "rewind-test-\(UUID().uuidString.prefix(8).lowercased())"
            func yaml(_ version: String, _ image: String, migrations: String) -> String {
                Self.appYAML(version, image).replacingOccurrences(of: "  stopTimeout: 2s\n", with: "  stopTimeout: 2s\n  volumes: [\"\(volume):/data\"]\n") + migrations
            }
            let down = { (id: String) in "[\"/bin/sh\", \"-c\", \"read image < /VERSION; echo down \(id) $REWIND_VERSION image $image >> /data/downs.log\"]" }
            let v1 = yaml("1.0", "\(registry.host)/team/db:1.0@\(one)", migrations: "migrations:\n  - id: \"001\"\n")
            let v2 = yaml("2.0", "\(registry.host)/team/db:2.0@\(two)", migrations: """
                migrations:
                  - id: "001"
                  - id: "002"
                    down: \(down("002"))
                  - id: "003"
                    down: \(down("003"))

                """)
            try withReconciler(apps: [HarnessApp("db", appYAML: v1)]) { h in
                try h.start(["--container-socket", podman.socket])
                try h.waitHealthy("db", "1.0", timeout: 60)
                try h.write("apps/db/app.yaml", v2)
                try h.commit("db 2.0")
                try h.waitHealthy("db", "2.0", timeout: 60)
                let rolled = try rewind(["rollback", "db", "--repo", h.repo, "--state-dir", h.stateDir, "--reason", "bad schema"])
                #expect(rolled.status == 0, "\(rolled.stderr)")
                let rollback = try #require(try h.commits().first)
                try h.waitHealthy("db", "1.0", timeout: 60)
                let mountpoint = try podman.podman(["volume", "inspect", volume, "--format", "{{.Mountpoint}}"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                let log = (try? String(contentsOfFile: mountpoint + "/downs.log", encoding: .utf8)) ?? ""
                // The target's image (its /VERSION says 1.0) and the target's environment, newest migration first.
                #expect(log.split(separator: "\n") == ["down 003 1.0 image 1.0", "down 002 1.0 image 1.0"], "\(log)")
                try h.waitUntil("the sequence's notes") { h.notes(on: rollback, waitingFor: ["sequence app=db stage=start"]).contains("sequence app=db stage=start") }
                let notes = h.notes(on: rollback)
                for stage in ["stage=drain", "stage=down id=003 result=ok", "stage=down id=002 result=ok", "stage=start"] {
                    #expect(notes.contains("sequence app=db \(stage)"), "\(stage) in \(notes)")
                }
                let tasks = try podman.podman(["ps", "-a", "--filter", "label=rewind.task", "--format", "{{.ID}}"]).stdout
                #expect(tasks.isEmpty, "the one-off containers were removed: \(tasks)")
            }
        }
    }

    /// Seed 002's registry outage: with the registry down, a rollback to an
    /// image still in the engine's store is written (the guard says where the
    /// image is) and applied; a rollback to an image the engine no longer
    /// has is refused, naming it, and nothing is written.
    @Test func withTheRegistryDownARollbackToAnImageInTheEnginesStoreWorks() throws {
        try Self.withEngine() { engine in
            let (registry, podman, one, two) = (engine.registry, engine.podman, engine.one, engine.two)
            try withReconciler(apps: [HarnessApp("api", appYAML: Self.appYAML("1.0", "\(registry.host)/team/api:1.0@\(one)"))]) { h in
                let address = try h.startServe(["--container-socket", podman.socket, "--ui-public-read"])
                try h.waitHealthy("api", "1.0", timeout: 60)
                try h.write("apps/api/app.yaml", Self.appYAML("2.0", "\(registry.host)/team/api:2.0@\(two)"))
                let release = try h.commit("api 2.0")
                try h.waitHealthy("api", "2.0", timeout: 60)
                registry.stop()

                let rolled = try rewind(["rollback", "api", "--repo", h.repo, "--state-dir", h.stateDir, "--reason", "registry outage drill"])
                #expect(rolled.status == 0, "\(rolled.stdout)\(rolled.stderr)")
                #expect(rolled.stdout.contains("image of api 1.0 is in the container engine's store"), "\(rolled.stdout)")
                try h.waitHealthy("api", "1.0", timeout: 60)
                #expect(try h.app("api")["lastError"] as? String == nil)
                // status and the web UI say what runs: the container, its port and restarts, and the image by digest.
                let container = try #require(try h.app("api")["container"] as? String)
                #expect(try h.app("api")["image"] as? String == engine.image("1.0"))
                let shown = try rewind(["status", "api", "--repo", h.repo, "--state-dir", h.stateDir]).stdout
                #expect(shown.contains("process:     container \(container.prefix(12))") && shown.contains("image:       \(engine.image("1.0"))"), "\(shown)")
                let port = try #require(Int(address.split(separator: ":").last ?? ""))
                let page = try Loopback.get(port: port, path: "/apps/api", timeoutMilliseconds: 5_000).body
                #expect(page.contains("<dd id=\"app-image\"><code>\(engine.image("1.0"))</code></dd>"), "\(page)")
                #expect(page.contains("container \(container.prefix(12)), port "), "\(page)")

                // The 2.0 image leaves the engine's store: going back to it is refused while the registry is down.
                // Once the 2.0 container is removed (after 1.0 is recorded healthy), its image can go.
                try h.waitUntil("the 2.0 container is removed") {
                    try podman.podman(["ps", "-a", "--filter", "label=rewind.version=2.0", "--format", "{{.ID}}"]).stdout.isEmpty
                }
                let removed = try podman.podman(["rmi", "\(registry.host)/team/api@\(two)"])
                #expect(removed.status == 0, "\(removed.stderr)")
                let commits = try h.commits().count
                let refused = try rewind(["rollback", "api", "--to", release, "--repo", h.repo, "--state-dir", h.stateDir, "--reason", "back to 2.0"])
                #expect(refused.status != 0)
                #expect(refused.stderr.contains("the image of api 2.0 (\(registry.host)/team/api:2.0@\(two)) is not at hand"), "\(refused.stderr)")
                #expect(try h.commits().count == commits, "nothing was written")
            }
        }
    }

    /// The engine goes away mid-deploy (its API service stops; containers
    /// keep running): the release waits, saying why and naming the app, with
    /// the running container serving and nothing rolled back. When the
    /// engine is back, Rewind reconnects and the release converges.
    @Test func aReleaseWaitsForAnEngineThatIsGoneAndConvergesWhenItIsBack() throws {
        try Self.withEngine() { engine in
            let (registry, podman, one, two) = (engine.registry, engine.podman, engine.one, engine.two)
            try withReconciler(apps: [HarnessApp("api", appYAML: Self.appYAML("1.0", "\(registry.host)/team/api:1.0@\(one)"))]) { h in
                try h.start(["--container-socket", podman.socket])
                try h.waitHealthy("api", "1.0", timeout: 60)
                let port = try #require(try h.app("api")["port"] as? Int)
                podman.stopService()
                try h.write("apps/api/app.yaml", Self.appYAML("2.0", "\(registry.host)/team/api:2.0@\(two)"))
                try h.commit("api 2.0")
                var error = ""
                try h.waitUntil("the release waits for the engine, saying why", timeout: 30) {
                    error = (try h.app("api")["lastError"] as? String) ?? ""
                    return error.contains("api 2.0 waits for the container engine") && error.contains("no container engine at \(podman.socket)")
                }
                #expect(try h.applied("api").version == "1.0")
                #expect(try Loopback.get(port: port, path: "/", timeoutMilliseconds: 2_000).status == 200, "1.0 keeps serving without the engine's API")
                #expect(try h.commits().count == 2, "no rollback: the release is not at fault")
                #expect(h.log.contains("waits for the container engine"), "said once in the log")

                try podman.startService()
                try h.waitHealthy("api", "2.0", timeout: 60)
                try h.waitUntil("only the 2.0 container runs") {
                    let ids = try podman.podman(["ps", "--filter", "label=rewind.app=api", "--format", "{{.Labels}}"]).stdout.split(separator: "\n")
                    return ids.count == 1 && ids[0].contains("rewind.version:2.0")
                }
                #expect(try h.app("api")["lastError"] as? String == nil)
            }
        }
    }

    /// The state directory is lost while Rewind is down: its running
    /// container (labelled with this reconciler as owner) is adopted, not
    /// duplicated; when the tip moved meanwhile, the new version starts and
    /// the container no state names any more is removed.
    @Test func aLostStateAdoptsTheRunningContainerAndRemovesTheOneNoLongerWanted() throws {
        try Self.withEngine { engine in
            func running(_ version: String) throws -> [String] {
                try engine.podman.podman(["ps", "--filter", "label=rewind.app=api", "--filter", "label=rewind.version=\(version)", "--format", "{{.ID}}"])
                    .stdout.split(separator: "\n").map(String.init)
            }
            try withReconciler(apps: [HarnessApp("api", appYAML: Self.appYAML("1.0", engine.image("1.0")))]) { h in
                try h.start(["--container-socket", engine.podman.socket])
                try h.waitHealthy("api", "1.0", timeout: 60)
                let first = try running("1.0")
                h.kill9()
                _ = h.waitForExit()
                try FileManager.default.removeItem(atPath: h.stateDir)
                try h.start(["--container-socket", engine.podman.socket])
                try h.waitHealthy("api", "1.0", timeout: 60)
                #expect(try running("1.0") == first, "the running container was adopted, not started again")

                h.kill9()
                _ = h.waitForExit()
                try FileManager.default.removeItem(atPath: h.stateDir)
                try h.write("apps/api/app.yaml", Self.appYAML("2.0", engine.image("2.0")))
                try h.commit("api 2.0 while Rewind was down")
                try h.start(["--container-socket", engine.podman.socket])
                try h.waitHealthy("api", "2.0", timeout: 60)
                // Stopped (gone from `podman ps`), then removed, then logged.
                try h.waitUntil("the 1.0 container no state names is removed, and the log says so", timeout: 60) {
                    try running("1.0").isEmpty && h.log.contains("removed api 1.0 (container \(first.first?.prefix(12) ?? "?")")
                }
                #expect(try running("2.0").count == 1)
                #expect(try engine.podman.podman(["ps", "-a", "--filter", "label=rewind.version=1.0", "--format", "{{.ID}}"]).stdout.isEmpty)
            }
        }
    }

    /// More containers than an HTTP client keeps connections to one host by
    /// default (8): each holds a log stream open, and starts, health and
    /// events still get through. Twelve apps become healthy, each in its own
    /// container, and the last one's output reaches `rewind logs`.
    @Test func twelveContainerAppsRunSideBySide() throws {
        try Self.withEngine { engine in
            let apps = (1...12).map { HarnessApp(String(format: "svc-%02d", $0), appYAML: Self.appYAML("1.0", engine.image("1.0"))) }
            try withReconciler(apps: apps) { h in
                try h.start(["--container-socket", engine.podman.socket])
                for app in apps { try h.waitHealthy(app.name, "1.0", timeout: 120) }
                let running = try engine.podman.podman(["ps", "--filter", "label=rewind.version=1.0", "--format", "{{.Labels}}"]).stdout.split(separator: "\n")
                #expect(running.count == 12, "one container per app: \(running)")
                try h.waitUntil("svc-12's output in rewind logs") {
                    try rewind(["logs", "svc-12", "--repo", h.repo, "--state-dir", h.stateDir]).stdout.contains("listening on 0.0.0.0:8080")
                }
                #expect(!h.log.contains("waits for the container engine"), "the engine was never mistaken for gone")
            }
        }
    }

    /// kill -9 of Rewind while a new version's container starts (it takes
    /// 3 s to answer health): after the restart the release converges with
    /// one 2.0 container, the 1.0 one is gone, and nothing was duplicated.
    @Test func aKillMidDeployConvergesWithOneContainerPerVersion() throws {
        try Self.withEngine { engine in
            func containers(_ version: String) throws -> [String] {
                try engine.podman.podman(["ps", "-a", "--filter", "label=rewind.app=api", "--filter", "label=rewind.version=\(version)", "--format", "{{.ID}}"])
                    .stdout.split(separator: "\n").map(String.init)
            }
            try withReconciler(apps: [HarnessApp("api", appYAML: Self.appYAML("1.0", engine.image("1.0")))]) { h in
                try h.start(["--container-socket", engine.podman.socket])
                try h.waitHealthy("api", "1.0", timeout: 60)
                try h.write("apps/api/app.yaml", Self.appYAML("2.0", engine.image("2.0"), args: ["--ready-after", "3s"]))
                try h.commit("api 2.0, slow to start")
                try h.waitUntil("the 2.0 container exists", timeout: 60) { try !containers("2.0").isEmpty }
                h.kill9()
                _ = h.waitForExit()
                #expect(try h.applied("api").version == "1.0", "killed before 2.0 was healthy")
                try h.start(["--container-socket", engine.podman.socket])
                try h.waitHealthy("api", "2.0", timeout: 60)
                try h.waitUntil("one 2.0 container, and the 1.0 one removed", timeout: 60) {
                    try containers("2.0").count == 1 && containers("1.0").isEmpty
                }
                #expect(try h.commits().count == 2, "no rollback: the release was not at fault")
            }
        }
    }
}
