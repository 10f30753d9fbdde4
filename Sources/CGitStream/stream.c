// Rewind's socket stream for libgit2: deadlines and cancellation for every
// git network transfer. See include/rewind_stream.h for what is bounded.
#define _GNU_SOURCE
#include "rewind_stream.h"
#include "rewind_certificates.h"

#include <git2.h>
#include <git2/sys/stream.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct rewind_transfer {
    int64_t connect_ms;
    int64_t idle_ms;
    _Atomic int outcome;      // rewind_transfer_outcome; the first reason wins
    int references;           // the thread that began it, plus each stream (under `lock`)
    struct rewind_transfer *next_active;
} rewind_transfer;

typedef struct rewind_stream {
    git_stream parent;
    // These three must stay in this order, right after `parent`: libgit2's
    // SSH transport reads `s` as the field of its own git_socket_stream.
    char *host;
    char *port;
    int s;
    rewind_transfer *transfer; // nil: no deadlines, only cancellation
    _Atomic int own_io;        // read or write went through this stream (not libssh2)
    int64_t connected_at;
    struct rewind_stream *next;
} rewind_stream;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static rewind_stream *streams = NULL;           // open streams, for the watchdog
static rewind_transfer *active = NULL;          // begun and not ended
static _Atomic int cancelled_all = 0;
static _Thread_local rewind_transfer *current = NULL;
static int open_count = 0;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_outcome(rewind_transfer *t, int outcome) {
    if (!t) return;
    int expected = REWIND_TRANSFER_OK;
    atomic_compare_exchange_strong(&t->outcome, &expected, outcome);
}

static void release_transfer_locked(rewind_transfer *t) {
    if (t && --t->references == 0) free(t);
}

static int is_cancelled(rewind_stream *st) {
    if (atomic_load(&cancelled_all)) {
        set_outcome(st->transfer, REWIND_TRANSFER_CANCELLED);
        return 1;
    }
    return st->transfer && atomic_load(&st->transfer->outcome) == REWIND_TRANSFER_CANCELLED;
}

static void fail(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *format, ...) {
    char message[512];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    git_error_set_str(GIT_ERROR_NET, message);
}

static double seconds(int64_t ms) { return (double)ms / 1000.0; }

/// Waits for `events` on the stream's socket: 1 ready, -1 failed (error set).
static int wait_for(rewind_stream *st, short events, const char *doing, const char *silence) {
    int64_t started = now_ms();
    int64_t idle = st->transfer ? st->transfer->idle_ms : 0;
    for (;;) {
        if (is_cancelled(st)) {
            fail("cancelled while %s %s:%s", doing, st->host, st->port);
            return -1;
        }
        int slice = 100;
        if (idle > 0) {
            int64_t left = idle - (now_ms() - started);
            if (left <= 0) {
                set_outcome(st->transfer, REWIND_TRANSFER_IDLE_TIMEOUT);
                fail("the git host %s:%s %s for %.3g s (idle deadline)", st->host, st->port, silence, seconds(idle));
                return -1;
            }
            if (left < slice) slice = (int)left;
        }
        struct pollfd p = {st->s, events, 0};
        int ready = poll(&p, 1, slice);
        if (ready < 0 && errno != EINTR) {
            fail("error while %s %s:%s: %s", doing, st->host, st->port, strerror(errno));
            return -1;
        }
        if (ready > 0) return 1;
    }
}

static int connect_one(rewind_stream *st, struct addrinfo *address, int64_t deadline) {
    int fd = socket(address->ai_family, address->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, address->ai_protocol);
    if (fd < 0) return -1;
    if (connect(fd, address->ai_addr, address->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) { close(fd); return -1; }
        for (;;) {
            if (is_cancelled(st)) { close(fd); errno = ECANCELED; return -1; }
            int slice = 100;
            if (deadline > 0) {
                int64_t left = deadline - now_ms();
                if (left <= 0) { close(fd); errno = ETIMEDOUT; return -1; }
                if (left < slice) slice = (int)left;
            }
            struct pollfd p = {fd, POLLOUT, 0};
            int ready = poll(&p, 1, slice);
            if (ready < 0 && errno != EINTR) { close(fd); return -1; }
            if (ready > 0) break;
        }
        int error = 0;
        socklen_t length = sizeof error;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) {
            close(fd);
            errno = error ? error : errno;
            return -1;
        }
    }
    // Blocking again, as libssh2 expects of the descriptor it is handed;
    // Rewind's own reads and writes poll first.
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    return fd;
}

static int stream_connect(git_stream *stream) {
    rewind_stream *st = (rewind_stream *)stream;
    if (is_cancelled(st)) {
        fail("cancelled before connecting to %s:%s", st->host, st->port);
        return -1;
    }
    struct addrinfo hints, *info = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_UNSPEC;
    int rc = getaddrinfo(st->host, st->port, &hints, &info);
    if (rc != 0) {
        fail("failed to resolve address for %s: %s", st->host, gai_strerror(rc));
        return -1;
    }
    int64_t limit = st->transfer ? st->transfer->connect_ms : 0;
    int64_t deadline = limit > 0 ? now_ms() + limit : 0;
    int fd = -1, last_error = 0;
    for (struct addrinfo *p = info; p && fd < 0; p = p->ai_next) {
        fd = connect_one(st, p, deadline);
        if (fd < 0) last_error = errno;
        if (last_error == ETIMEDOUT || last_error == ECANCELED) break;
    }
    freeaddrinfo(info);
    if (fd < 0) {
        if (last_error == ECANCELED) {
            fail("cancelled while connecting to %s:%s", st->host, st->port);
        } else if (last_error == ETIMEDOUT && deadline > 0) {
            set_outcome(st->transfer, REWIND_TRANSFER_CONNECT_TIMEOUT);
            fail("could not connect to %s:%s within %.3g s (connect deadline)", st->host, st->port, seconds(limit));
        } else {
            fail("failed to connect to %s:%s: %s", st->host, st->port, strerror(last_error));
        }
        return -1;
    }
    pthread_mutex_lock(&lock);
    if (st->s >= 0) close(st->s);
    st->s = fd;
    st->connected_at = now_ms();
    pthread_mutex_unlock(&lock);
    return 0;
}

static ssize_t stream_read(git_stream *stream, void *data, size_t length) {
    rewind_stream *st = (rewind_stream *)stream;
    atomic_store(&st->own_io, 1);
    for (;;) {
        if (wait_for(st, POLLIN, "reading from", "sent nothing") < 0) return -1;
        ssize_t n = recv(st->s, data, length, MSG_DONTWAIT);
        if (n >= 0) return n;
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
        if (is_cancelled(st)) fail("cancelled while reading from %s:%s", st->host, st->port);
        else fail("error receiving data from %s:%s: %s", st->host, st->port, strerror(errno));
        return -1;
    }
}

static ssize_t stream_write(git_stream *stream, const char *data, size_t length, int flags) {
    rewind_stream *st = (rewind_stream *)stream;
    atomic_store(&st->own_io, 1);
    for (;;) {
        if (wait_for(st, POLLOUT, "writing to", "took no data") < 0) return -1;
        ssize_t n = send(st->s, data, length, flags | MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) return n;
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
        if (is_cancelled(st)) fail("cancelled while writing to %s:%s", st->host, st->port);
        else fail("error sending data to %s:%s: %s", st->host, st->port, strerror(errno));
        return -1;
    }
}

static int stream_close(git_stream *stream) {
    rewind_stream *st = (rewind_stream *)stream;
    // Under the lock: the watchdog never shuts down a descriptor number
    // that has been closed and handed out again.
    pthread_mutex_lock(&lock);
    int rc = st->s >= 0 ? close(st->s) : 0;
    st->s = -1;
    pthread_mutex_unlock(&lock);
    return rc;
}

static void stream_free(git_stream *stream) {
    rewind_stream *st = (rewind_stream *)stream;
    pthread_mutex_lock(&lock);
    if (st->s >= 0) close(st->s);
    st->s = -1;
    for (rewind_stream **p = &streams; *p; p = &(*p)->next) {
        if (*p == st) { *p = st->next; break; }
    }
    release_transfer_locked(st->transfer);
    open_count--;
    pthread_mutex_unlock(&lock);
    free(st->host);
    free(st->port);
    free(st);
}

static int stream_new(git_stream **out, const char *host, const char *port) {
    // TLS may wrap this stream: the CA bundle git_libgit2_init deferred is read first.
    rewind_certificates_load();
    rewind_stream *st = calloc(1, sizeof *st);
    if (!st) { git_error_set_oom(); return -1; }
    st->host = strdup(host ? host : "");
    st->port = strdup(port ? port : "");
    if (!st->host || !st->port) {
        free(st->host); free(st->port); free(st);
        git_error_set_oom();
        return -1;
    }
    st->s = -1;
    st->parent.version = GIT_STREAM_VERSION;
    st->parent.connect = stream_connect;
    st->parent.read = stream_read;
    st->parent.write = stream_write;
    st->parent.close = stream_close;
    st->parent.free = stream_free;
    pthread_mutex_lock(&lock);
    st->transfer = current;
    if (current) current->references++;
    st->next = streams;
    streams = st;
    open_count++;
    pthread_mutex_unlock(&lock);
    *out = &st->parent;
    return 0;
}

/// Every 100 ms: SSH connections (libssh2 reads the descriptor itself, so
/// Rewind's reads never wait) whose bytes stopped moving for the idle
/// deadline are shut down, which ends libssh2's wait with an error.
static void *watchdog(void *unused) {
    (void)unused;
    for (;;) {
        usleep(100 * 1000);
        pthread_mutex_lock(&lock);
        int64_t now = now_ms();
        for (rewind_stream *st = streams; st; st = st->next) {
            if (st->s < 0 || !st->transfer || atomic_load(&st->own_io)) continue;
            if (atomic_load(&st->transfer->outcome) == REWIND_TRANSFER_CANCELLED || atomic_load(&cancelled_all)) {
                shutdown(st->s, SHUT_RDWR);
                continue;
            }
            int64_t idle = st->transfer->idle_ms;
            if (idle <= 0) continue;
            struct tcp_info info;
            socklen_t length = sizeof info;
            int64_t quiet = now - st->connected_at;
            if (getsockopt(st->s, IPPROTO_TCP, TCP_INFO, &info, &length) == 0) {
                int64_t moved = info.tcpi_last_data_recv < info.tcpi_last_data_sent ? info.tcpi_last_data_recv : info.tcpi_last_data_sent;
                if (moved < quiet) quiet = moved;
            }
            if (quiet >= idle) {
                set_outcome(st->transfer, REWIND_TRANSFER_IDLE_TIMEOUT);
                shutdown(st->s, SHUT_RDWR);
            }
        }
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

int rewind_stream_install(void) {
    static git_stream_registration registration;
    memset(&registration, 0, sizeof registration);
    registration.version = GIT_STREAM_VERSION;
    registration.init = stream_new;
    return git_stream_register(GIT_STREAM_STANDARD, &registration);
}

static void start_watchdog(void) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, watchdog, NULL) == 0) pthread_detach(thread);
}

void *rewind_transfer_begin(int64_t connect_ms, int64_t idle_ms) {
    // The watchdog starts with the first transfer: commands that never
    // reach the network pay nothing for it.
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, start_watchdog);
    rewind_transfer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->connect_ms = connect_ms;
    t->idle_ms = idle_ms;
    t->references = 1;
    pthread_mutex_lock(&lock);
    t->next_active = active;
    active = t;
    if (atomic_load(&cancelled_all)) atomic_store(&t->outcome, REWIND_TRANSFER_CANCELLED);
    pthread_mutex_unlock(&lock);
    current = t;
    return t;
}

rewind_transfer_outcome rewind_transfer_end(void *handle) {
    rewind_transfer *t = handle;
    if (!t) return REWIND_TRANSFER_OK;
    if (current == t) current = NULL;
    int outcome = atomic_load(&t->outcome);
    pthread_mutex_lock(&lock);
    for (rewind_transfer **p = &active; *p; p = &(*p)->next_active) {
        if (*p == t) { *p = t->next_active; break; }
    }
    release_transfer_locked(t);
    pthread_mutex_unlock(&lock);
    return (rewind_transfer_outcome)outcome;
}

void rewind_transfer_cancel_all(void) {
    atomic_store(&cancelled_all, 1);
    pthread_mutex_lock(&lock);
    for (rewind_transfer *t = active; t; t = t->next_active) set_outcome(t, REWIND_TRANSFER_CANCELLED);
    for (rewind_stream *st = streams; st; st = st->next) {
        if (st->s >= 0) shutdown(st->s, SHUT_RDWR);
    }
    pthread_mutex_unlock(&lock);
}

int rewind_stream_open_count(void) {
    pthread_mutex_lock(&lock);
    int n = open_count;
    pthread_mutex_unlock(&lock);
    return n;
}
