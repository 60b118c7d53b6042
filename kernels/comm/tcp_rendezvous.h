// TCP rendezvous: how an Env (torchrun-style) launch shares the NCCL unique id without MPI
// (docs/design.md §8; llm.c's "tcp" bootstrap, with checks and a deadline instead of a fixed
// port and five retries). Rank 0 listens on MASTER_PORT; every other rank connects to
// MASTER_ADDR:MASTER_PORT (retrying until the deadline: rank 0 may start later) and says which
// rank of which world size it is; rank 0 checks that (a world size unlike its own or a rank
// seen twice is an Error on both sides) and sends each the payload. Host code, no GPU.
#pragma once

#include <string>
#include <vector>

namespace smol::comm {

struct Rendezvous {
  std::string host;  // MASTER_ADDR (a name or an address); rank 0 listens on every interface
  int port = 0;      // MASTER_PORT
  int rank = 0;
  int world_size = 1;
  double timeout_seconds = 300;
};

// Rank 0 passes `payload` (what every rank receives) and gets it back; other ranks pass
// anything of the same length and get rank 0's. An Error naming the host, port and rank when
// the rendezvous does not complete within the timeout or a check fails.
std::vector<char> tcp_rendezvous(const Rendezvous& where, const std::vector<char>& payload);

}  // namespace smol::comm
