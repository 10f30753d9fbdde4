#define _GNU_SOURCE
#include <spawn.h>
#include "csystem.h"

int rewind_spawn_file_actions_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

short rewind_spawn_setsid_flag(void) {
    return POSIX_SPAWN_SETSID;
}
