import Foundation
import GitKit
import Logging
import NIOCore
import ReconcilerStatus
import Remote
import Rollback
import ServiceLifecycle
import Synchronization
import SystemSupport

/// One Server-Sent Event: `status`, `tip`, `rollback`, `notes`, or a
/// keep-alive comment (empty name).
struct ServerEvent: Sendable {
    let id: Int
    let name: String
    /// One line of JSON.
    let data: String

    /// The event as the stream carries it.
    var wire: String {
        name.isEmpty ? ": keep-alive\n\n" : "id: \(id)\nevent: \(name)\ndata: \(data)\n\n"
    }
}

/// Fans events out to the connected browsers (`GET /api/v1/events`). Each
/// subscriber has a bounded buffer: a slow one loses its oldest events,
/// never the server's memory. A new subscriber gets the last status first.
final class EventHub: Sendable {
    private struct State {
        var subscribers: [Int: AsyncStream<ServerEvent>.Continuation] = [:]
        var nextSubscriber = 0
        var nextEvent = 1
        var lastStatus: ServerEvent?
        var closed = false
    }
    private let state = Mutex(State())
    /// At most this many streams at once; more get 503.
    let capacity: Int

    init(capacity: Int = 256) { self.capacity = capacity }

    var subscriberCount: Int { state.withLock { $0.subscribers.count } }
    /// The last status published: what a new subscriber gets first.
    var lastStatus: ServerEvent? { state.withLock { $0.lastStatus } }

    /// A stream of events from now on, starting with the last status; nil
    /// when the hub is full or closed (shutting down). The stream ends
    /// when `closed` completes (the client hung up).
    func subscribe(until closed: EventLoopFuture<Void>? = nil) -> AsyncStream<ServerEvent>? {
        let (stream, continuation) = AsyncStream<ServerEvent>.makeStream(bufferingPolicy: .bufferingNewest(64))
        let id: Int? = state.withLock { s in
            guard !s.closed, s.subscribers.count < capacity else { return nil }
            let id = s.nextSubscriber
            s.nextSubscriber += 1
            s.subscribers[id] = continuation
            if let last = s.lastStatus { continuation.yield(last) }
            return id
        }
        guard let id else { continuation.finish(); return nil }
        continuation.onTermination = { [weak self] _ in self?.state.withLock { _ = $0.subscribers.removeValue(forKey: id) } }
        closed?.whenComplete { _ in continuation.finish() }
        return stream
    }

    /// Sends an event to every subscriber.
    func publish(_ name: String, _ data: JSON) {
        let text = String(decoding: data.bytes(indent: nil), as: UTF8.self)
        let (event, subscribers) = state.withLock { s in
            let event = ServerEvent(id: s.nextEvent, name: name, data: text)
            s.nextEvent += 1
            if name == "status" { s.lastStatus = event }
            return (event, Array(s.subscribers.values))
        }
        for subscriber in subscribers { subscriber.yield(event) }
    }

    /// A comment line, so that a closed connection is noticed.
    func keepAlive() {
        let subscribers = state.withLock { Array($0.subscribers.values) }
        for subscriber in subscribers { subscriber.yield(ServerEvent(id: 0, name: "", data: "")) }
    }

    /// Ends every stream and refuses new ones (graceful shutdown: open
    /// streams must not hold the server up).
    func close() {
        let subscribers: [AsyncStream<ServerEvent>.Continuation] = state.withLock { s in
            s.closed = true
            defer { s.subscribers = [:] }
            return Array(s.subscribers.values)
        }
        for subscriber in subscribers { subscriber.finish() }
    }
}

/// Watches the repository and the state directory on a thread of its own
/// and publishes what changed: a new tip (and whether it is a rollback),
/// new notes, and the apps' status as `rewind status` shows it. Polls every
/// `intervalMilliseconds`: cheap (three refs, a few file stats) until
/// something moves. Catches every writer alike: the reconciler, the desk,
/// the CLI, a push.
final class EventWatcher: Service, Sendable {
    let hub: EventHub
    let repoPath: String
    let branch: String?
    let stateDirectory: String?
    let intervalMilliseconds: Int64
    let logger: Logger
    private let stop = StopFlag()

    init(hub: EventHub, repoPath: String, branch: String?, stateDirectory: String?, intervalMilliseconds: Int64 = 100, logger: Logger) {
        self.hub = hub
        self.repoPath = repoPath
        self.branch = branch
        self.stateDirectory = stateDirectory
        self.intervalMilliseconds = intervalMilliseconds
        self.logger = logger
    }

    func run() async throws {
        await withGracefulShutdownHandler {
            await withCheckedContinuation { (finished: CheckedContinuation<Void, Never>) in
                let thread = Thread { [self] in
                    self.loop()
                    finished.resume()
                }
                thread.name = "rewind-events"
                thread.start()
            }
        } onGracefulShutdown: { [hub, self] in
            finish()
            hub.close()
        }
    }

    private struct Seen: Equatable {
        var tip: OID?
        var notes: [OID?] = []
        var files: [String] = []
    }

    /// What the loop has seen and shown so far.
    private struct Watch {
        var seen = Seen()
        var shown: [String] = []
        var lastStatusAt: Int64 = 0
        var lastKeepAlive = Clock.monotonicMilliseconds()
        var previousApps: [String: AppStatus] = [:]
        let cache = StatusCache()
    }

    /// Ends `loop` (at most one interval later).
    func finish() { stop.stop() }

    /// Looks at the repository and the state until `finish`, publishing what changed.
    func loop() {
        var repo: DeployRepository?
        var changes: FileWatch?
        var watch = Watch()
        var idleTicks = 0
        while !stop.requested {
            // Nobody listening: a look every second is enough (the first
            // listener gets a fresh status within one).
            if hub.subscriberCount == 0, idleTicks < 9, watch.lastStatusAt != 0 {
                idleTicks += 1
                _ = stop.wait(milliseconds: intervalMilliseconds)
                continue
            }
            idleTicks = 0
            do {
                if repo == nil {
                    let opened = try DeployRepository(path: repoPath, branch: branch)
                    repo = opened
                    changes = watchChanges(opened)
                }
                if let repo { try look(repo, &watch) }
            } catch {
                logger.debug("events: \(error)")
                repo = nil
                _ = stop.wait(milliseconds: 1_000)
            }
            // A write of what `look` reads wakes the loop at once; the interval stays the safety net.
            if let changes { _ = changes.wait(milliseconds: intervalMilliseconds, stop: stop) } else { _ = stop.wait(milliseconds: intervalMilliseconds) }
        }
    }

    /// What `look` reads, to watch: the branch and notes refs, the mirror's
    /// sync status and outbox, and the reconciler's state files.
    private func watchChanges(_ repo: DeployRepository) -> FileWatch {
        let gitDirectory = repo.git.gitDirectory
        return FileWatch(files: repo.git.referenceFiles([repo.branchRef] + ReleaseNote.notesRefs) + [RemoteSyncStatus.file(gitDirectory: gitDirectory)],
                         directories: [Outbox(gitDirectory: gitDirectory).directory] + (stateDirectory.map { StateStore(directory: $0).writtenDirectories } ?? []))
    }

    /// One look: a moved tip, moved notes, and the status when it changed.
    private func look(_ repo: DeployRepository, _ watch: inout Watch) throws {
        let tip = try? repo.git.referenceTarget(repo.branchRef)
        let notes = ReleaseNote.notesRefs.map { ((try? repo.git.referenceTarget($0)) ?? nil) }
        let now = Clock.monotonicMilliseconds()
        let current = Seen(tip: tip ?? nil, notes: notes, files: stateSignature(gitDirectory: repo.git.gitDirectory))
        if current.tip != watch.seen.tip, let commit = current.tip, watch.seen.tip != nil || watch.lastStatusAt != 0 {
            publishTip(repo, commit, previous: watch.seen.tip)
        }
        if current.notes != watch.seen.notes, watch.lastStatusAt != 0 {
            for (ref, (old, new)) in zip(ReleaseNote.notesRefs, zip(watch.seen.notes, current.notes)) where old != new {
                hub.publish("notes", .object([("ref", .string(ref)), ("head", .optional(new?.hex))]))
            }
        }
        // Health can change without a file write (a process that
        // died): the status is looked at again every 2 s regardless.
        // With nobody listening, it is not computed at all (the
        // first listener gets a fresh one on the next look).
        if hub.subscriberCount == 0 {
            watch.shown = []
            watch.previousApps = [:]
            if watch.lastStatusAt == 0 { watch.lastStatusAt = now }
        } else if current != watch.seen || now - watch.lastStatusAt >= 2_000 {
            try publishStatus(repo, &watch)
            watch.lastStatusAt = now
        }
        watch.seen = current
        if now - watch.lastKeepAlive >= 15_000 {
            hub.keepAlive()
            watch.lastKeepAlive = now
        }
    }

    /// The status, with what changed per app, when what it shows changed.
    private func publishStatus(_ repo: DeployRepository, _ watch: inout Watch) throws {
        let report = try StatusReport.build(repo: repo, stateDirectory: stateDirectory, cache: watch.cache)
        let visible = Self.visible(report)
        guard visible != watch.shown else { return }
        let changes = Self.changes(from: watch.previousApps, to: report.apps)
        var fields = [("status", report.json)]
        if !changes.isEmpty { fields.append(("changes", .array(changes))) }
        hub.publish("status", .object(fields))
        watch.shown = visible
        watch.previousApps = Dictionary(report.apps.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The state directory's files that status reads, by size and time.
    /// (And the mirror's sync status and outbox in the git directory.)
    private func stateSignature(gitDirectory: String) -> [String] {
        let outbox = Outbox(gitDirectory: gitDirectory).directory
        var files = [RemoteSyncStatus.file(gitDirectory: gitDirectory), outbox] + FileIO.list(outbox).sorted().map { outbox + "/" + $0 }
        if let directory = stateDirectory {
            let store = StateStore(directory: directory)
            files += [store.stateFile, store.escalationsFile] + FileIO.list(store.appsDirectory).sorted().map { store.appsDirectory + "/" + $0 }
        }
        return files.map { path in FileIO.signature(path).map { "\(path):\($0.size):\($0.modified)" } ?? "\(path):-" }
    }

    private func publishTip(_ repo: DeployRepository, _ commit: OID, previous: OID?) {
        guard let object = try? repo.git.commit(commit) else { return }
        let subject = object.message.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
        var fields: [(String, JSON)] = [("commit", .string(commit.hex)), ("previous", .optional(previous?.hex)), ("subject", .string(Bounded.text(subject, limit: 200)))]
        if let trailers = RollbackTrailers.parse(object.message) {
            let rollback: [(String, JSON)] = [("action", .string(trailers.action.rawValue)), ("apps", .array(trailers.apps.map { .string($0) })),
                                              ("trigger", .string(trailers.trigger.rawValue)), ("actor", .optional(trailers.actor)), ("reason", .optional(trailers.reason))]
            hub.publish("tip", .object(fields + [("rollback", .bool(true))]))
            fields += rollback
            hub.publish("rollback", .object(fields))
        } else {
            hub.publish("tip", .object(fields + [("rollback", .bool(false))]))
        }
    }

    /// What a person sees of the status: a change here is worth an event
    /// (a probe's timestamp is not).
    static func visible(_ report: StatusReport) -> [String] {
        var lines = [report.tip ?? "-", report.lastApplied ?? "-", report.halted ?? "-", report.invalid?.commit.hex ?? "-", report.lastError ?? "-",
                     "\(report.unpushed.count)", report.remote?.lastError ?? "-", "\(report.remote?.lastSuccessAt ?? 0)"]
        for a in report.apps {
            lines.append([a.name, a.desiredVersion ?? "-", a.appliedVersion ?? "-", a.appliedCommit ?? "-", a.health.rawValue, a.pin ?? "-", a.lastError ?? "-",
                          a.waitingFor, a.needsHuman ?? "-", a.failed ?? "-", "\(a.restarts)", a.lastRollback?.rollbackCommit?.hex ?? "-"].joined(separator: "\u{1}"))
        }
        return lines
    }

    /// Per app: health and applied version before and after.
    static func changes(from old: [String: AppStatus], to new: [AppStatus]) -> [JSON] {
        new.compactMap { app in
            guard let before = old[app.name] else { return nil }
            var fields: [(String, JSON)] = []
            if before.health != app.health { fields.append(("health", .object([("from", .string(before.health.rawValue)), ("to", .string(app.health.rawValue))]))) }
            if before.appliedVersion != app.appliedVersion { fields.append(("applied", .object([("from", .optional(before.appliedVersion)), ("to", .optional(app.appliedVersion))]))) }
            if before.pin != app.pin { fields.append(("pin", .object([("from", .optional(before.pin)), ("to", .optional(app.pin))]))) }
            return fields.isEmpty ? nil : .object([("app", .string(app.name))] + fields)
        }
    }
}
