import CGitStream
import Testing
@testable import GitKit

/// Debian's libgit2 parses the system's CA bundle inside git_libgit2_init;
/// Rewind defers that parse until a network stream needs it
/// (rewind_certificates.h). The HTTPS end of it: AccessTests.
@Suite struct SystemCertificatesTests {
    @Test func theBundleIsDeferredAtStartAndReadOnDemand() {
        GitRuntime.bootstrap()
        // Another test of this process may have opened a stream already.
        #expect([.deferred, .read].contains(GitRuntime.systemCertificates), "\(GitRuntime.systemCertificates)")
        GitRuntime.loadSystemCertificates()
        #expect(GitRuntime.systemCertificates == .read)
        GitRuntime.loadSystemCertificates()
        #expect(GitRuntime.systemCertificates == .read)
    }

    /// libgit2's TLS random generator is seeded from getrandom(2), not from
    /// mbedTLS's pool (rewind_entropy.h). The HTTPS end of it: AccessTests.
    @Test func theTLSGeneratorIsSeededFromTheKernel() {
        GitRuntime.bootstrap()
        #expect(rewind_entropy_kernel_draws() >= 1)
    }

    /// libssh2 initialises itself at the first SSH session, not at every
    /// start (rewind_ssh.h). The SSH end of it: AccessTests and RemoteTests.
    @Test func libssh2IsLeftToTheFirstSSHSession() {
        GitRuntime.bootstrap()
        #expect(rewind_ssh_init_deferrals() >= 1)
    }
}
