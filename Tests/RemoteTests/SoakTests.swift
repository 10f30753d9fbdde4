import Foundation
import Testing
import SystemSupport
import TestSupport

/// A reconciler meant to run for months: nothing may accumulate per sync.
/// libgit2 1.5.1 leaked about 80 KB per fetch or push through
/// git_remote_create_anonymous (its url.insteadOf walk); this soak would
/// have grown by more than 100 MB.
@Suite struct SoakTests {
    /// Resident memory of a process, in KiB.
    static func residentKiB(_ pid: pid_t) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let value = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap({ Int($0) }) else {
            throw TestFailure("no VmRSS for \(pid)")
        }
        return value
    }

    /// The number of the reconciler's last sync (its debug line `sync #N`).
    static func lastSync(_ h: ReconcilerHarness) -> Int {
        let log = h.log
        guard let range = log.range(of: "sync #", options: .backwards) else { return 0 }
        return Int(log[range.upperBound...].prefix { $0.isNumber }) ?? 0
    }

    @Test func memoryStaysFlatThroughThousandsOfSyncsWithTheHostUpThenDown() throws {
        try withRemote(apps: [try execApp("api", version: "1.0")]) { setup in
            let h = setup.harness
            try h.start(["--fetch-interval", "1ms"])
            let pid = try #require(h.pid)
            func after(_ count: Int) throws -> Int {
                try h.waitUntil("\(count) syncs", timeout: 120) { Self.lastSync(h) >= count }
                return try Self.residentKiB(pid)
            }
            let upStart = try after(500)
            let upEnd = try after(2_500)
            #expect(h.log.contains(": ok in"))
            setup.daemon.stop()
            let down = Self.lastSync(h)
            let downStart = try after(down + 500)
            let downEnd = try after(down + 2_500)
            #expect(h.log.suffix(2_000).contains(": failed in"))
            #expect(upEnd - upStart < 5 * 1024, "host up: \(upStart) KiB after 500 syncs, \(upEnd) KiB after 2,500")
            #expect(downEnd - downStart < 5 * 1024, "host down: \(downStart) KiB after 500 failed syncs, \(downEnd) KiB after 2,500")
            #expect(h.waitForExit(timeout: 0) == nil, "the reconciler is alive")
        }
    }
}
