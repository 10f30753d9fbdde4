import DeployModel
import Foundation
import Testing
import TestSupport
@testable import Artifacts

/// The cache's bound, on entries laid out as the store writes them.
@Suite struct CachePruningTests {
    /// An OCI entry `hex` of `bytes` unpacked bytes and one layer blob, last used at `used` (seconds).
    static func entry(_ cache: String, _ hex: String, bytes: Int, layer: String, used: TimeInterval) throws {
        let record = CacheRecord(reference: "r/x@sha256:\(hex)", layers: ["sha256:" + layer], tree: "sha256:0")
        try writeFile("\(cache)/oci/\(hex).done", record.text)
        try writeFile("\(cache)/oci/\(hex)/file", String(repeating: "x", count: bytes))
        try writeFile("\(cache)/blobs/sha256/\(layer)", String(repeating: "b", count: 100))
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSince1970: used)], ofItemAtPath: "\(cache)/oci/\(hex).done")
    }

    static func hex(_ c: Character) -> String { String(repeating: c, count: 64) }

    /// Least recently used first; kept entries and shared layers stay; it
    /// stops once under the bound, and says when what must stay is over it.
    @Test func leastRecentlyUsedGoesFirstAndWhatRollbackNeedsStays() throws {
        try withTemporaryDirectory { dir in
            let cache = dir + "/cache"
            try Self.entry(cache, Self.hex("a"), bytes: 1_000, layer: Self.hex("1"), used: 1_000)  // oldest, kept
            try Self.entry(cache, Self.hex("b"), bytes: 1_000, layer: Self.hex("2"), used: 2_000)
            try Self.entry(cache, Self.hex("c"), bytes: 1_000, layer: Self.hex("2"), used: 3_000)  // shares b's layer
            try Self.entry(cache, Self.hex("d"), bytes: 1_000, layer: Self.hex("4"), used: 4_000)
            let store = ArtifactStore(options: ArtifactOptions(directory: cache))
            #expect(store.prune(keep: [], limit: 1 << 20).evicted.isEmpty, "under the bound: nothing goes")
            let report = store.prune(keep: ["oci:" + Self.hex("a")], limit: 2_300)
            #expect(report.evicted == ["oci:" + Self.hex("b"), "oci:" + Self.hex("c")])
            #expect(!report.keptOverLimit && report.bytes <= 2_300)
            #expect(store.isCached("oci:" + Self.hex("a")) && store.isCached("oci:" + Self.hex("d")))
            #expect(!FileManager.default.fileExists(atPath: "\(cache)/oci/\(Self.hex("b"))"))
            #expect(!FileManager.default.fileExists(atPath: "\(cache)/blobs/sha256/\(Self.hex("2"))"), "no entry uses the shared layer any more")
            let over = store.prune(keep: ["oci:" + Self.hex("a"), "oci:" + Self.hex("d")], limit: 100)
            #expect(over.evicted.isEmpty && over.keptOverLimit)
        }
    }
}
