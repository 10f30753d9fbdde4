// The reconcile algorithm
// =======================
//
// Rewind keeps each app's platform at what the followed branch says. One
// reconciler owns one state directory (a lock file says so) and loops:
//
// - every tick (50 ms) it reads the branch's ref, and a change of the ref
//   file (inotify: a push, a sync of the mirror) wakes it at once; a new tip
//   starts a pass at once. A full pass also runs every 30 s to find drift;
// - a pass runs ordered steps. The gates (1-3) each return a `GateResult`:
//   proceed, halted (a human must act), refused (invalid) or retry (after a
//   growing delay); `summarise` records it. The other steps return
//   `Outcome`s, inside `Step`s (record this, retire that, roll these back);
//   `carryOut` (Record.swift) is the one place steps are done and outcomes
//   become the state file, notes, metrics, notifications and log lines:
//   1. observe the tip;
//   2. ancestry gate: the tip must descend from the last commit acted on; a
//      rewritten history halts until `rewind reconcile --accept-rewrite REV`;
//   3. validation gate: the tip's desired state is valid as a whole or
//      refused as a whole (the last good state stays, status says why);
//   4. plan: the app's tree id (its state id) against the applied one; pins
//      hold apps at their pinned tree ("held by pin"). `plan` is a pure
//      function of the desired state and the recorded state;
//   5. order in dependency waves: apps whose dependsOn are satisfied form a
//      wave; the waves run in reverse for a rollback commit;
//   6. apply each wave through the platform drivers and wait until its apps
//      are healthy (timeout), together: processes start at once, exec
//      applies run in the background (at most --concurrency), health is
//      polled in turn (`runWaves`, Pass.swift); a new tip stops the waits
//      it makes moot.
//      Each deploy is a `DeployMachine`: a pure value whose transitions say
//      what to record and what to do next on the platform; `drive`
//      (Pass.swift) records, then acts, then feeds back what happened;
//   7. record: the state file (atomic) and a git note per outcome;
//   8. the releases that failed in the pass go to `AutomaticRollback` (the
//      service serve's alert desk uses too) together: the policy in
//      rewind.yaml decides, one rollback commit for the apps it allows, an
//      escalation for each of the others; the next pass applies that commit;
// - between passes it supervises: crashed processes restart with capped
//   exponential backoff, and health is probed; a release that crash-loops or
//   stays unhealthy during its soak window has failed (step 8 again; the
//   whole path of a crash loop, top-down, starts at Supervision.swift).
//
// The platform drivers (`PlatformDriver`) and the clock are passed in, so
// unit tests run all of this on a fake platform and a manual clock.
//
// Everything is synchronous and single-threaded, waves included: libgit2
// handles are not thread-safe, so they never leave this thread (waiting for
// several apps is polling, not threads), and one loop makes kill -9 at any
// point easy to reason about. Each intent is recorded before its side
// effect (a process before its spawn, with a launch token; a failure before
// its rollback is decided), so a restart adopts what runs, stops what was
// never recorded as running, and decides what was left undecided; what the
// state cannot record is not started.

import Artifacts
import Containers
import DeployModel
import GitKit
import Logging
import Platforms
import ReconcilerStatus
import Rollback
import SystemSupport
import Traffic
import WebClient

#if canImport(Glibc)
import Glibc
#endif

/// The reconciler: one repository, one state directory, one loop.
public final class Reconciler {
    package let options: ReconcilerOptions
    package let repo: DeployRepository
    let store: StateStore
    let notes: NoteRecorder
    let logger: Logger
    let drivers: [Platform: any PlatformDriver]
    let clock: any ReconcilerClock
    package internal(set) var state: ReconcilerState
    /// The desired state of the last valid tip.
    var desired: DesiredView?
    /// The last tip whose signatures passed the policy.
    var verifiedTip: OID?
    /// The state as last written to the state directory.
    private var saved: ReconcilerState?
    /// Deployments by app tree id, so that supervision can restart them.
    var deployments: [OID: Deployment] = [:]
    /// When the triggers are evaluated next (monotonic ms), and since when each breaches (wall ms).
    var nextAnalysis: Int64 = 0
    var breaches: [String: [String: Int64]] = [:]
    /// The `notify` triggers (app/trigger) whose breach was offered to a human, until their query is clear again.
    var suggested: Set<String> = []
    /// Called after every pass (for readiness).
    public var onPass: () -> Void = {}
    /// Restarts crashed processes and probes health between passes (`Supervisor`).
    var supervisor: any Supervising
    /// After a pass could not read the repository: the failures in a row,
    /// and when (monotonic ms) a pass tries again.
    var retry: (attempt: Int, at: Int64)?
    /// Repository reads that failed are retried after 1 s, 2 s... up to 30 s.
    static let retryBackoff = Backoff(base: 1_000, cap: 30_000)
    /// A release that waits for its platform (an engine that does not
    /// answer): the passes in a row that deferred one, and when the next
    /// tries again (after 1 s, 2 s... up to 30 s).
    var deferral: (passes: Int, at: Int64?) = (0, nil)
    /// When (monotonic ms) a pass looks again at the releases a staged rollout across hosts holds.
    var stageRecheckAt: Int64?
    /// This host's status as last written under refs/rewind/hosts/ (`--host`), and when (monotonic ms).
    var hostStatusWritten: (content: String, at: Int64)?
    /// The apps' proxies, and what each was last told to route.
    let router: any TrafficRouting
    var routed: [String: [String: TrafficState.Server]] = [:]
    /// Rollout analysis: when each app's queries run next (monotonic ms), and since when each breaches (wall ms).
    var nextRolloutAnalysis: [String: Int64] = [:]
    var rolloutBreaches: [String: [String: Int64]] = [:]
    /// When the operators' requests, and the proxies, are looked at next (monotonic ms).
    var nextRequestLook: Int64 = 0
    var nextProxyLook: Int64 = 0
    /// When a rollout's stable version that died may be started again (monotonic ms).
    var nextStableRestart: [String: Int64] = [:]
    /// When each rollout's new version is probed next (monotonic ms), and its failed probes in a row.
    var nextRolloutProbe: [String: Int64] = [:]
    var rolloutProbeFailures: [String: Int] = [:]
    /// Runs migrations' down commands and rollback hooks.
    let commands: CommandRunner
    /// Pulls and checks artifacts (OCI, downloads, files with a sha256) into `<state>/artifacts`.
    let artifacts: ArtifactStore
    /// The tip the last pass looked at, and when (monotonic ms) the last full pass ran.
    private var lastTip: OID?
    private var lastFull: Int64 = 0
    /// Set when the state could not record an intent: nothing more is
    /// started, and the loop stops with this error.
    var fatal: StateError?
    private var lock: Int32?

    /// Opens the repository and the state directory, taking its lock.
    /// `drivers` default to the process and exec platforms (`standardDrivers`),
    /// `router` to one HAProxy per app with `traffic:`.
    public init(options: ReconcilerOptions, logger: Logger, drivers: [Platform: any PlatformDriver]? = nil,
                clock: any ReconcilerClock = SystemClock(), router: (any TrafficRouting)? = nil) throws {
        self.options = options
        supervisor = Supervisor(maxRestartBackoff: options.maxRestartBackoff)
        self.logger = logger
        self.clock = clock
        repo = try DeployRepository(path: options.repoPath, branch: options.branch)
        store = StateStore(repo, directory: options.stateDirectory)
        notes = NoteRecorder(git: repo.git, host: options.host ?? Clock.hostName())
        self.drivers = drivers ?? Self.standardDrivers(options, stateDirectory: store.directory)
        self.router = router ?? HAProxyRouter(directory: store.trafficDirectory, haproxy: options.haproxy)
        artifacts = try options.artifactStore(stateDirectory: store.directory)
        commands = CommandRunner(baseEnvironment: InheritedEnvironment.forApps(options.environment, deny: options.secretEnvironment), searchPath: options.searchPath)
        guard let fd = FileIO.tryLock(store.lockFile) else {
            let pid = store.runningPid().map { " (pid \($0))" } ?? ""
            throw StateError("another reconciler\(pid) is running on \(store.directory)", hint: "stop it first, or pass a different --state-dir", busy: true)
        }
        lock = fd
        state = try store.load()
        saved = state
        _ = FileIO.writeAtomically(store.pidFile, text: "\(getpid())\n")
        if let engine = (self.drivers[.container] as? ContainerPlatform)?.engine { _ = FileIO.writeAtomically(store.containerSocketFile, text: engine.socket + "\n") }
        if let host = options.host { _ = FileIO.writeAtomically(store.hostFile, text: host + "\n") } else { FileIO.removeTree(store.hostFile) }
    }

    deinit {
        if let lock { FileIO.release(lock) }
    }

    /// Runs until SIGTERM or SIGINT (or, with `once`, until converged).
    public func run() throws {
        if let accepted = options.acceptRewrite { try accept(accepted) }
        adoptAfterRestart()
        // A push (or a sync of the mirror) wakes the loop at once, not at the next poll.
        let branchMoved = Self.watchBranch(of: repo)
        // Stopped before the first pass (a signal during the first sync): start nothing.
        while !options.stop.requested {
            let result: Tick
            do {
                result = try tick(now: clock.monotonicMilliseconds())
            } catch {
                shutDown()
                throw error
            }
            if result == .passAgain { continue }
            if result == .converged || branchMoved.wait(milliseconds: options.pollInterval, stop: options.stop) == .stopped { break }
        }
        shutDown()
    }

    /// Watches the followed branch's ref file, and packed-refs.
    static func watchBranch(of repo: DeployRepository) -> FileWatch {
        FileWatch(files: repo.git.referenceFiles([repo.branchRef]))
    }

    /// What a tick came to.
    package enum Tick: Equatable {
        /// A commit was written (a rollback) or the tip moved: pass again at once.
        case passAgain
        /// `once`: the tip is applied; the loop ends.
        case converged
        /// Supervision, traffic and analysis ran; the next tick comes after `pollInterval`.
        case idle
    }

    /// One turn of the loop at `now` (monotonic ms), the same for `run` and
    /// the unit tests' manual clock: a pass when the tip moved, a full pass
    /// is due or a failed read is to be retried; then the notes, supervision,
    /// traffic and analysis. Throws when the state cannot record an intent.
    package func tick(now: Int64) throws -> Tick {
        if consumeAcceptRequest() { lastTip = nil }
        let tip = try? repo.tip()
        let full = now - lastFull >= options.fullPassInterval
        let retryDue = [retry?.at, deferral.at, stageRecheckAt].contains { $0.map { now >= $0 } ?? false }
        if tip != lastTip || full || retryDue {
            if full { lastFull = now }
            lastTip = tip
            let moved = pass(full: full)
            onPass()
            if let fatal {
                logger.critical("\(fatal.message); stopping: nothing is started that the state cannot record")
                throw fatal
            }
            if moved {
                lastTip = nil
                return .passAgain
            }
        }
        flushNotes()
        if options.once { return .converged }
        var written = supervise()
        superviseTraffic()
        written = carryOut(analyse()) ?? written
        flushNotes()
        publishHostStatus()
        // A rollback commit written here is applied at once, as a pass's is.
        return written == nil ? .idle : .passAgain
    }

    private func shutDown() {
        if !options.once && !options.keepAppsOnExit {
            for (name, app) in state.apps.sorted(by: { $0.key < $1.key }) {
                guard let instance = app.instance, instance.runsOn == .process else { continue }
                logger.info("stopping \(name) \(instance.version)")
                drivers[instance.runsOn]?.stop(instance)
                if let stable = app.rollout?.stable { drivers[stable.runsOn]?.stop(stable) }
                state.apps[name]?.instance = nil
                state.apps[name]?.health = .stopped
            }
            router.stopAll()
        }
        save()
        flushNotes()
        if let text = FileIO.readText(store.pidFile), text.trimmingCharacters() == "\(getpid())" { FileIO.removeTree(store.pidFile) }
    }

    /// Writes what changed since the last save; a failure is logged (the
    /// next save retries).
    func save() {
        guard state != saved else { return }
        do {
            try store.save(state, previous: saved)
            saved = state
        } catch {
            logger.error("\(error)")
        }
    }

    /// Records what is about to start or has just started (`pending`); the
    /// change must reach the disk before the side effect, so this throws.
    func journal(_ app: String, _ pending: Instance) throws {
        state.apps[app, default: AppState()].pending = pending
        do {
            try store.save(state, previous: saved)
            saved = state
        } catch let error as StateError {
            fatal = error
            throw error
        }
    }

    /// Queues outcomes for the notes (kept in the state until written).
    func note(_ entries: [NoteRecorder.Entry], on commit: OID) {
        state.pendingNotes += notes.render(entries, on: commit, now: clock.wallMilliseconds())
        save()
    }

    /// Writes the queued notes: one compare-and-swap for all of them.
    package func flushNotes() {
        guard !state.pendingNotes.isEmpty else { return }
        do {
            try notes.write(state.pendingNotes)
            state.pendingNotes = []
            save()
            options.onWrite()
        } catch {
            logger.error("cannot write notes under \(ReleaseNote.notesRef): \(error); retrying after the next pass")
        }
    }
}

extension Reconciler {
    /// After a restart: stop what was started but never confirmed, and
    /// restart confirmed processes that are gone.
    func adoptAfterRestart() {
        for (name, app) in state.apps.sorted(by: { $0.key < $1.key }) {
            if let pending = app.pending {
                logger.notice("stopping \(name) \(pending.version): started by a reconciler that did not finish")
                drivers[pending.runsOn]?.stop(pending)
                carryOut([.record(.release(.pending(app: name, nil)))])
            }
            if let instance = app.instance, instance.runsOn.isSupervised, app.health != .failed, let driver = drivers[instance.runsOn] {
                let alive = driver.isRunning(instance)
                if !alive { carryOut([.record(.supervision(.lost(app: name, instance, restart: !options.once)))]) }
            }
        }
    }

    /// Accepts a rewritten history: the tip must descend from `revision` from now on.
    func accept(_ revision: String) throws {
        let commit = try repo.resolve(revision)
        logger.notice("history rewrite accepted at \(commit.short)")
        state.lastApplied = commit
        state.halted = nil
        save()
    }

    /// `rewind reconcile --accept-rewrite` run while this reconciler holds
    /// the lock leaves the commit in a file; take it from there.
    private func consumeAcceptRequest() -> Bool {
        guard let text = FileIO.readText(store.acceptFile) else { return false }
        FileIO.removeTree(store.acceptFile)
        do { try accept(text.trimmingCharacters()) } catch { logger.error("cannot accept the rewrite: \(error)") }
        return true
    }
}
