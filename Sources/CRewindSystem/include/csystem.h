#ifndef REWIND_CSYSTEM_H
#define REWIND_CSYSTEM_H
#include <spawn.h>

/// posix_spawn_file_actions_addchdir_np (glibc >= 2.29), which Swift's
/// Glibc module does not expose.
int rewind_spawn_file_actions_addchdir(posix_spawn_file_actions_t *actions, const char *path);

/// POSIX_SPAWN_SETSID (glibc >= 2.26): the child starts a new session.
/// Closes every descriptor from `from` up in the child: an app inherits
/// nothing of Rewind's (pipes, sockets, the state directory's lock).
int rewind_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from);
short rewind_spawn_setsid_flag(void);



/// Installs a SIGTERM and SIGINT handler that only records the request
/// (async-signal-safe), whichever thread the kernel picks.
void rewind_install_stop_handler(void);

/// The signal received (SIGTERM or SIGINT), or 0.
int rewind_stop_signal(void);

/// Waits up to `milliseconds` for a stop signal (woken at once through a
/// self-pipe); returns the signal, or 0.
int rewind_wait_stop(int milliseconds);
/// The descriptor that becomes readable when a stop signal arrives, or -1.
int rewind_stop_descriptor(void);
#endif
