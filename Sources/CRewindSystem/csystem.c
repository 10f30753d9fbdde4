#define _GNU_SOURCE
#include <spawn.h>
#include "csystem.h"

int rewind_spawn_file_actions_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

short rewind_spawn_setsid_flag(void) {
    return POSIX_SPAWN_SETSID;
}

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t stop_signal = 0;

static void record_stop(int signal) {
    stop_signal = signal;
}

void rewind_install_stop_handler(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = record_stop;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
}

int rewind_stop_signal(void) {
    return stop_signal;
}
