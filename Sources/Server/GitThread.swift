#if canImport(Glibc)
import Glibc
#endif

/// A serial executor that runs its jobs on one thread of its own. An actor
/// whose work blocks (libgit2 calls, `flock`, retry sleeps) uses it so that
/// it never holds a thread of Swift's cooperative pool, and its libgit2
/// handles are only ever used from this one thread. The thread lives as
/// long as the process (`rewind serve` makes one).
final class GitThread: SerialExecutor, @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Guarded by `mutex`.
    private var jobs: [UnownedJob] = []

    /// Starts the thread; nil when the system cannot make one.
    init?() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        // The thread owns a reference: the executor outlives every job.
        let owned = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { argument in
            guard let argument else { return nil }
            Unmanaged<GitThread>.fromOpaque(argument).takeRetainedValue().run()
            return nil
        }, owned)
        guard started == 0 else {
            Unmanaged<GitThread>.fromOpaque(owned).release()
            return nil
        }
        pthread_detach(thread)
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        pthread_mutex_lock(mutex)
        jobs.append(job)
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }

    private func run() {
        while true {
            pthread_mutex_lock(mutex)
            while jobs.isEmpty { pthread_cond_wait(condition, mutex) }
            let batch = jobs
            jobs = []
            pthread_mutex_unlock(mutex)
            for job in batch { job.runSynchronously(on: asUnownedSerialExecutor()) }
        }
    }
}
