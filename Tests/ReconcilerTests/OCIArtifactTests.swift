import Foundation
import Testing
import TestSupport

/// Releases pulled from a real registry (Debian's docker-registry, published
/// with skopeo) and run by the process platform from the unpacked artifact.
@Suite(.serialized) struct OCIArtifactTests {
    /// The artifact's `bin/api` runs the demo service.
    static func files(_ version: String) -> [String: (text: String, executable: Bool)] {
        let demo = (rewindBinary as NSString).deletingLastPathComponent + "/rewind-demo-service"
        return ["bin/api": ("#!/bin/sh\nexec \(demo) \"$@\"\n", true), "VERSION": ("\(version)\n", false)]
    }

    static func appYAML(_ version: String, _ reference: String) -> String {
        "platform: process\nversion: \"\(version)\"\nprocess:\n  command: bin/api\nhealth:\n  http: /health\n  timeout: 10s\n  interval: 200ms\n"
            + "artifact:\n  oci: \(reference)\n"
    }

    /// Deploy 1.0 and 2.0 from the registry; stop the registry; a rollback
    /// to 1.0 still ends healthy, from the cache.
    @Test func releasesDeployFromTheRegistryAndRollBackWithTheRegistryDown() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        let one = try registry.publish("team/api", tag: "1.0", files: Self.files("1.0"))
        let two = try registry.publish("team/api", tag: "2.0", files: Self.files("2.0"))
        try withReconciler(apps: [HarnessApp("api", appYAML: Self.appYAML("1.0", "\(registry.host)/team/api:1.0@\(one)"))]) { h in
            try h.start(["--plain-http-registry", registry.host])
            try h.waitHealthy("api", "1.0")
            let unpacked = h.stateDir + "/artifacts/oci/" + one.dropFirst(7)
            #expect(try String(contentsOfFile: unpacked + "/VERSION", encoding: .utf8) == "1.0\n")
            try h.write("apps/api/app.yaml", Self.appYAML("2.0", "\(registry.host)/team/api:2.0@\(two)"))
            try h.commit("api 2.0")
            try h.waitHealthy("api", "2.0")
            registry.stop()
            let rollback = try rewind(["rollback", "api", "--repo", h.repo, "--reason", "registry outage drill"])
            #expect(rollback.status == 0, "\(rollback.stdout)\(rollback.stderr)")
            try h.waitHealthy("api", "1.0")
        }
    }

    /// A release whose artifact the registry does not have fails before
    /// anything is stopped: the running version keeps serving, and the
    /// status says what is missing and where.
    @Test func aReleaseWhoseArtifactIsMissingFailsAndTheRunningVersionStays() throws {
        let registry = try TestRegistry()
        defer { registry.close() }
        let one = try registry.publish("team/api", tag: "1.0", files: Self.files("1.0"))
        let missing = "sha256:" + String(repeating: "e", count: 64)
        try withReconciler(apps: [HarnessApp("api", appYAML: Self.appYAML("1.0", "\(registry.host)/team/api:1.0@\(one)"))],
                           policy: "  window: 30m\n  cooldown: 0s\n  maxPerHour: 0\n  soak: 1m\n") { h in
            try h.start(["--plain-http-registry", registry.host])
            try h.waitHealthy("api", "1.0")
            let before = try h.applied("api").pid
            try h.write("apps/api/app.yaml", Self.appYAML("2.0", "\(registry.host)/team/api:2.0@\(missing)"))
            try h.commit("api 2.0")
            var error = ""
            try h.waitUntil("the release fails naming the missing manifest") {
                error = (try h.app("api")["lastError"] as? String) ?? ""
                return error.contains("has no manifest \(missing)")
            }
            #expect(error.contains(registry.host) && error.contains("nothing was stopped"), "\(error)")
            #expect(try h.applied("api").version == "1.0")
            #expect(try h.applied("api").pid == before, "the running process was not touched")
        }
    }
}
