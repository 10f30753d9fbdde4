// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Rewind",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "rewind", targets: ["rewind"]),
        .executable(name: "rewind-demo-service", targets: ["rewind-demo-service"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibGit2",
            pkgConfig: "libgit2",
            providers: [.apt(["libgit2-dev"])]
        ),
        .target(name: "GitKit", dependencies: ["CLibGit2"]),
        .target(name: "DeployModel", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(name: "CSystem"),
        .target(name: "SystemSupport", dependencies: ["CSystem"]),
        .target(name: "Rollback", dependencies: ["GitKit", "DeployModel", "SystemSupport"]),
        .target(name: "Platforms", dependencies: ["GitKit", "DeployModel", "SystemSupport"]),
        .target(
            name: "Reconciler",
            dependencies: [
                "GitKit", "DeployModel", "Rollback", "Platforms", "SystemSupport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "RewindCLI",
            dependencies: [
                "GitKit", "DeployModel", "Rollback", "Reconciler", "SystemSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "rewind", dependencies: ["RewindCLI"]),
        .executableTarget(name: "rewind-demo-service", dependencies: ["SystemSupport"]),
        .testTarget(name: "GitKitTests", dependencies: ["GitKit", "TestSupport"]),
        .testTarget(name: "DeployModelTests", dependencies: ["DeployModel"]),
        .testTarget(name: "RollbackTests", dependencies: ["Rollback", "GitKit", "DeployModel", "TestSupport"]),
        .testTarget(name: "RewindCLITests", dependencies: ["TestSupport"]),
        .testTarget(name: "ReconcilerTests", dependencies: ["Reconciler", "DeployModel", "TestSupport"]),
        .target(name: "TestSupport", dependencies: ["SystemSupport"], path: "Tests/TestSupport"),
    ]
)
