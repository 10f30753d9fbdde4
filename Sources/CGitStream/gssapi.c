// See rewind_gssapi.h: libgit2's GSSAPI calls, forwarded to libgssapi_krb5
// opened on first use. The types are opaque here: only the library reads them.
#define _GNU_SOURCE
#include "rewind_gssapi.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stddef.h>

typedef uint32_t OM_uint32;
typedef struct { OM_uint32 length; void *elements; } oid_desc;

#define GSS_S_FAILURE (13u << 16)

static void *library = NULL;
static pthread_once_t opened = PTHREAD_ONCE_INIT;

static void open_library(void) { library = dlopen("libgssapi_krb5.so.2", RTLD_NOW | RTLD_LOCAL); }

static void *resolve(const char *name) {
    pthread_once(&opened, open_library);
    return library ? dlsym(library, name) : NULL;
}

static OM_uint32 unavailable(OM_uint32 *minor) {
    if (minor) *minor = 0;
    return GSS_S_FAILURE;
}

// 1.2.840.113554.1.2.1.4, the host-based service name type (RFC 2743).
// libgit2 passes this pointer; gss_import_name hands the library its own.
static oid_desc hostbased = {10, "\x2a\x86\x48\x86\xf7\x12\x01\x02\x01\x04"};
void *GSS_C_NT_HOSTBASED_SERVICE = &hostbased;

// One forwarding function: `params` declares them, `args` passes them on.
#define FORWARD(name, params, args)                     \
    OM_uint32 name params {                             \
        OM_uint32(*real) params = resolve(#name);       \
        return real ? real args : unavailable(minor);   \
    }

FORWARD(gss_init_sec_context,
        (OM_uint32 * minor, void *credential, void **context, void *target, void *mechanism, OM_uint32 flags,
         OM_uint32 lifetime, void *bindings, void *input, void **actual_mechanism, void *output, OM_uint32 *returned_flags,
         OM_uint32 *time_left),
        (minor, credential, context, target, mechanism, flags, lifetime, bindings, input, actual_mechanism, output,
         returned_flags, time_left))
FORWARD(gss_release_buffer, (OM_uint32 * minor, void *buffer), (minor, buffer))
FORWARD(gss_delete_sec_context, (OM_uint32 * minor, void **context, void *output), (minor, context, output))
FORWARD(gss_release_name, (OM_uint32 * minor, void **name), (minor, name))
FORWARD(gss_indicate_mechs, (OM_uint32 * minor, void **mechanisms), (minor, mechanisms))
FORWARD(gss_release_oid_set, (OM_uint32 * minor, void **set), (minor, set))
FORWARD(gss_display_status,
        (OM_uint32 * minor, OM_uint32 status, int type, void *mechanism, OM_uint32 *context, void *message),
        (minor, status, type, mechanism, context, message))

OM_uint32 gss_import_name(OM_uint32 *minor, void *name, void *type, void **imported) {
    OM_uint32 (*real)(OM_uint32 *, void *, void *, void **) = resolve("gss_import_name");
    if (!real) return unavailable(minor);
    if (type == &hostbased) {
        void **theirs = resolve("GSS_C_NT_HOSTBASED_SERVICE");
        if (theirs) type = *theirs;
    }
    return real(minor, name, type, imported);
}

unsigned rewind_gssapi_check(void) {
    struct { size_t length; void *value; } text = {14, "HTTP@localhost"};
    OM_uint32 minor = 0;
    void *name = NULL;
    OM_uint32 major = gss_import_name(&minor, &text, GSS_C_NT_HOSTBASED_SERVICE, &name);
    if (name) gss_release_name(&minor, &name);
    return major;
}
