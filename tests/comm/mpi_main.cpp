// main of comm_mpi_tests (run as `mpirun -np 2 comm_mpi_tests`): holds one MpiSession for the
// whole run, so the communicators the tests create and destroy share one MPI lifetime (MPI
// cannot be initialised twice), and fails on every rank when a test failed on any rank.
#include <gtest/gtest.h>
#include <mpi.h>

#include "kernels/comm/mpi_session.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto session = smol::comm::MpiSession::acquire();
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0, any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  session.reset();  // MPI_Finalize
  return any_failed;
}
