#include "rewind_ssh.h"

#include <stdatomic.h>

// See rewind_ssh.h.
static atomic_int deferrals = 0;

int __wrap_libssh2_init(int flags) {
    (void)flags;
    atomic_fetch_add(&deferrals, 1);
    return 0;
}

int rewind_ssh_init_deferrals(void) {
    return atomic_load(&deferrals);
}
