// swift-tools-version:6.0
// The libFuzzer executables, one per parser of outside input. Kept out of
// the normal build: `make fuzz` builds them with
// `swift build --package-path Fuzz -Xswiftc -sanitize=fuzzer,address`.
import Foundation
import PackageDescription

/// The names of FuzzTargets.all (Sources/FuzzTargets): one executable each.
let targets = [
    "rewind-yaml", "app-yaml", "pins", "alertmanager", "git-push", "known-hosts",
    "trailers", "notes", "durations", "remote-urls", "state", "dates", "web-form", "tokens",
    "oci-manifest", "tar-paths",
]

// A path dependency is known by its directory's name, whatever the clone is called.
let rewind = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "RewindFuzz",
    dependencies: [.package(path: "..")],
    targets: [
        .target(name: "FuzzDriver", dependencies: [.product(name: "RewindFuzzTargets", package: rewind)]),
    ] + targets.map { name in
        .executableTarget(name: "fuzz-\(name)", dependencies: ["FuzzDriver"], path: "Sources/fuzz-\(name)")
    }
)
