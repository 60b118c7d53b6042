// parse_launch_environment: who started this process (kernels/communicator.h, docs/design.md §8).
//
// Each launcher family sets a rank and a world size; several may be set at once (OpenMPI also
// sets PMIX_RANK, srun with PMIx sets SLURM_* too, a torchrun wrapper may run under mpirun). Every
// family present must then agree, else the job is misconfigured and no rank can guess which
// numbering its peers use. One exception: mpirun inside a Slurm allocation inherits the batch
// step's SLURM_PROCID / SLURM_NTASKS (rank 0 of the batch step, for every process), so when an
// MPI family is present the Slurm variables are not compared.
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/communicator.h"

namespace smol {
namespace {

using Getenv = std::function<const char*(const char*)>;

std::optional<std::string> get(const Getenv& getenv, const char* name) {
  const char* value = getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

// A decimal integer in [min, max], else an Error naming the variable and its value.
int parse_int(const std::string& value, const char* name, long min, long max) {
  bool digits = !value.empty() && value.size() <= 9;
  for (char c : value) digits = digits && c >= '0' && c <= '9';
  SMOL_CHECK(digits, "launch environment: ", name, "='", value,
             "' is not a non-negative decimal number");
  const long parsed = std::strtol(value.c_str(), nullptr, 10);
  SMOL_CHECK(parsed >= min && parsed <= max, "launch environment: ", name, "=", value,
             " is outside [", min, ", ", max, "]");
  return static_cast<int>(parsed);
}

// One launcher family as read from the environment.
struct Family {
  const char* rank_var;
  const char* size_var;   // the variable the size was read from (may belong to another family)
  const char* local_var;  // nullptr when the family has none or it is unset
  bool mpi;
  std::string source;
  int rank = 0, size = 1;
  std::optional<int> local;
};

std::optional<Family> read_family(const Getenv& getenv, const char* rank_var,
                                  std::vector<const char*> size_vars, const char* local_var,
                                  bool mpi, const char* source) {
  const auto rank = get(getenv, rank_var);
  if (!rank) return std::nullopt;
  Family f{rank_var, nullptr, nullptr, mpi, source, 0, 1, std::nullopt};
  for (const char* size_var : size_vars) {
    if (const auto size = get(getenv, size_var)) {
      f.size_var = size_var;
      f.size = parse_int(*size, size_var, 1, 1 << 20);
      break;
    }
  }
  if (f.size_var == nullptr) {
    std::string names;
    for (const char* v : size_vars) names += (names.empty() ? "" : " or ") + std::string(v);
    throw_error("launch environment: ", rank_var, "=", *rank, " is set but ", names,
                " (the world size) is not");
  }
  f.rank = parse_int(*rank, rank_var, 0, 1 << 20);
  SMOL_CHECK(f.rank < f.size, "launch environment: ", rank_var, "=", f.rank, " is outside [0, ",
             f.size, ") given ", f.size_var, "=", f.size);
  if (local_var != nullptr) {
    if (const auto local = get(getenv, local_var)) {
      f.local_var = local_var;
      f.local = parse_int(*local, local_var, 0, f.size - 1);
    }
  }
  return f;
}

}  // namespace

LaunchInfo parse_launch_environment(const Getenv& getenv) {
  std::vector<Family> families;
  auto add = [&](std::optional<Family> f) {
    if (f) families.push_back(*f);
  };
  add(read_family(getenv, "OMPI_COMM_WORLD_RANK", {"OMPI_COMM_WORLD_SIZE"},
                  "OMPI_COMM_WORLD_LOCAL_RANK", true, "OMPI_COMM_WORLD_* (OpenMPI)"));
  add(read_family(getenv, "PMI_RANK", {"PMI_SIZE"}, "MPI_LOCALRANKID", true,
                  "PMI_* (MPICH / Hydra)"));
  add(read_family(getenv, "PMIX_RANK", {"OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS"}, nullptr, true,
                  "PMIX_RANK (PMIx)"));
  const bool any_mpi = !families.empty();
  add(read_family(getenv, "RANK", {"WORLD_SIZE"}, "LOCAL_RANK", false,
                  "RANK / WORLD_SIZE (torchrun)"));
  if (!any_mpi)
    add(read_family(getenv, "SLURM_PROCID", {"SLURM_NTASKS"}, "SLURM_LOCALID", false,
                    "SLURM_PROCID / SLURM_NTASKS (srun)"));

  LaunchInfo info;
  if (families.empty()) return info;  // no launcher: a single process
  const Family& first = families.front();
  for (size_t i = 1; i < families.size(); ++i) {
    const Family& f = families[i];
    SMOL_CHECK(f.size == first.size, "launch environment: ", f.size_var, "=", f.size, " but ",
               first.size_var, "=", first.size, " (", f.source, " and ", first.source,
               " disagree on the world size)");
    SMOL_CHECK(f.rank == first.rank, "launch environment: ", f.rank_var, "=", f.rank, " but ",
               first.rank_var, "=", first.rank, " (", f.source, " and ", first.source,
               " disagree on this process's rank)");
  }
  info.rank = first.rank;
  info.world_size = first.size;
  info.source = first.source;
  // The local rank picks the GPU: the first family that has one; without any, one node is
  // assumed (local rank = rank), which the nccl communicator's one-GPU-per-rank check catches
  // on several nodes.
  info.local_rank = first.rank;
  for (const Family& f : families) {
    if (f.local) {
      info.local_rank = *f.local;
      break;
    }
  }
  if (const auto addr = get(getenv, "MASTER_ADDR")) info.master_addr = *addr;
  if (const auto port = get(getenv, "MASTER_PORT"))
    info.master_port = parse_int(*port, "MASTER_PORT", 1, 65535);
  if (info.world_size == 1) return info;  // Launcher::None: nothing to talk to
  info.launcher = any_mpi ? LaunchInfo::Launcher::Mpi : LaunchInfo::Launcher::Env;
  if (info.launcher == LaunchInfo::Launcher::Env) {
    SMOL_CHECK(!info.master_addr.empty(), "launch environment: ", first.source, " says world size ",
               info.world_size, " but MASTER_ADDR (the rendezvous host) is not set");
    SMOL_CHECK(info.master_port != 0, "launch environment: ", first.source, " says world size ",
               info.world_size, " but MASTER_PORT (the rendezvous port) is not set");
  }
  return info;
}

LaunchInfo read_launch_environment() {
  return parse_launch_environment([](const char* name) { return std::getenv(name); });
}

}  // namespace smol
