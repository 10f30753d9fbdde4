#include "rewind_entropy.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/random.h>

// See rewind_entropy.h. The contexts are opaque here: only mbedTLS reads them.
typedef int (*entropy_source)(void *, unsigned char *, size_t);
int __real_mbedtls_ctr_drbg_seed(void *drbg, entropy_source source, void *source_state, const unsigned char *custom, size_t length);

// MBEDTLS_ERR_ENTROPY_SOURCE_FAILED
#define ENTROPY_SOURCE_FAILED (-0x003C)

static atomic_int draws = 0;

static int kernel_entropy(void *unused, unsigned char *out, size_t length) {
    (void)unused;
    atomic_fetch_add(&draws, 1);
    while (length > 0) {
        ssize_t got = getrandom(out, length, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            return ENTROPY_SOURCE_FAILED;
        }
        out += got;
        length -= (size_t)got;
    }
    return 0;
}

// libgit2's pool is a zeroed static: left so, mbedtls_entropy_free at
// shutdown has nothing to free.
void __wrap_mbedtls_entropy_init(void *pool) {
    (void)pool;
}

int __wrap_mbedtls_ctr_drbg_seed(void *drbg, entropy_source source, void *source_state, const unsigned char *custom, size_t length) {
    (void)source;
    (void)source_state;
    return __real_mbedtls_ctr_drbg_seed(drbg, kernel_entropy, NULL, custom, length);
}

int rewind_entropy_kernel_draws(void) {
    return atomic_load(&draws);
}
