// The cpu backend's sgemm must come from OpenBLAS's OpenMP build (docs/cpu-speed.md "Threads: one
// pool"): a pthread build keeps a second thread pool that fights the kernels' OpenMP threads for
// the cores (a LoRA step ran at about half speed on 2 cores). This checks the library the test
// binary actually loaded, so a build or install that picks the pthread variant fails here.
#include <cblas.h>
#include <gtest/gtest.h>

#include <string>

TEST(CpuBlas, LoadedOpenBlasUsesOpenMpThreads) {
  // openblas_get_parallel(): 0 = single-threaded build, 1 = pthreads, 2 = OpenMP.
  EXPECT_EQ(openblas_get_parallel(), 2)
      << "OpenBLAS config: " << std::string(openblas_get_config())
      << " — install libopenblas-openmp-dev (scripts/install-deps.sh) and reconfigure";
}
