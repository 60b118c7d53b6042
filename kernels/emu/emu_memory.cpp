// cuda-emu device memory, streams, events and device properties.
//
// Device memory is host memory laid out to catch out-of-bounds kernel accesses:
//   [ ... | slack (< 16 bytes, canary 0xA5) ][ guard page, PROT_NONE ]
//            ^ start: 16-byte aligned (vector loads stay legal), end as close to the guard as
//              alignment allows. Any access past the end reaches the guard page (SIGSEGV, which
//              the handler below turns into a message naming the allocation) or the canary
//              bytes, which are checked after every launch.
// Fresh allocations are filled with 0xFF (NaN as float/bf16), like uninitialised GPU memory,
// so reading memory nobody wrote shows up in results. Streams run everything in order and
// immediately, so events and synchronisation are trivial.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

// This file defines the entry points the header redirects to.
#define SMOL_EMU_IMPLEMENTATION
#include "kernels/emu/emu_capture.h"
#include "kernels/emu/emu_cuda.h"

namespace smol::emu {
namespace {

constexpr size_t kAlign = 16;
constexpr unsigned char kCanary = 0xA5;
constexpr size_t kNominalMemory = size_t{80} << 30;  // an H100's 80 GB, for cudaMemGetInfo

// The emulated device's memory: an H100's 80 GB, or SMOL_EMU_DEVICE_MEMORY bytes when set, so
// that tests can make an allocation fail as it would on a full GPU (the out-of-memory message,
// kernels/out_of_memory_message.h). Read once.
size_t device_capacity() {
  static const size_t capacity = [] {
    const char* text = std::getenv("SMOL_EMU_DEVICE_MEMORY");
    if (text == nullptr || *text == '\0') return kNominalMemory;
    char* end = nullptr;
    const unsigned long long bytes = std::strtoull(text, &end, 10);
    return *end == '\0' && bytes > 0 ? static_cast<size_t>(bytes) : kNominalMemory;
  }();
  return capacity;
}

struct Allocation {
  size_t bytes = 0;         // what the caller asked for
  size_t usable = 0;        // bytes rounded up to kAlign: [start, start+usable) before the guard
  char* mapping = nullptr;  // mmap base
  size_t mapping_bytes = 0;
};

size_t page_size() {
  return static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// The emulated device's allocation table. One device per process, as on a GPU; a mutex
// keeps it consistent when tests allocate from several threads.
struct DeviceMemory {
  std::mutex mutex;
  std::map<uintptr_t, Allocation> allocations;  // by start address
  size_t in_use = 0;
};
DeviceMemory& device() {
  static DeviceMemory memory;
  return memory;
}

// The emulated device's count of host waits (see HostWaitCounts) and its pinned host blocks.
struct HostSide {
  std::mutex mutex;
  HostWaitCounts waits;
  std::map<uintptr_t, size_t> pinned;  // cudaMallocHost blocks by start address
};
HostSide& host_side() {
  static HostSide side;
  return side;
}
void count_wait(uint64_t HostWaitCounts::*counter) {
  std::lock_guard lock(host_side().mutex);
  ++(host_side().waits.*counter);
}
bool is_pinned(const void* p, size_t bytes) {
  std::lock_guard lock(host_side().mutex);
  const auto addr = reinterpret_cast<uintptr_t>(p);
  auto it = host_side().pinned.upper_bound(addr);
  if (it == host_side().pinned.begin()) return false;
  --it;
  return addr + bytes <= it->first + it->second;
}

// Finds the allocation containing [p, p+bytes); nullptr when none does. Caller holds the lock.
const Allocation* find_locked(const void* p, size_t bytes, uintptr_t* start_out) {
  auto& table = device().allocations;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  auto it = table.upper_bound(addr);
  if (it == table.begin()) return nullptr;
  --it;
  if (addr + bytes > it->first + it->second.bytes) return nullptr;
  if (start_out) *start_out = it->first;
  return &it->second;
}

// SIGSEGV/SIGBUS: name the allocation a faulting address lies behind, then abort. Runs on an
// alternate stack because fiber stacks are small. (No locking: the process is about to die.)
void fault_handler(int sig, siginfo_t* info, void*) {
  const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  char message[512];
  int n = std::snprintf(message, sizeof message,
                        "cuda-emu: out-of-bounds device memory access at %p", info->si_addr);
  for (const auto& [start, a] : device().allocations) {
    const uintptr_t guard = start + a.usable;
    if (addr >= guard && addr < guard + page_size()) {
      n += std::snprintf(message + n, sizeof message - n,
                         ": %zu bytes past the end of a %zu-byte allocation at %p",
                         static_cast<size_t>(addr - start - a.bytes), a.bytes,
                         reinterpret_cast<void*>(start));
      break;
    }
  }
  std::snprintf(message + n, sizeof message - n, " (signal %d)\n", sig);
  ssize_t ignored = write(STDERR_FILENO, message, std::strlen(message));
  (void)ignored;
  signal(SIGABRT, SIG_DFL);
  abort();
}

void install_fault_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    static std::vector<char> alt_stack(1 << 16);
    stack_t ss{};
    ss.ss_sp = alt_stack.data();
    ss.ss_size = alt_stack.size();
    sigaltstack(&ss, nullptr);
    struct sigaction sa {};
    sa.sa_sigaction = fault_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
  });
}

struct EmuEvent {
  std::chrono::steady_clock::time_point time;
  bool recorded = false;  // cudaEventElapsedTime refuses an event never recorded, as a GPU does
};
struct EmuStream {
  int id = 0;
};

void check_copy_side(const void* p, size_t bytes, bool device_side, const char* what) {
  if (!device_side || bytes == 0) return;
  SMOL_CHECK(is_device_range(p, bytes), "cuda-emu: cudaMemcpy ", what, " [", p, ", +", bytes,
             ") is not inside one device allocation");
}

}  // namespace

bool is_device_range(const void* p, size_t bytes) {
  if (bytes == 0) return true;
  std::lock_guard lock(device().mutex);
  return find_locked(p, bytes, nullptr) != nullptr;
}

cudaError_t cudaMalloc(void** pointer, size_t bytes) {
  refuse_during_capture("cudaMalloc", "an allocation that is not stream-ordered");
  install_fault_handler();
  {
    std::lock_guard lock(device().mutex);
    if (bytes > device_capacity() - std::min(device_capacity(), device().in_use))
      return cudaErrorMemoryAllocation;
  }
  const size_t usable = std::max<size_t>(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
  const size_t page = page_size();
  const size_t body = (usable + page - 1) / page * page;
  const size_t mapping_bytes = body + page;
  void* base =
      mmap(nullptr, mapping_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return cudaErrorMemoryAllocation;
  char* mapping = static_cast<char*>(base);
  mprotect(mapping + body, page, PROT_NONE);
  char* start = mapping + body - usable;
  std::memset(start, 0xFF, bytes);
  std::memset(start + bytes, kCanary, usable - bytes);
  {
    std::lock_guard lock(device().mutex);
    device().allocations[reinterpret_cast<uintptr_t>(start)] =
        Allocation{bytes, usable, mapping, mapping_bytes};
    device().in_use += bytes;
  }
  *pointer = start;
  return cudaSuccess;
}

cudaError_t cudaFree(void* pointer) {
  if (pointer == nullptr) return cudaSuccess;
  refuse_during_capture("cudaFree", "a host wait (it synchronises the device)");
  count_wait(&HostWaitCounts::free_sync);
  Allocation a;
  {
    std::lock_guard lock(device().mutex);
    auto it = device().allocations.find(reinterpret_cast<uintptr_t>(pointer));
    if (it == device().allocations.end()) return cudaErrorInvalidDevicePointer;
    a = it->second;
    device().allocations.erase(it);
    device().in_use -= a.bytes;
  }
  munmap(a.mapping, a.mapping_bytes);
  return cudaSuccess;
}

void check_kernel_pointer_argument(const void* pointer, int index) {
  std::lock_guard lock(device().mutex);
  SMOL_CHECK(find_locked(pointer, 0, nullptr) != nullptr ||
                 find_locked(static_cast<const char*>(pointer) - 1, 1, nullptr) != nullptr,
             "cuda-emu: kernel argument ", index, " (", pointer,
             ") is not device memory: a host pointer or a freed allocation");
}

void check_allocation_canaries() {
  std::lock_guard lock(device().mutex);
  for (const auto& [start, a] : device().allocations) {
    const auto* p = reinterpret_cast<const unsigned char*>(start);
    for (size_t i = a.bytes; i < a.usable; ++i) {
      SMOL_CHECK(p[i] == kCanary, "cuda-emu: a kernel wrote ", i - a.bytes + 1,
                 " byte(s) past the end of a ", a.bytes, "-byte allocation at ",
                 reinterpret_cast<const void*>(start));
    }
  }
}

namespace {
cudaError_t copy_checked(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice ||
                       (kind == cudaMemcpyDefault && is_device_range(dst, 1));
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice ||
                       (kind == cudaMemcpyDefault && is_device_range(src, 1));
  check_copy_side(dst, bytes, dst_dev, "destination");
  check_copy_side(src, bytes, src_dev, "source");
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t copy_counted(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                         bool async) {
  const cudaError_t status = copy_checked(dst, src, bytes, kind);
  const bool to_host = !is_device_range(dst, bytes ? bytes : 1);
  const bool from_host = !is_device_range(src, bytes ? bytes : 1);
  // A synchronous copy touching host memory waits; so does an async one whose host side is
  // pageable (the CUDA runtime synchronises the stream before a pageable upload and returns
  // from a pageable download only when it is done).
  const bool pageable =
      (to_host && !is_pinned(dst, bytes)) || (from_host && !is_pinned(src, bytes));
  if ((to_host || from_host) && (!async || pageable)) count_wait(&HostWaitCounts::memcpy_sync);
  return status;
}
}  // namespace
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  refuse_during_capture("cudaMemcpy", "a synchronous copy (a host wait)");
  return copy_counted(dst, src, bytes, kind, /*async=*/false);
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  const size_t span = bytes ? bytes : 1;
  const bool host_side = !is_device_range(dst, span) || !is_device_range(src, span);
  const bool pageable = (!is_device_range(dst, span) && !is_pinned(dst, bytes)) ||
                        (!is_device_range(src, span) && !is_pinned(src, bytes));
  if (host_side && pageable)
    refuse_during_capture("cudaMemcpyAsync with pageable host memory",
                          "the runtime synchronises the stream for a pageable copy (a host wait)");
  if (!stream_capturing(stream)) return copy_counted(dst, src, bytes, kind, /*async=*/true);
  // Recorded: the copy runs at each graph launch, reading the (pinned or device) source then.
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  check_copy_side(dst, bytes, dst_dev, "destination");
  check_copy_side(src, bytes, src_dev, "source");
  capture_node(stream, GraphNodeKind::Memcpy, nullptr,
               [=] { copy_checked(dst, src, bytes, kind); });
  return cudaSuccess;
}
cudaError_t cudaMemset(void* pointer, int value, size_t bytes) {
  refuse_during_capture("cudaMemset", "a synchronous memset (a host wait)");
  if (bytes == 0) return cudaSuccess;
  SMOL_CHECK(is_device_range(pointer, bytes), "cuda-emu: cudaMemset [", pointer, ", +", bytes,
             ") is not inside one device allocation");
  std::memset(pointer, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  SMOL_CHECK(is_device_range(pointer, bytes), "cuda-emu: cudaMemsetAsync [", pointer, ", +", bytes,
             ") is not inside one device allocation");
  if (stream_capturing(stream)) {
    capture_node(stream, GraphNodeKind::Memset, nullptr, [=] {
      SMOL_CHECK(is_device_range(pointer, bytes), "cuda-emu: graph memset node [", pointer, ", +",
                 bytes, ") is no longer inside one device allocation");
      std::memset(pointer, value, bytes);
    });
    return cudaSuccess;
  }
  std::memset(pointer, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  *stream = reinterpret_cast<cudaStream_t>(new EmuStream{});
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete reinterpret_cast<EmuStream*>(stream);
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) {
  refuse_during_capture("cudaStreamSynchronize", "a host wait");
  count_wait(&HostWaitCounts::stream_sync);
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  refuse_during_capture("cudaDeviceSynchronize", "a host wait");
  count_wait(&HostWaitCounts::device_sync);
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) {
  return cudaSuccess;  // the device waits, not the host; streams run in order here anyway
}
cudaError_t cudaMallocHost(void** pointer, size_t bytes) {
  refuse_during_capture("cudaMallocHost", "an allocation that is not stream-ordered");
  *pointer = std::malloc(bytes ? bytes : 1);
  if (!*pointer) return cudaErrorMemoryAllocation;
  std::lock_guard lock(host_side().mutex);
  host_side().pinned[reinterpret_cast<uintptr_t>(*pointer)] = bytes;
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* pointer) {
  if (!pointer) return cudaSuccess;
  refuse_during_capture("cudaFreeHost", "a host wait (it synchronises the device)");
  {
    std::lock_guard lock(host_side().mutex);
    if (host_side().pinned.erase(reinterpret_cast<uintptr_t>(pointer)) == 0)
      return cudaErrorInvalidValue;
  }
  std::free(pointer);
  return cudaSuccess;
}
HostWaitCounts host_wait_counts() {
  std::lock_guard lock(host_side().mutex);
  return host_side().waits;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  *event = reinterpret_cast<cudaEvent_t>(new EmuEvent{});
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete reinterpret_cast<EmuEvent*>(event);
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  auto* e = reinterpret_cast<EmuEvent*>(event);
  e->time = std::chrono::steady_clock::now();
  e->recorded = true;
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t) {
  refuse_during_capture("cudaEventQuery", "it asks the host about device progress");
  return cudaSuccess;  // the recorded work ran when it was enqueued
}
cudaError_t cudaEventSynchronize(cudaEvent_t) {
  refuse_during_capture("cudaEventSynchronize", "a host wait");
  count_wait(&HostWaitCounts::event_sync);
  return cudaSuccess;
}
// Host time between the two records: the emulator runs the work queued before a record when it
// is enqueued, so that is the time the device took (launch overhead included).
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!start || !end) return cudaErrorInvalidResourceHandle;
  if (!reinterpret_cast<EmuEvent*>(start)->recorded || !reinterpret_cast<EmuEvent*>(end)->recorded)
    return cudaErrorInvalidResourceHandle;  // the CUDA runtime's answer for an unrecorded event
  const auto d = reinterpret_cast<EmuEvent*>(end)->time - reinterpret_cast<EmuEvent*>(start)->time;
  *ms = std::chrono::duration<float, std::milli>(d).count();
  return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : cudaErrorInvalidDevice;
}
cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

// A nominal sm_90 part (H100 SXM numbers), so code that sizes grids from properties behaves
// as it would on the target.
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "cuda-emu (nominal sm_90)");
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 132;
  prop->totalGlobalMem = device_capacity();
  prop->sharedMemPerBlock = 48 * 1024;
  prop->sharedMemPerBlockOptin = 227 * 1024;
  prop->sharedMemPerMultiprocessor = 228 * 1024;
  prop->regsPerBlock = 65536;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 0x7fffffff;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->l2CacheSize = 50 * 1024 * 1024;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  cudaDeviceProp prop;
  if (emu::cudaGetDeviceProperties(&prop, device) != cudaSuccess) return cudaErrorInvalidDevice;
  switch (attr) {
    case cudaDevAttrMultiProcessorCount:
      *value = prop.multiProcessorCount;
      break;
    case cudaDevAttrComputeCapabilityMajor:
      *value = prop.major;
      break;
    case cudaDevAttrComputeCapabilityMinor:
      *value = prop.minor;
      break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = static_cast<int>(prop.sharedMemPerBlockOptin);
      break;
    case cudaDevAttrMaxThreadsPerBlock:
      *value = prop.maxThreadsPerBlock;
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}
// A GPU launches a kernel with more than 48 KiB of dynamic shared memory only after
// cudaFuncSetAttribute(MaxDynamicSharedMemorySize) opted that kernel in; the emulator keeps the
// same per-kernel limit so a missing opt-in fails here rather than on the first real GPU.
namespace {
struct KernelAttributes {
  std::mutex mutex;
  std::map<const void*, size_t> max_dynamic_shared;
};
KernelAttributes& kernel_attributes() {
  static KernelAttributes attributes;
  return attributes;
}
constexpr size_t kDefaultDynamicShared = 48 * 1024;
constexpr size_t kOptInDynamicShared = 227 * 1024;
}  // namespace

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || static_cast<size_t>(value) > kOptInDynamicShared) return cudaErrorInvalidValue;
    std::lock_guard lock(kernel_attributes().mutex);
    kernel_attributes().max_dynamic_shared[func] = static_cast<size_t>(value);
  }
  return cudaSuccess;
}

size_t max_dynamic_shared_bytes(const void* kernel) {
  std::lock_guard lock(kernel_attributes().mutex);
  const auto& limits = kernel_attributes().max_dynamic_shared;
  const auto it = limits.find(kernel);
  return it == limits.end() ? kDefaultDynamicShared : std::max(it->second, kDefaultDynamicShared);
}
// Launch errors are thrown as smol::Error on the spot, so there is never a pending error.
cudaError_t cudaGetLastError() {
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard lock(device().mutex);
  *total_bytes = device_capacity();
  *free_bytes = device_capacity() - std::min(device_capacity(), device().in_use);
  return cudaSuccess;
}
const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error (cuda-emu)";
    case cudaErrorMemoryAllocation:
      return "out of memory (cuda-emu)";
    case cudaErrorInvalidDevicePointer:
      return "invalid device pointer (cuda-emu)";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal (cuda-emu)";
    case cudaErrorInvalidValue:
      return "invalid argument (cuda-emu)";
    default:
      return "error (cuda-emu)";
  }
}

}  // namespace smol::emu
