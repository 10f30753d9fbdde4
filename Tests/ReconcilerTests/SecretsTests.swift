import Foundation
import Testing
import TestSupport

/// Rewind's secrets stay with Rewind: deployed processes, exec commands and
/// logs never see them.
@Suite struct SecretsTests {
    static let planted: [String: String] = [
        "REWIND_API_TOKEN": "planted-api-token-4f1c", "REWIND_HOOK_TOKEN": "planted-hook-token-77ab",
        "REWIND_GIT_TOKEN": "planted-git-token-9d2e", "REWIND_GIT_HOOK_SECRET": "planted-hook-secret-c0de",
        "MY_DB_PASSWORD": "planted-denied-5e5e",
    ]

    /// A variable's value in a NUL-separated environment block.
    static func variables(_ block: String) -> [String: String] {
        var result: [String: String] = [:]
        for entry in block.split(whereSeparator: { $0 == "\0" || $0 == "\n" }) {
            guard let equals = entry.firstIndex(of: "=") else { continue }
            result[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
        }
        return result
    }

    @Test func deployedProcessesAndCommandsGetNoRewindSecret() throws {
        var exec = try execApp("job", version: "1.0")
        exec.files["apply.sh"] = "#!/bin/sh\nenv > \"$HARNESS_DIR/apply-env.txt\"\n"
        exec.files["health.sh"] = "#!/bin/sh\nenv > \"$HARNESS_DIR/health-env.txt\"\n"
        let apps = [HarnessApp("api", appYAML: demoServiceYAML(version: "1.0.0")), exec]
        try withReconciler(apps: apps) { h in
            h.extraEnvironment = Self.planted.merging(["KEEP_ME": "visible"]) { a, _ in a }
            try h.startServe(["--secret-env", "MY_*"])
            try h.waitHealthy("api", "1.0.0")
            try h.waitHealthy("job", "1.0")
            let pid = try #require(try h.applied("api").pid)
            let environ = try #require(FileManager.default.contents(atPath: "/proc/\(pid)/environ"))
            // Nor any of Rewind's open files: pipes, sockets, the state directory's lock.
            let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").compactMap { Int($0) }
            for fd in fds where fd > 2 {
                let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)")) ?? ""
                #expect(target.hasPrefix("socket:"), "the app inherited fd \(fd) -> \(target)")
            }
            var seen = [("process", Self.variables(String(decoding: environ, as: UTF8.self)))]
            for file in ["apply-env.txt", "health-env.txt"] {
                seen.append((file, Self.variables(try String(contentsOfFile: h.root + "/" + file, encoding: .utf8))))
            }
            for (what, variables) in seen {
                for name in Self.planted.keys { #expect(variables[name] == nil, "\(what) inherited \(name)") }
                #expect(variables["KEEP_ME"] == "visible", "\(what) lost an ordinary variable")
                #expect(variables["REWIND_APP"] != nil, "\(what) lacks its deployment variables")
            }
            // Nothing that Rewind or its apps logged, at debug level, holds a secret.
            h.stop()
            var logs = [("reconciler log", h.log)]
            let enumerator = FileManager.default.enumerator(atPath: h.stateDir)
            while let file = enumerator?.nextObject() as? String {
                if let data = FileManager.default.contents(atPath: h.stateDir + "/" + file) { logs.append((file, String(decoding: data, as: UTF8.self))) }
            }
            for (name, text) in logs {
                for secret in Self.planted.values { #expect(!text.contains(secret), "\(name) holds a planted secret") }
            }
        }
    }
}
