#ifndef REWIND_GSSAPI_H
#define REWIND_GSSAPI_H

/// GSSAPI (Kerberos: HTTP "Negotiate" authentication) for libgit2, opened
/// when libgit2 first calls it instead of at every start.
///
/// libgit2 is linked in statically (Package.swift). Its Negotiate support
/// calls nine GSSAPI functions and reads GSS_C_NT_HOSTBASED_SERVICE. Linking
/// libgssapi_krb5 would load it and six libraries below it (krb5, k5crypto,
/// com_err, krb5support, keyutils, resolv) into every process, about 1 ms of
/// dynamic linking before main, for a sign-in few git hosts ask for. gssapi.c
/// defines those symbols: each one opens libgssapi_krb5.so.2 once
/// (dlopen) and calls the library's own function. Where the library is not
/// installed, each returns GSS_S_FAILURE, and libgit2 reports that Negotiate
/// failed.

/// For tests: imports the host-based service name "HTTP@localhost" through
/// the library (the OID libgit2 passes is swapped for the library's own).
/// Returns the GSSAPI major status: 0 when the library answered.
unsigned rewind_gssapi_check(void);

#endif
