/* DG_VECTOR_CLONES: compile an elementwise kernel several times, for AVX-512, for AVX2 and
 * for plain x86-64, and let the loader pick the version the processor runs (GCC/Clang
 * target_clones, an ELF ifunc). The library itself is built for baseline x86-64, so without
 * this its loops are 4 floats wide. The clones do the same IEEE operations in the same
 * order (no sums are reordered; GCC in ISO C mode does not contract a*b+c into an FMA, so
 * with GCC every version gives the same bits), and which one runs is fixed per machine, so
 * results never depend on the thread count. Not under AddressSanitizer or ThreadSanitizer,
 * whose start-up runs after ifunc resolvers; elsewhere (ARM64, other compilers) it expands
 * to nothing. Not installed. */
#ifndef DG_VECTOR_CLONES_H
#define DG_VECTOR_CLONES_H

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) /* GCC's spelling */
#define DG_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) /* Clang's */
#define DG_SANITIZED 1
#endif
#endif

#if defined(__x86_64__) && defined(__GNUC__) && defined(__ELF__) && !defined(DG_SANITIZED)
#define DG_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DG_VECTOR_CLONES
#endif

#endif
