#ifndef REWIND_ENTROPY_H
#define REWIND_ENTROPY_H

/// The seed of libgit2's TLS random generator, from the kernel.
///
/// git_libgit2_init seeds mbedTLS's CTR-DRBG from mbedTLS's entropy pool,
/// whose set-up (Debian's mbedTLS 2.28 has HAVEGE) times thousands of
/// loops: about 0.3 ms of every start, which a command that never opens a
/// TLS connection waits for. The linker's --wrap (Package.swift) sends
/// libgit2's mbedtls_entropy_init and mbedtls_ctr_drbg_seed here: the pool
/// is left empty and unused, and the generator is seeded, and reseeded,
/// from getrandom(2), the kernel's CSPRNG (the pool's main source anyway;
/// mbedTLS 3 dropped HAVEGE).

/// How many times the generator took entropy from the kernel (for tests).
int rewind_entropy_kernel_draws(void);

#endif
