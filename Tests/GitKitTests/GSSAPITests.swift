import CGitStream
import Testing

/// libgit2 is linked in statically; its HTTP Negotiate (Kerberos) calls go
/// to libgssapi_krb5, opened the first time they are made instead of at
/// every start (rewind_gssapi.h).
@Suite struct GSSAPITests {
    @Test func negotiateReachesTheLibraryOpenedOnFirstUse() {
        // Importing a host-based service name needs no ticket: the library
        // answers GSS_S_COMPLETE (0); without it the answer is GSS_S_FAILURE.
        #expect(rewind_gssapi_check() == 0)
    }
}
