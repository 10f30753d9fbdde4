import Foundation
import Testing
import TestSupport

/// Package.swift names every module a target imports: a module reached only
/// through another target's dependencies builds by luck of the build order.
@Suite struct PackageManifestTests {
    /// Modules of the toolchain, which no target declares.
    static let toolchain: Set<String> = [
        "Foundation", "FoundationEssentials", "FoundationNetworking", "FoundationInternationalization",
        "Glibc", "Musl", "Darwin", "Dispatch", "Synchronization", "Testing", "XCTest",
    ]

    /// Each target's name and the quoted names in its declaration (its
    /// targets, and its products with their packages).
    static func targets(in manifest: String) -> [(name: String, declared: Set<String>)] {
        let starts = [".target(", ".executableTarget(", ".testTarget(", ".systemLibrary("]
        var bodies: [Substring] = []
        var rest = manifest[...]
        while let start = starts.compactMap({ rest.range(of: $0) }).min(by: { $0.lowerBound < $1.lowerBound }) {
            let after = rest[start.upperBound...]
            let next = starts.compactMap { after.range(of: $0)?.lowerBound }.min() ?? after.endIndex
            bodies.append(rest[start.lowerBound..<next])
            rest = after[next...]
        }
        return bodies.compactMap { body in
            let quoted = body.split(separator: "\"", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
            guard body.hasPrefix(".target(") || body.hasPrefix(".executableTarget(") || body.hasPrefix(".testTarget("), let name = quoted.first else { return nil }
            return (name, Set(quoted.dropFirst()))
        }
    }

    /// The modules the Swift files under `directory` import.
    static func imports(under directory: String) -> Set<String> {
        var found: Set<String> = []
        let files = FileManager.default.enumerator(atPath: directory)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") } ?? []
        for file in files {
            guard let text = try? String(contentsOfFile: directory + "/" + file, encoding: .utf8) else { continue }
            // Lines inside multi-line string literals (Python, shell) are not Swift.
            var inLiteral = false
            for line in text.split(separator: "\n") {
                if line.components(separatedBy: "\"\"\"").count % 2 == 0 { inLiteral.toggle(); continue }
                if inLiteral { continue }
                var words = line.split(separator: " ").map(String.init)
                while let first = words.first, first.hasPrefix("@") || ["public", "package", "internal"].contains(first) { words.removeFirst() }
                guard words.first == "import", words.count >= 2 else { continue }
                let module = ["struct", "enum", "class", "func", "protocol"].contains(words[1]) && words.count >= 3 ? words[2] : words[1]
                found.insert(String(module.prefix { $0 != "." }))
            }
        }
        return found
    }

    @Test func everyImportedModuleIsDeclared() throws {
        let manifest = try String(contentsOfFile: packageRoot + "/Package.swift", encoding: .utf8)
        let targets = Self.targets(in: manifest)
        #expect(targets.count >= 30, "found \(targets.map(\.name))")
        var checked = 0
        for target in targets {
            let directory = ["/Sources/", "/Tests/"].map { packageRoot + $0 + target.name }.first { FileManager.default.fileExists(atPath: $0) }
            guard let directory else { continue }
            checked += 1
            let undeclared = Self.imports(under: directory).subtracting(target.declared).subtracting(Self.toolchain).subtracting([target.name])
            #expect(undeclared.isEmpty, "\(target.name) imports \(undeclared.sorted().joined(separator: ", ")) without declaring them in Package.swift")
        }
        #expect(checked == targets.count)
    }

    @Test func anUndeclaredImportIsFound() throws {
        let manifest = """
            .target(name: "A", dependencies: ["B", .product(name: "Yams", package: "Yams")]),
            .testTarget(
                name: "ATests",
                dependencies: ["A"]
            ),
            .systemLibrary(name: "C", pkgConfig: "c"),
            """
        let targets = Self.targets(in: manifest)
        #expect(targets.map(\.name) == ["A", "ATests"])
        #expect(targets.first?.declared == ["B", "Yams"])
        try withTemporaryDirectory { tmp in
            try writeFile(tmp + "/x.swift", "import Foundation\n@testable import A\nimport struct Yams.Node\n  // import Commented\nlet script = \"\"\"\n    import json\n    \"\"\"\nlet imported = 1\n")
            #expect(Self.imports(under: tmp) == ["Foundation", "A", "Yams"])
        }
    }
}
