/* The machine's float32 FMA peak: every thread runs 12 independent chains of 8-lane FMAs (enough
 * to cover the FMA latency on two pipes), nothing else. A GEMM or attention kernel's GFLOP/s
 * divided by this is its efficiency; no float32 kernel can beat it.
 *
 *   cc -O3 -mavx2 -mfma -fopenmp benchmarks/fma_peak.c -o /tmp/fma_peak
 *   OMP_NUM_THREADS=2 /tmp/fma_peak
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>

int main(void) {
  const long iters = 100000000;
  double best = 0.0;
  for (int round = 0; round < 5; ++round) {
    float sink = 0.0f;
    const double t0 = omp_get_wtime();
#pragma omp parallel reduction(+ : sink)
    {
      __m256 acc[12];
      for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(1e-3f * (float)i);
      const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
      for (long it = 0; it < iters; ++it) {
        for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], b, c);
      }
      float lanes[8];
      for (int i = 0; i < 12; ++i) {
        _mm256_storeu_ps(lanes, acc[i]);
        sink += lanes[0];  /* keeps the chains alive */
      }
    }
    const double seconds = omp_get_wtime() - t0;
    const double gflops = omp_get_max_threads() * (double)iters * 12 * 16 / seconds / 1e9;
    if (gflops > best) best = gflops;
    printf("round %d: %.1f GFLOP/s (%g)\n", round, gflops, sink);
  }
  printf("peak %.1f GFLOP/s on %d threads\n", best, omp_get_max_threads());
  return 0;
}
