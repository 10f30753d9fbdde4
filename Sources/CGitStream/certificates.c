#include "rewind_certificates.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// See rewind_certificates.h. The chain is opaque here (mbedtls_x509_crt *):
// it is only handed back to mbedTLS.
// mbedTLS's own functions: the linker's --wrap names them __real_ (Package.swift).
int __real_mbedtls_x509_crt_parse_file(void *chain, const char *path);
int __real_mbedtls_x509_crt_parse_path(void *chain, const char *path);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int deferring = 0;
static void *pending_chain = NULL;
static char *pending_path = NULL;
static int state = 0;

// Called with `lock` held.
static void load_pending_locked(void) {
    if (!pending_chain) return;
    int result = __real_mbedtls_x509_crt_parse_file(pending_chain, pending_path);
    state = result < 0 ? result : 2;
    pending_chain = NULL;
    free(pending_path);
    pending_path = NULL;
}

int __wrap_mbedtls_x509_crt_parse_file(void *chain, const char *path) {
    pthread_mutex_lock(&lock);
    if (deferring && !pending_chain && path) {
        char *copy = strdup(path);
        if (copy) {
            pending_chain = chain;
            pending_path = copy;
            state = 1;
            pthread_mutex_unlock(&lock);
            return 0;
        }
    }
    // Another bundle replaces the chain (and frees it) once it parsed: the
    // one it replaces must be whole until then.
    load_pending_locked();
    pthread_mutex_unlock(&lock);
    return __real_mbedtls_x509_crt_parse_file(chain, path);
}

// A directory of certificates replaces the chain too.
int __wrap_mbedtls_x509_crt_parse_path(void *chain, const char *path) {
    pthread_mutex_lock(&lock);
    load_pending_locked();
    pthread_mutex_unlock(&lock);
    return __real_mbedtls_x509_crt_parse_path(chain, path);
}

void rewind_certificates_defer_begin(void) {
    pthread_mutex_lock(&lock);
    deferring = 1;
    pthread_mutex_unlock(&lock);
}

void rewind_certificates_defer_end(void) {
    pthread_mutex_lock(&lock);
    deferring = 0;
    pthread_mutex_unlock(&lock);
}

void rewind_certificates_load(void) {
    pthread_mutex_lock(&lock);
    load_pending_locked();
    pthread_mutex_unlock(&lock);
}

int rewind_certificates_state(void) {
    pthread_mutex_lock(&lock);
    int value = state;
    pthread_mutex_unlock(&lock);
    return value;
}
