// MpiSession (mpi_session.h). The only mutable process state here mirrors MPI's own (which is
// process-wide by definition): the weak pointer to the live session, under a mutex.
#include "kernels/comm/mpi_session.h"

#include <mpi.h>

#include <climits>
#include <mutex>

#include "common/error.h"
#include "kernels/comm/mpi_wait.h"

namespace smol::comm {
namespace {

struct SessionRegistry {
  std::mutex mutex;
  std::weak_ptr<MpiSession> live;
};
SessionRegistry& registry() {
  static SessionRegistry r;  // MPI's process state: see the file comment
  return r;
}

}  // namespace

MpiSession::MpiSession(Key) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  SMOL_CHECK(!finalized, "MPI was finalised in this process already and cannot start again");
  if (!initialized) {
    int provided = 0;
    const int status = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    SMOL_CHECK(status == MPI_SUCCESS, "MPI_Init_thread failed (status ", status, ")");
    owns_ = true;
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

MpiSession::~MpiSession() {
  if (owns_) MPI_Finalize();
}

std::shared_ptr<MpiSession> MpiSession::acquire() {
  SessionRegistry& r = registry();
  std::lock_guard lock(r.mutex);
  if (auto live = r.live.lock()) return live;
  auto session = std::make_shared<MpiSession>(Key{});
  r.live = session;
  return session;
}

void MpiSession::broadcast_bytes(void* data, size_t bytes, int root, double timeout_seconds,
                                 const std::string& what) const {
  SMOL_CHECK(bytes <= INT_MAX, what, ": ", bytes, " bytes are too many for one MPI_Bcast");
  MPI_Request request;
  mpi_check(MPI_Ibcast(data, static_cast<int>(bytes), MPI_BYTE, root, MPI_COMM_WORLD, &request),
            what);
  if (!wait_until(request, deadline_after(timeout_seconds)))
    throw_timeout(rank_, size_, what, timeout_seconds);
}

std::vector<std::string> MpiSession::all_gather_strings(const std::string& bytes,
                                                        double timeout_seconds,
                                                        const std::string& what) const {
  SMOL_CHECK(bytes.size() <= INT_MAX / 2, what, ": ", bytes.size(), " bytes are too many");
  const auto deadline = deadline_after(timeout_seconds);
  int length = static_cast<int>(bytes.size());
  std::vector<int> lengths(static_cast<size_t>(size_));
  MPI_Request request;
  mpi_check(
      MPI_Iallgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, MPI_COMM_WORLD, &request),
      what);
  if (!wait_until(request, deadline)) throw_timeout(rank_, size_, what, timeout_seconds);
  std::vector<int> offsets(lengths.size());
  long total = 0;
  for (size_t i = 0; i < lengths.size(); ++i) {
    offsets[i] = static_cast<int>(total);
    total += lengths[i];
    SMOL_CHECK(total <= INT_MAX, what, ": ", total, " bytes in all are too many");
  }
  std::string joined(static_cast<size_t>(total), '\0');
  mpi_check(MPI_Iallgatherv(bytes.data(), length, MPI_BYTE, joined.data(), lengths.data(),
                            offsets.data(), MPI_BYTE, MPI_COMM_WORLD, &request),
            what);
  if (!wait_until(request, deadline)) throw_timeout(rank_, size_, what, timeout_seconds);
  std::vector<std::string> out;
  for (size_t i = 0; i < lengths.size(); ++i)
    out.push_back(joined.substr(static_cast<size_t>(offsets[i]), static_cast<size_t>(lengths[i])));
  return out;
}

void MpiSession::abort(int exit_code) {
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::abort();  // MPI_Abort does not return; this satisfies [[noreturn]]
}

}  // namespace smol::comm
