#ifndef REWIND_SSH_H
#define REWIND_SSH_H

/// libssh2's initialisation, left to the first SSH session.
///
/// git_libgit2_init calls libssh2_init, which initialises OpenSSL for
/// libssh2 (error strings, engines): about 0.2 ms of every start, which a
/// command that never opens an SSH connection waits for. The linker's
/// --wrap (Package.swift) sends libgit2's call here, and nothing is done:
/// libssh2_session_init_ex initialises libssh2 itself when nothing has
/// (`_libssh2_init_if_needed`, Debian's libssh2 1.10), and libssh2_exit
/// at shutdown does nothing when nothing was initialised.

/// How many times libgit2 asked for libssh2_init (for tests).
int rewind_ssh_init_deferrals(void);

#endif
