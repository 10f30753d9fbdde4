#ifndef REWIND_CERTIFICATES_H
#define REWIND_CERTIFICATES_H

/// The system's certificate authorities, read when HTTPS first needs them.
///
/// Debian's libgit2 (1.5, built with mbedTLS) parses the whole CA bundle
/// (/etc/ssl/certs/ca-certificates.crt, about 150 certificates) inside
/// git_libgit2_init: about 5 ms of base64 and ASN.1 on every start, which a
/// command that reads a local repository never uses. libgit2 and mbedTLS
/// are linked in statically, and the linker's --wrap (Package.swift) sends
/// libgit2's calls of mbedtls_x509_crt_parse_file and _path here, so the
/// parse that git_libgit2_init asks for is remembered instead of done, and
/// done once, into the same chain libgit2 configured, before the first
/// network stream opens (`rewind_certificates_load`, called by the git
/// stream's constructor). Every other parse (GIT_OPT_SET_SSL_CERT_LOCATIONS)
/// loads the remembered one first and then goes to mbedTLS at once.

/// Call around git_libgit2_init: between the two, the default bundle's parse is deferred.
void rewind_certificates_defer_begin(void);
void rewind_certificates_defer_end(void);

/// Parses the deferred bundle, once; every HTTPS stream calls it before connecting.
void rewind_certificates_load(void);

/// What happened to the default bundle (for tests): 0 nothing was deferred,
/// 1 deferred and not yet read, 2 read, or mbedTLS's negative error code.
int rewind_certificates_state(void);

#endif
