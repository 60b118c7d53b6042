// parse_launch_environment: every launcher family, families that agree and disagree, bad values.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "common/error.h"
#include "kernels/communicator.h"

namespace smol {
namespace {

using Env = std::map<std::string, std::string>;

LaunchInfo parse(const Env& env) {
  return parse_launch_environment([&](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

std::string error_of(const Env& env) {
  try {
    parse(env);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(LaunchEnvironment, NothingSetIsASingleProcess) {
  const LaunchInfo info = parse({});
  EXPECT_EQ(info.launcher, LaunchInfo::Launcher::None);
  EXPECT_EQ(info.world_size, 1);
  EXPECT_FALSE(info.distributed());
}

TEST(LaunchEnvironment, OpenMpi) {
  const LaunchInfo info = parse({{"OMPI_COMM_WORLD_RANK", "1"},
                                 {"OMPI_COMM_WORLD_SIZE", "4"},
                                 {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                 {"PMIX_RANK", "1"}});
  EXPECT_EQ(info.launcher, LaunchInfo::Launcher::Mpi);
  EXPECT_EQ(info.rank, 1);
  EXPECT_EQ(info.world_size, 4);
  EXPECT_EQ(info.local_rank, 1);
  EXPECT_NE(info.source.find("OMPI_COMM_WORLD"), std::string::npos);
}

TEST(LaunchEnvironment, MpichHydra) {
  const LaunchInfo info = parse({{"PMI_RANK", "2"}, {"PMI_SIZE", "3"}, {"MPI_LOCALRANKID", "0"}});
  EXPECT_EQ(info.launcher, LaunchInfo::Launcher::Mpi);
  EXPECT_EQ(info.rank, 2);
  EXPECT_EQ(info.world_size, 3);
  EXPECT_EQ(info.local_rank, 0);
}

TEST(LaunchEnvironment, PmixTakesTheSizeFromSlurm) {
  const LaunchInfo info = parse(
      {{"PMIX_RANK", "3"}, {"SLURM_NTASKS", "8"}, {"SLURM_PROCID", "3"}, {"SLURM_LOCALID", "3"}});
  EXPECT_EQ(info.launcher, LaunchInfo::Launcher::Mpi);
  EXPECT_EQ(info.rank, 3);
  EXPECT_EQ(info.world_size, 8);
  EXPECT_NE(error_of({{"PMIX_RANK", "0"}}).find("SLURM_NTASKS"), std::string::npos);
}

TEST(LaunchEnvironment, Torchrun) {
  const LaunchInfo info = parse({{"RANK", "5"},
                                 {"WORLD_SIZE", "8"},
                                 {"LOCAL_RANK", "1"},
                                 {"MASTER_ADDR", "node0"},
                                 {"MASTER_PORT", "29500"}});
  EXPECT_EQ(info.launcher, LaunchInfo::Launcher::Env);
  EXPECT_EQ(info.rank, 5);
  EXPECT_EQ(info.world_size, 8);
  EXPECT_EQ(info.local_rank, 1);
  EXPECT_EQ(info.master_addr, "node0");
  EXPECT_EQ(info.master_port, 29500);
}

TEST(LaunchEnvironment, Srun) {
  const LaunchInfo info = parse({{"SLURM_PROCID", "1"},
                                 {"SLURM_NTASKS", "2"},
                                 {"SLURM_LOCALID", "0"},
                                 {"MASTER_ADDR", "127.0.0.1"},
                                 {"MASTER_PORT", "1234"}});
  EXPECT_EQ(info.launcher, LaunchInfo::Launcher::Env);
  EXPECT_EQ(info.rank, 1);
  EXPECT_EQ(info.local_rank, 0);
}

TEST(LaunchEnvironment, WorldOfOneIsNone) {
  const LaunchInfo info = parse({{"RANK", "0"}, {"WORLD_SIZE", "1"}});
  EXPECT_EQ(info.launcher, LaunchInfo::Launcher::None);
  EXPECT_FALSE(info.distributed());
}

TEST(LaunchEnvironment, AgreeingFamiliesAreFine) {
  const LaunchInfo info = parse({{"OMPI_COMM_WORLD_RANK", "1"},
                                 {"OMPI_COMM_WORLD_SIZE", "2"},
                                 {"RANK", "1"},
                                 {"WORLD_SIZE", "2"}});
  EXPECT_EQ(info.launcher, LaunchInfo::Launcher::Mpi);
  EXPECT_EQ(info.rank, 1);
}

TEST(LaunchEnvironment, DisagreeingFamiliesNameBothVariables) {
  const std::string size = error_of({{"OMPI_COMM_WORLD_RANK", "0"},
                                     {"OMPI_COMM_WORLD_SIZE", "2"},
                                     {"RANK", "0"},
                                     {"WORLD_SIZE", "4"}});
  EXPECT_NE(size.find("WORLD_SIZE=4 but OMPI_COMM_WORLD_SIZE=2"), std::string::npos) << size;
  const std::string rank =
      error_of({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}, {"RANK", "0"}, {"WORLD_SIZE", "2"}});
  EXPECT_NE(rank.find("RANK=0 but PMI_RANK=1"), std::string::npos) << rank;
}

TEST(LaunchEnvironment, MpirunInsideASlurmAllocationIgnoresTheBatchStepsSlurmRank) {
  // Every process of `mpirun -np 2` in an sbatch script inherits SLURM_PROCID=0.
  const LaunchInfo info = parse({{"OMPI_COMM_WORLD_RANK", "1"},
                                 {"OMPI_COMM_WORLD_SIZE", "2"},
                                 {"SLURM_PROCID", "0"},
                                 {"SLURM_NTASKS", "1"}});
  EXPECT_EQ(info.rank, 1);
  EXPECT_EQ(info.world_size, 2);
}

TEST(LaunchEnvironment, BadValuesNameTheVariable) {
  EXPECT_NE(error_of({{"RANK", "one"}, {"WORLD_SIZE", "2"}}).find("RANK='one'"), std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "-2"}}).find("WORLD_SIZE='-2'"),
            std::string::npos);
  EXPECT_NE(error_of({{"RANK", "0"}, {"WORLD_SIZE", "0"}}).find("WORLD_SIZE=0"), std::string::npos);
  const std::string out_of_range =
      error_of({{"OMPI_COMM_WORLD_RANK", "2"}, {"OMPI_COMM_WORLD_SIZE", "2"}});
  EXPECT_NE(out_of_range.find("OMPI_COMM_WORLD_RANK=2 is outside [0, 2)"), std::string::npos)
      << out_of_range;
  EXPECT_NE(error_of({{"RANK", "0"}}).find("WORLD_SIZE"), std::string::npos);
  EXPECT_NE(
      error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "99999"}})
          .find("MASTER_PORT=99999"),
      std::string::npos);
}

TEST(LaunchEnvironment, EnvLaunchNeedsTheRendezvous) {
  EXPECT_NE(
      error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}}).find("MASTER_ADDR"),
      std::string::npos);
  EXPECT_NE(
      error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}).find("MASTER_PORT"),
      std::string::npos);
  // An MPI launch does not need them (MPI shares the NCCL id).
  EXPECT_NO_THROW(parse({{"PMI_RANK", "0"}, {"PMI_SIZE", "2"}}));
}

}  // namespace
}  // namespace smol
