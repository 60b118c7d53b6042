// cuda-emu execution model: a grid's blocks run one after another; the threads of a block run
// as fibers (ucontext) on the calling OS thread (docs/design.md §2).
//
// A fiber runs until it finishes or reaches a barrier (__syncthreads, __syncwarp, a shuffle or
// a vote). The scheduler runs one warp at a time as far as it gets (its lanes in thread order,
// pass after pass, until they all wait at a block barrier or finish), then the next warp; a
// waiting fiber is only resumed once its barrier's generation has advanced. A pass in which nothing
// arrives, releases or finishes is a deadlock, reported as smol::Error naming the barrier's
// file:line: that is how a __syncthreads that some threads skip (or a shuffle some lanes skip) is
// caught. A barrier reached at two different source lines by threads of one block is also an error.
//
// Fiber stacks are 64 KiB, pooled per OS thread, with a PROT_NONE guard page below each.
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

// This file defines the entry points the header redirects to.
#define SMOL_EMU_IMPLEMENTATION
#include "kernels/emu/emu_capture.h"
#include "kernels/emu/emu_cuda.h"

namespace smol::emu {
namespace {

constexpr size_t kStackBytes = 64 * 1024;
constexpr int kWarpSize = 32;
constexpr size_t kMaxSharedBytes = 227 * 1024;  // sm_90 opt-in maximum per block
constexpr size_t kGatherBytes = kWarpAllGatherMaxBytes;

struct BarrierSite {
  const char* file = nullptr;
  int line = 0;
  bool same(const char* f, int l) const { return line == l && std::strcmp(file, f) == 0; }
  std::string str() const { return std::string(file ? file : "?") + ":" + std::to_string(line); }
};

struct Fiber {
  ucontext_t context{};
  void* stack = nullptr;
  ThreadRegisters registers{};
  bool done = false;
  // While waiting at a barrier: the generation counter it waits on and its value at arrival.
  const uint64_t* waiting_on = nullptr;
  uint64_t waiting_generation = 0;
  std::exception_ptr error;
};

struct WarpState {
  int lanes = 0;  // lanes that exist (the last warp of a block may be partial)
  int arrived = 0;
  uint64_t generation = 0;
  BarrierSite site;
  // Double-buffered by generation parity: a lane can be at most one exchange ahead of the
  // slowest reader, so the slot it writes is never the one still being read.
  uint64_t slots[2][kWarpSize] = {};
  // warp_all_gather's deposits, double-buffered the same way.
  unsigned char gathered[2][kWarpSize][kGatherBytes] = {};
};

struct BlockRun {
  std::vector<Fiber> fibers;
  std::vector<WarpState> warps;
  int arrived = 0;
  uint64_t generation = 0;
  BarrierSite site;
  uint64_t events = 0;  // arrivals, releases and completions: progress of the block
  ucontext_t scheduler{};
  const std::function<void()>* body = nullptr;
  std::vector<unsigned char> dynamic_shared;
};

// The emulated SM's state for the OS thread running a launch: which block and fiber are live.
// Thread-local (not global) because independent launches may run on different OS threads.
thread_local BlockRun* tls_block = nullptr;
thread_local Fiber* tls_fiber = nullptr;

class StackPool {
 public:
  ~StackPool() {
    for (void* s : free_) munmap(static_cast<char*>(s) - page(), kStackBytes + page());
  }
  void* take() {
    if (!free_.empty()) {
      void* s = free_.back();
      free_.pop_back();
      return s;
    }
    void* base = mmap(nullptr, kStackBytes + page(), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    SMOL_CHECK(base != MAP_FAILED, "cuda-emu: cannot map a fiber stack");
    mprotect(base, page(), PROT_NONE);  // stack overflow faults instead of corrupting memory
    return static_cast<char*>(base) + page();
  }
  void give(void* s) { free_.push_back(s); }

 private:
  static size_t page() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }
  std::vector<void*> free_;
};
thread_local StackPool tls_stacks;

BlockRun& block() {
  SMOL_CHECK(tls_block != nullptr && tls_fiber != nullptr,
             "cuda-emu: a device intrinsic was called outside a kernel");
  return *tls_block;
}

void fiber_main() {
  Fiber* self = tls_fiber;
  try {
    (*tls_block->body)();
  } catch (...) {
    self->error = std::current_exception();
  }
  self->done = true;
  ++tls_block->events;
  // Returning resumes uc_link, the scheduler.
}

// Suspends the calling fiber until *generation moves past its current value.
void wait_for(const uint64_t* generation) {
  Fiber* self = tls_fiber;
  self->waiting_on = generation;
  self->waiting_generation = *generation;
  swapcontext(&self->context, &tls_block->scheduler);
  self->waiting_on = nullptr;
}

std::string block_name(const Fiber& f) {
  const auto& b = f.registers.block_idx;
  return "(" + std::to_string(b.x) + "," + std::to_string(b.y) + "," + std::to_string(b.z) + ")";
}

[[noreturn]] void report_deadlock(const BlockRun& run) {
  int done = 0;
  for (const Fiber& f : run.fibers) done += f.done ? 1 : 0;
  const Fiber& first = run.fibers.front();
  if (run.arrived > 0) {
    throw_error("cuda-emu: __syncthreads at ", run.site.str(), " was reached by ", run.arrived,
                " of ", run.fibers.size(), " threads of block ", block_name(first), " (", done,
                " exited without reaching it): a barrier every thread must reach");
  }
  for (size_t w = 0; w < run.warps.size(); ++w) {
    const WarpState& warp = run.warps[w];
    if (warp.arrived > 0) {
      throw_error("cuda-emu: warp-synchronous op at ", warp.site.str(), " was reached by ",
                  warp.arrived, " of ", warp.lanes, " lanes of warp ", w, " of block ",
                  block_name(first), ": every lane named in the mask must reach it");
    }
  }
  throw_error("cuda-emu: deadlock in block ", block_name(first));
}

void run_block(BlockRun& run, dim3 grid, dim3 block_dim, uint3 block_idx) {
  const int threads = static_cast<int>(block_dim.x * block_dim.y * block_dim.z);
  run.fibers.assign(threads, Fiber{});
  run.warps.assign((threads + kWarpSize - 1) / kWarpSize, WarpState{});
  for (size_t w = 0; w < run.warps.size(); ++w)
    run.warps[w].lanes = std::min<int>(kWarpSize, threads - static_cast<int>(w) * kWarpSize);
  run.arrived = 0;
  run.events = 0;
  std::memset(run.dynamic_shared.data(), 0xFF, run.dynamic_shared.size());

  for (int t = 0; t < threads; ++t) {
    Fiber& f = run.fibers[t];
    f.registers.thread_idx =
        uint3{t % block_dim.x, (t / block_dim.x) % block_dim.y, t / (block_dim.x * block_dim.y)};
    f.registers.block_idx = block_idx;
    f.registers.block_dim = block_dim;
    f.registers.grid_dim = grid;
    f.stack = tls_stacks.take();
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack;
    f.context.uc_stack.ss_size = kStackBytes;
    f.context.uc_link = &run.scheduler;
    makecontext(&f.context, fiber_main, 0);
  }

  std::exception_ptr failure;
  for (;;) {
    const uint64_t events_before = run.events;
    bool any_live = false;
    // Each warp runs as far as it can — until its lanes wait at a __syncthreads or finish —
    // before the next warp starts. CUDA promises nothing about the progress of one warp
    // relative to another between block barriers, and this order is the most adversarial one
    // for block-shared data: a warp that refills a shared tile others still read, or reads one
    // before the barrier that publishes it, sees the other warps' data missing or overwritten.
    for (size_t w = 0; w < run.warps.size() && !failure; ++w) {
      const int first = static_cast<int>(w) * kWarpSize;
      const int last = std::min(threads, first + kWarpSize);
      for (bool resumed = true; resumed && !failure;) {
        resumed = false;
        for (int t = first; t < last; ++t) {
          Fiber& f = run.fibers[t];
          if (f.done) continue;
          any_live = true;
          if (f.waiting_on != nullptr && *f.waiting_on == f.waiting_generation) continue;
          tls_fiber = &f;
          swapcontext(&run.scheduler, &f.context);
          tls_fiber = nullptr;
          resumed = true;
          if (f.error) {
            failure = f.error;
            break;
          }
        }
      }
    }
    if (failure || !any_live) break;
    if (run.events == events_before) {
      try {
        report_deadlock(run);
      } catch (...) {
        failure = std::current_exception();
      }
      break;
    }
  }
  // Fibers abandoned after a failure are never resumed; their stacks go back to the pool.
  for (Fiber& f : run.fibers) tls_stacks.give(f.stack);
  if (failure) std::rethrow_exception(failure);
}

}  // namespace

const ThreadRegisters& current_thread() {
  SMOL_CHECK(tls_fiber != nullptr, "cuda-emu: threadIdx/blockIdx read outside a kernel");
  return tls_fiber->registers;
}

void syncthreads(const char* file, int line) {
  BlockRun& run = block();
  if (run.arrived == 0) {
    run.site = BarrierSite{file, line};
  } else if (!run.site.same(file, line)) {
    throw_error("cuda-emu: divergent __syncthreads in block ", block_name(*tls_fiber),
                ": threads wait at ", run.site.str(), " and at ", file, ":", line);
  }
  ++run.arrived;
  ++run.events;
  if (run.arrived == static_cast<int>(run.fibers.size())) {
    run.arrived = 0;
    ++run.generation;
    return;
  }
  wait_for(&run.generation);
}

unsigned warp_live_mask() {
  BlockRun& run = block();
  const int linear = static_cast<int>(tls_fiber - run.fibers.data());
  const int lanes = run.warps[linear / kWarpSize].lanes;
  return lanes == kWarpSize ? 0xffffffffu : ((1u << lanes) - 1u);
}

namespace {
// The arrival of the calling lane at a warp-synchronous op: checks the mask and the site,
// lets `deposit(parity, lane)` write this lane's contribution into the buffer of the current
// generation, then waits until every live lane has arrived. Returns the parity whose buffers
// now hold every lane's deposit.
template <typename Deposit>
int arrive_at_warp_op(unsigned mask, const char* file, int line, Deposit&& deposit) {
  BlockRun& run = block();
  const int linear = static_cast<int>(tls_fiber - run.fibers.data());
  WarpState& warp = run.warps[linear / kWarpSize];
  const int lane = linear % kWarpSize;
  const unsigned live = warp_live_mask();
  // Sub-warp participation is legal CUDA, but no kernel here uses it; refusing it keeps the
  // barrier simple and makes an accidental partial mask visible.
  SMOL_CHECK((mask & live) == live, "cuda-emu: warp op at ", file, ":", line, " with mask 0x",
             std::hex, mask, " that leaves out live lanes (0x", live, ")");
  if (warp.arrived == 0) {
    warp.site = BarrierSite{file, line};
  } else if (!warp.site.same(file, line)) {
    throw_error("cuda-emu: divergent warp op in block ", block_name(*tls_fiber), ": lanes at ",
                warp.site.str(), " and at ", file, ":", line);
  }
  const int parity = static_cast<int>(warp.generation & 1);
  deposit(warp, parity, lane);
  ++warp.arrived;
  ++run.events;
  if (warp.arrived == warp.lanes) {
    warp.arrived = 0;
    ++warp.generation;
  } else {
    wait_for(&warp.generation);
  }
  return parity;
}

WarpState& calling_warp() {
  BlockRun& run = block();
  return run.warps[static_cast<int>(tls_fiber - run.fibers.data()) / kWarpSize];
}
}  // namespace

uint64_t warp_exchange(unsigned mask, uint64_t value, int src_lane, const char* file, int line) {
  const int lane = lane_id();
  const int parity = arrive_at_warp_op(mask, file, line,
                                       [&](WarpState& w, int p, int l) { w.slots[p][l] = value; });
  const WarpState& warp = calling_warp();
  const bool valid = src_lane >= 0 && src_lane < warp.lanes;
  return warp.slots[parity][valid ? src_lane : lane];
}

void warp_all_gather(unsigned mask, const void* mine, size_t bytes, void* all, const char* file,
                     int line) {
  SMOL_CHECK(bytes <= kGatherBytes, "cuda-emu: warp_all_gather of ", bytes, " bytes at ", file, ":",
             line, " exceeds ", kGatherBytes);
  const int parity = arrive_at_warp_op(mask, file, line, [&](WarpState& w, int p, int l) {
    std::memcpy(w.gathered[p][l], mine, bytes);
  });
  const WarpState& warp = calling_warp();
  for (int l = 0; l < kWarpSize; ++l) {
    // Lanes beyond a partial warp read as zero bytes.
    unsigned char* dst = static_cast<unsigned char*>(all) + l * bytes;
    if (l < warp.lanes)
      std::memcpy(dst, warp.gathered[parity][l], bytes);
    else
      std::memset(dst, 0, bytes);
  }
}

unsigned warp_ballot(unsigned mask, bool predicate, const char* file, int line) {
  BlockRun& run = block();
  const int linear = static_cast<int>(tls_fiber - run.fibers.data());
  WarpState& warp = run.warps[linear / kWarpSize];
  const int parity = static_cast<int>(warp.generation & 1);
  warp_exchange(mask, predicate ? 1u : 0u, 0, file, line);
  unsigned ballot = 0;
  for (int l = 0; l < warp.lanes; ++l)
    if (warp.slots[parity][l] != 0 && (mask & (1u << l))) ballot |= 1u << l;
  return ballot;
}

void syncwarp(unsigned mask, const char* file, int line) {
  warp_exchange(mask, 0, 0, file, line);
}

void* dynamic_shared_memory() {
  BlockRun& run = block();
  return run.dynamic_shared.empty() ? nullptr : run.dynamic_shared.data();
}

void run_grid(const void* kernel_address, dim3 grid, dim3 block_dim, size_t shared_bytes,
              cudaStream_t stream /* every emu stream runs in order, immediately */,
              const std::function<void()>& body) {
  SMOL_CHECK(tls_block == nullptr, "cuda-emu: kernel launched from inside a kernel");
  const uint64_t threads = uint64_t{block_dim.x} * block_dim.y * block_dim.z;
  SMOL_CHECK(threads >= 1 && threads <= 1024 && block_dim.z <= 64, "cuda-emu: invalid block (",
             block_dim.x, ",", block_dim.y, ",", block_dim.z, ") for kernel at ", kernel_address,
             ": 1..1024 threads, z <= 64");
  SMOL_CHECK(grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.y <= 65535 && grid.z <= 65535 &&
                 grid.x <= 0x7fffffffu,
             "cuda-emu: invalid grid (", grid.x, ",", grid.y, ",", grid.z, ") for kernel at ",
             kernel_address);
  const size_t shared_limit = max_dynamic_shared_bytes(kernel_address);
  SMOL_CHECK(shared_bytes <= shared_limit, "cuda-emu: ", shared_bytes,
             " bytes of dynamic shared memory exceed the limit of ", shared_limit,
             " for kernel at ", kernel_address,
             " (above 48 KiB needs cudaFuncSetAttribute(MaxDynamicSharedMemorySize), at most ",
             kMaxSharedBytes, ")");
  if (stream_capturing(stream)) {
    // Checked like a launch above; recorded with its parameters (body holds them by value) and
    // run at each graph launch (emu_graph.cpp).
    capture_node(stream, GraphNodeKind::Kernel, kernel_address,
                 [kernel_address, grid, block_dim, shared_bytes, body] {
                   run_grid(kernel_address, grid, block_dim, shared_bytes, nullptr, body);
                   check_allocation_canaries();
                 });
    return;
  }
  BlockRun run;
  run.body = &body;
  run.dynamic_shared.assign(shared_bytes, 0xFF);
  tls_block = &run;
  try {
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = 0; x < grid.x; ++x) run_block(run, grid, block_dim, uint3{x, y, z});
  } catch (...) {
    tls_block = nullptr;
    tls_fiber = nullptr;
    throw;
  }
  tls_block = nullptr;
}

}  // namespace smol::emu
