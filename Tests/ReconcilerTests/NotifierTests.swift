@testable import Reconciler
import Synchronization
import SystemSupport
import WebClient
import ReconcilerDoubles
import Testing

/// Delivery order, retries and giving up, on a manual clock: no thread, no sleep.
@Suite struct NotifierTests {
    final class Time: Sendable {
        let now = Mutex<Int64>(0)
        func advance(_ ms: Int64) { now.withLock { $0 += ms } }
    }

    func notifier(_ transport: FakeTransport, _ paths: [String], time: Time, log: @escaping @Sendable (String) -> Void = { _ in }) -> Notifier {
        let targets = paths.compactMap { Notifier.Target(url: "http://127.0.0.1:9/\($0)", slack: false) }
        return Notifier(targets: targets, transport: transport, background: false, clock: { time.now.withLock { $0 } }, log: log)
    }

    @Test func aFailedDeliveryIsRetriedAfterItsBackoffAndKeepsItsTargetsOrder() {
        let transport = FakeTransport(answers: ["/a": [503, 0]])
        let time = Time()
        let lines = Mutex<[String]>([])
        let n = notifier(transport, ["a", "b"], time: time, log: { line in lines.withLock { $0.append(line) } })
        n.send(RollbackEvent(.started, app: "api", trigger: "analysis", reason: "first"))
        n.send(RollbackEvent(.completed, app: "api", trigger: "analysis", reason: "second"))
        while n.deliverDue() {}
        // a failed its first event: its second waits behind it; b got both.
        #expect(transport.sent.withLock { $0.map(\.path) } == ["/a", "/b", "/b"])
        time.advance(499)
        #expect(!n.deliverDue(), "not before the 0.5 s backoff")
        time.advance(1)
        #expect(n.deliverDue())  // refused this time: 1 s more
        time.advance(999)
        #expect(!n.deliverDue())
        time.advance(1)
        while n.deliverDue() {}
        let order = transport.sent.withLock { $0.filter { $0.path == "/a" }.map { $0.body.contains("first") ? "first" : "second" } }
        #expect(order == ["first", "first", "first", "second"])
        #expect(lines.withLock { $0 }.count == 2)
        #expect(lines.withLock { $0 }.allSatisfy { !$0.contains("/a") }, "a webhook's path is never logged: \(lines.withLock { $0 })")
    }

    @Test func aTargetThatNeverAnswersIsGivenUpAfterSixAttempts() {
        let transport = FakeTransport(answers: ["/down": Array(repeating: 0, count: 10)])
        let time = Time()
        let lines = Mutex<[String]>([])
        let n = notifier(transport, ["down"], time: time, log: { line in lines.withLock { $0.append(line) } })
        n.send(RollbackEvent(.escalated, app: "api", trigger: "alert", reason: "x"))
        for _ in 0..<20 {
            while n.deliverDue() {}
            time.advance(8_000)
        }
        #expect(transport.sent.withLock { $0.count } == 6)
        #expect(lines.withLock { $0.last }?.contains("gave up after 6 attempts") == true)
    }
}
