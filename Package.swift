// swift-tools-version:6.0
import PackageDescription

/// libgit2 and the libraries it uses, linked in statically (Debian's
/// libgit2-dev ships the archives). Loading them as shared libraries cost
/// about 2 ms before main on every command: libcrypto alone (under libssh2)
/// binds 4,000 symbols at load. GSSAPI stays outside (CGitStream/gssapi.c);
/// the linker's --wrap sends libgit2's CA bundle parses through
/// CGitStream/certificates.c, the seeding of its TLS random generator
/// through CGitStream/entropy.c, and libssh2's initialisation to the first
/// SSH session (CGitStream/ssh.c).
let staticLibGit2: [LinkerSetting] = [
    .unsafeFlags(["-Xlinker", "--wrap=mbedtls_x509_crt_parse_file", "-Xlinker", "--wrap=mbedtls_x509_crt_parse_path", "-Xlinker", "--wrap=mbedtls_entropy_init", "-Xlinker", "--wrap=mbedtls_ctr_drbg_seed",
                   "-Xlinker", "--wrap=libssh2_init"]),
] + ["git2", "mbedtls", "mbedx509", "mbedcrypto", "http_parser", "ssh2", "crypto", "pcre2-8", "z"].map { .linkedLibrary(":lib\($0).a") }
    + [.linkedLibrary("rt")]

let package = Package(
    name: "Rewind",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "rewind", targets: ["rewind"]),
        .executable(name: "rewind-daemon", targets: ["rewind-daemon"]),
        .executable(name: "rewind-demo-service", targets: ["rewind-demo-service"]),
        // For the libFuzzer executables of Fuzz/ (`make fuzz`), not a public API.
        .library(name: "RewindFuzzTargets", targets: ["FuzzTargets"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // ID tokens of single sign-on: signatures checked against the provider's JWKS.
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.7.1"),
        // The text of notifications, from the routes file's templates.
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
    ],
    targets: [
        // libgit2's headers; the library itself is linked by GitKit.
        .systemLibrary(name: "CLibGit2", providers: [.apt(["libgit2-dev"])]),
        // libgit2's network streams with deadlines and cancellation (git://, http(s), ssh),
        // its CA bundle read on first use, and GSSAPI opened on first use.
        .target(name: "CGitStream", dependencies: ["CLibGit2"]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .target(name: "GitKit", dependencies: ["CLibGit2", "CGitStream"], linkerSettings: staticLibGit2),
        // libyaml's parser; DeployModel composes its events itself (YAML.swift).
        .systemLibrary(name: "CYAML", path: "Sources/CYAML", providers: [.apt(["libyaml-dev"])]),
        .target(name: "DeployModel", dependencies: ["CYAML", "SystemSupport"], linkerSettings: [.linkedLibrary(":libyaml.a")]),
        .target(name: "CRewindSystem"),
        .target(name: "SystemSupport", dependencies: ["CRewindSystem"]),
        .target(name: "Rollback", dependencies: ["GitKit", "DeployModel", "SystemSupport"]),
        // rewind audit and rewind incident: reports from commits, trailers and notes.
        .target(name: "Audit", dependencies: ["GitKit", "DeployModel", "Rollback", "SystemSupport"]),
        .target(
            name: "Remote",
            dependencies: [
                "GitKit", "Rollback", "SystemSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "Platforms", dependencies: ["GitKit", "DeployModel", "SystemSupport"]),
        // HAProxy through its runtime API: blue-green and canary releases of process apps.
        .target(name: "Traffic", dependencies: ["DeployModel", "SystemSupport"]),
        // The HTTP client for Prometheus and notifications (health probes stay on loopback).
        .target(
            name: "WebClient",
            dependencies: [
                "SystemSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // Artifacts pulled from OCI registries and downloads, checked by digest, in a content-addressed cache.
        .target(
            name: "Artifacts",
            dependencies: [
                "CZlib", "DeployModel", "SystemSupport", "WebClient",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The read side: the state files, status and wait, for the CLI and
        // the server without the reconciler's proxy and HTTP client.
        .target(name: "ReconcilerStatus", dependencies: ["DeployModel", "GitKit", "Platforms", "Remote", "Rollback", "SystemSupport"]),
        .target(
            name: "Reconciler",
            dependencies: [
                "ReconcilerStatus", "Artifacts", "Audit", "Containers", "GitKit", "DeployModel", "Rollback", "Platforms", "Remote", "SystemSupport", "Traffic", "WebClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Mustache", package: "swift-mustache"),
            ]
        ),
        // The Docker Engine API over a unix socket (dockerd, or podman system service).
        .target(name: "Containers", dependencies: ["DeployModel", "Platforms", "SystemSupport", "WebClient"]),
        .target(
            name: "Updates",
            dependencies: ["Artifacts", "DeployModel", "GitKit", "ReconcilerStatus", "Rollback", "SystemSupport", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "Server",
            dependencies: [
                "Audit", "GitKit", "DeployModel", "Rollback", "Reconciler", "ReconcilerStatus", "Remote", "SystemSupport", "Updates", "WebClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            // The web UI's sources; WebAssets.generated.swift carries them (make web).
            exclude: ["web"]
        ),
        // Every command but the two long-running ones: no HTTP server or
        // client is linked, so a one-shot command starts as fast as git.
        .target(
            name: "RewindCLI",
            dependencies: [
                "Audit", "GitKit", "DeployModel", "Rollback", "ReconcilerStatus", "Remote", "SystemSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // `rewind reconcile` and `rewind serve`, which `rewind` hands over to
        // the rewind-daemon binary beside it.
        .target(
            name: "RewindDaemon",
            dependencies: [
                "RewindCLI", "Artifacts", "Containers", "DeployModel", "GitKit", "Reconciler", "ReconcilerStatus", "Remote", "Rollback", "Server", "SystemSupport", "Updates", "WebClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "FuzzTargets", dependencies: ["Artifacts", "Audit", "DeployModel", "GitKit", "Rollback", "Remote", "Reconciler", "ReconcilerStatus", "Server", "SystemSupport"]),
        // Linked by the toolchain's lld (5 s for a release link; gold took 77 s),
        // with relative relocations packed (RELR, glibc 2.36): 16 KB instead
        // of 1.6 MB of relocation records for the loader to read.
        .executableTarget(name: "rewind", dependencies: ["RewindCLI"], linkerSettings: [.unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"])]),
        .executableTarget(name: "rewind-daemon", dependencies: ["RewindCLI", "RewindDaemon"]),
        .executableTarget(name: "rewind-demo-service", dependencies: ["SystemSupport"]),
        .testTarget(name: "GitKitTests", dependencies: ["CGitStream", "GitKit", "TestSupport"]),
        .testTarget(name: "DeployModelTests", dependencies: ["DeployModel", "TestSupport"]),
        .testTarget(name: "ArtifactsTests", dependencies: ["Artifacts", "DeployModel", "SystemSupport", "TestSupport"]),
        .testTarget(name: "WebClientTests", dependencies: ["WebClient", "SystemSupport", "TestSupport"]),
        .testTarget(name: "ContainersTests", dependencies: ["Artifacts", "Containers", "DeployModel", "GitKit", "Platforms", "SystemSupport", "TestSupport"]),
        .testTarget(name: "FuzzTargetsTests", dependencies: ["FuzzTargets", "DeployModel", "TestSupport"]),
        .testTarget(name: "AuditTests", dependencies: ["Audit", "Rollback", "GitKit", "SystemSupport", "TestSupport"]),
        .testTarget(name: "RollbackTests", dependencies: ["Rollback", "GitKit", "DeployModel", "TestSupport"]),
        .testTarget(name: "RewindCLITests", dependencies: ["RewindCLI", "TestSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(
            name: "ReconcilerTests",
            dependencies: ["Reconciler", "ReconcilerStatus", "Platforms", "GitKit", "DeployModel", "Rollback", "SystemSupport", "TestSupport", "Traffic", "WebClient", "ReconcilerDoubles", "Artifacts", "Containers", "Updates", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "Server", "Reconciler", "ReconcilerStatus", "Rollback", "DeployModel", "SystemSupport", "TestSupport", "ReconcilerDoubles", "WebClient", .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "TrafficTests",
            dependencies: ["Traffic", "SystemSupport", "TestSupport"]
        ),
        .testTarget(
            name: "RemoteTests",
            dependencies: ["GitKit", "Remote", "SystemSupport", "TestSupport"]
        ),
        .target(name: "TestSupport", dependencies: ["SystemSupport", "Traffic", "ReconcilerStatus", "Rollback"], path: "Tests/TestSupport"),
        // The reconciler's test doubles (as swift-nio's NIOEmbedded): a fake
        // platform, proxy, metrics source and notification transport, a
        // manual clock, and the world that drives the real tick.
        .target(
            name: "ReconcilerDoubles",
            dependencies: ["Reconciler", "ReconcilerStatus", "Platforms", "GitKit", "DeployModel", "SystemSupport", "Traffic", "WebClient", "TestSupport",
                           .product(name: "Logging", package: "swift-log")],
            path: "Tests/ReconcilerDoubles"
        ),
    ]
)
