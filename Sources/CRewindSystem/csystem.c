#define _GNU_SOURCE
#include <spawn.h>
#include "csystem.h"

int rewind_spawn_file_actions_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

int rewind_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

short rewind_spawn_setsid_flag(void) {
    return POSIX_SPAWN_SETSID;
}

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal = 0;
static int stop_pipe[2] = {-1, -1};

static void record_stop(int signal) {
    int saved = errno;
    stop_signal = signal;
    if (stop_pipe[1] >= 0) {
        char byte = 1;
        (void)write(stop_pipe[1], &byte, 1);
    }
    errno = saved;
}

void rewind_install_stop_handler(void) {
    if (stop_pipe[0] < 0 && pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        stop_pipe[0] = stop_pipe[1] = -1;
    }
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

int rewind_stop_descriptor(void) { return stop_pipe[0]; }

int rewind_wait_stop(int milliseconds) {
    if (stop_signal || stop_pipe[0] < 0) {
        if (!stop_signal && milliseconds > 0) poll(NULL, 0, milliseconds);
        return stop_signal;
    }
    struct pollfd p = {stop_pipe[0], POLLIN, 0};
    poll(&p, 1, milliseconds);
    return stop_signal;
}
