// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Rewind",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "rewind", targets: ["rewind"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibGit2",
            pkgConfig: "libgit2",
            providers: [.apt(["libgit2-dev"])]
        ),
        .target(name: "GitKit", dependencies: ["CLibGit2"]),
        .target(name: "DeployModel", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(name: "Rollback", dependencies: ["GitKit", "DeployModel"]),
        .target(
            name: "RewindCLI",
            dependencies: [
                "GitKit", "DeployModel", "Rollback",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "rewind", dependencies: ["RewindCLI"]),
        .testTarget(name: "GitKitTests", dependencies: ["GitKit", "TestSupport"]),
        .testTarget(name: "DeployModelTests", dependencies: ["DeployModel"]),
        .testTarget(name: "RollbackTests", dependencies: ["Rollback", "GitKit", "DeployModel", "TestSupport"]),
        .testTarget(name: "RewindCLITests", dependencies: ["TestSupport"]),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
    ]
)
