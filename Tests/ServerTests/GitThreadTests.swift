import Foundation
@testable import Server
import Synchronization
import Testing

/// The alert desk's executor: its blocking work never holds a thread of
/// Swift's cooperative pool.
@Suite struct GitThreadTests {
    final class Flag: Sendable {
        let raised = Atomic<Bool>(false)
        /// How many blockers are blocking.
        let blocking = Atomic<Int>(0)
    }

    /// Blocks its thread until the flag is raised (or 120 s pass: in the full
    /// suite, other tests' synchronous bodies hold pool threads for many
    /// seconds, so the releasing task may wait that long for one; a blocker
    /// that held a pool thread would still starve it to the deadline).
    actor Blocker {
        private let thread: GitThread
        nonisolated var unownedExecutor: UnownedSerialExecutor { thread.asUnownedSerialExecutor() }

        init() throws { thread = try #require(GitThread()) }

        func block(until flag: Flag) -> Bool {
            let deadline = Date().addingTimeInterval(120)
            flag.blocking.add(1, ordering: .releasing)
            while !flag.raised.load(ordering: .acquiring) {
                if Date() > deadline { return false }
                usleep(1_000)
            }
            return true
        }
    }

    /// As many blocked actors as the pool has threads, and more: the task
    /// that releases them still runs, so none of them holds a pool thread.
    @Test func blockingActorsLeaveThePoolFree() async throws {
        let flag = Flag()
        let blockers = try (0..<(ProcessInfo.processInfo.activeProcessorCount + 2)).map { _ in try Blocker() }
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for blocker in blockers { group.addTask { await blocker.block(until: flag) } }
            // Once every blocker blocks, release them from the pool: a task
            // that can only run when the blockers leave the pool free.
            group.addTask {
                let deadline = Date().addingTimeInterval(120)
                while flag.blocking.load(ordering: .acquiring) < blockers.count && Date() < deadline { try await Task.sleep(for: .milliseconds(1)) }
                flag.raised.store(true, ordering: .releasing)
                return flag.blocking.load(ordering: .acquiring) == blockers.count
            }
            var all: [Bool] = []
            for try await result in group { all.append(result) }
            return all
        }
        #expect(results.count == blockers.count + 1)
        #expect(results.allSatisfy { $0 }, "a blocked actor held a pool thread: the release came too late")
    }

    /// One actor's jobs all run on its one thread, one at a time.
    @Test func anActorsJobsRunOnItsOneThread() async throws {
        actor Recorder {
            private let thread: GitThread
            nonisolated var unownedExecutor: UnownedSerialExecutor { thread.asUnownedSerialExecutor() }
            init() throws { thread = try #require(GitThread()) }
            var threads: Set<UInt> = []
            func note() { threads.insert(UInt(pthread_self())) }
        }
        let recorder = try Recorder()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<200 { group.addTask { await recorder.note() } }
        }
        #expect(await recorder.threads.count == 1)
    }
}
