#ifndef REWIND_STREAM_H
#define REWIND_STREAM_H
#include <stdint.h>

/// Deadlines for libgit2's network streams (git://, http(s), ssh).
///
/// libgit2 1.5 has no server timeouts: a host that accepts a connection and
/// never answers blocks a fetch or push forever. Rewind registers its own
/// socket stream (`git_stream_register`), which every transport uses: git://
/// and http read and write through it, TLS wraps it, and SSH (libssh2) reads
/// its descriptor directly. A transfer begun on a thread with
/// `rewind_transfer_begin` bounds the streams that thread opens:
///
/// - connecting to each address takes at most `connect_ms`;
/// - a read or write through the stream waits at most `idle_ms` for the peer;
/// - an SSH connection (libssh2 does its own I/O) is shut down by a watchdog
///   thread once no byte has moved either way for `idle_ms` (TCP_INFO);
/// - `rewind_transfer_cancel_all` ends every transfer under way at once
///   (Ctrl-C, shutdown), and every later one before it connects.
///
/// Writes use MSG_NOSIGNAL: a peer that hung up is an error, never SIGPIPE.

/// Registers the stream with libgit2; call once after git_libgit2_init.
/// Returns 0, or libgit2's error code.
int rewind_stream_install(void);

/// Why a transfer's streams were stopped.
typedef enum {
    REWIND_TRANSFER_OK = 0,
    REWIND_TRANSFER_CONNECT_TIMEOUT = 1,
    REWIND_TRANSFER_IDLE_TIMEOUT = 2,
    REWIND_TRANSFER_CANCELLED = 3,
} rewind_transfer_outcome;

/// Starts bounding the streams the calling thread opens; returns a handle
/// for `rewind_transfer_end`. A value <= 0 leaves that deadline off.
void *rewind_transfer_begin(int64_t connect_ms, int64_t idle_ms);

/// Stops bounding; returns what stopped the transfer's streams, if anything.
rewind_transfer_outcome rewind_transfer_end(void *transfer);

/// Cancels every transfer under way and every later one (process shutdown).
void rewind_transfer_cancel_all(void);

/// How many of Rewind's streams are open (for leak tests).
int rewind_stream_open_count(void);
#endif
