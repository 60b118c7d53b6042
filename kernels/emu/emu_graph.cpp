// cuda-emu CUDA graphs: stream capture, instantiation, in-place update and launch
// (docs/design.md §2.8).
//
// A capture is a list of nodes, each a closure over the argument values of one enqueued call
// (a kernel launch with its grid and parameters, an async copy or memset, a cuBLASLt matmul with
// its descriptors and scalars copied), run in order at each cudaGraphLaunch — on a GPU the nodes
// of a stream capture form a chain in the same order. The emu keeps CUDA's rules:
//  - only one capture at a time, in global mode: while it lasts, every call that waits for the
//    device or allocates (stream/device/event synchronise, event query, synchronous copies and
//    memsets, cudaMalloc, cudaFree, cudaMallocHost, cudaFreeHost) is refused with a smol::Error
//    and invalidates the capture, as cudaErrorStreamCaptureUnsupported does; so is an async copy
//    whose host side is pageable (the runtime would have to synchronise for it);
//  - cudaStreamEndCapture of an invalidated capture returns cudaErrorStreamCaptureInvalidated
//    and no graph;
//  - cudaGraphExecUpdate succeeds only when the new graph has the same topology: the same
//    number of nodes, and node by node the same kind and, for kernels, the same function (the
//    parameters — pointers, grid, scalars — may change); otherwise it reports
//    cudaGraphExecUpdateErrorTopologyChanged and the caller instantiates anew.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

// This file defines the entry points the header redirects to.
#define SMOL_EMU_IMPLEMENTATION
#include "kernels/emu/emu_capture.h"

namespace smol::emu {
namespace {

struct Node {
  GraphNodeKind kind;
  const void* function;
  std::function<void()> run;
};
struct EmuGraph {
  std::vector<Node> nodes;
};
struct EmuGraphExec {
  std::vector<Node> nodes;
};

// The emulated device's one capture (global mode admits one per process in practice: any other
// thread's unsafe call is refused while it lasts).
struct CaptureState {
  std::mutex mutex;
  cudaStream_t stream = nullptr;
  bool active = false;
  bool invalidated = false;
  std::string invalid_reason;
  std::vector<Node> nodes;
};
CaptureState& capture() {
  static CaptureState state;
  return state;
}

bool same_topology(const std::vector<Node>& a, const std::vector<Node>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].kind != b[i].kind || a[i].function != b[i].function) return false;
  return true;
}

}  // namespace

bool stream_capturing(cudaStream_t stream) {
  std::lock_guard lock(capture().mutex);
  return capture().active && capture().stream == stream;
}

void capture_node(cudaStream_t stream, GraphNodeKind kind, const void* function,
                  std::function<void()> run) {
  std::lock_guard lock(capture().mutex);
  SMOL_CHECK(capture().active && capture().stream == stream,
             "cuda-emu: internal: node captured on a stream that is not capturing");
  if (capture().invalidated) return;  // as on a GPU, later work joins nothing
  capture().nodes.push_back(Node{kind, function, std::move(run)});
}

void refuse_during_capture(const char* call, const char* why) {
  {
    std::lock_guard lock(capture().mutex);
    if (!capture().active) return;
    capture().invalidated = true;
    capture().invalid_reason = call;
  }
  throw_error("cuda-emu: ", call, " during stream capture: ", why,
              " — a GPU refuses it (cudaErrorStreamCaptureUnsupported) and invalidates the "
              "capture (docs/design.md §2.8)");
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
  std::lock_guard lock(capture().mutex);
  if (stream == nullptr) return cudaErrorStreamCaptureUnsupported;  // the legacy stream
  if (capture().active) return cudaErrorIllegalState;
  capture().active = true;
  capture().stream = stream;
  capture().invalidated = false;
  capture().invalid_reason.clear();
  capture().nodes.clear();
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  std::lock_guard lock(capture().mutex);
  if (!capture().active || capture().stream != stream) return cudaErrorIllegalState;
  capture().active = false;
  capture().stream = nullptr;
  std::vector<Node> nodes = std::move(capture().nodes);
  capture().nodes.clear();
  *graph = nullptr;
  if (capture().invalidated) return cudaErrorStreamCaptureInvalidated;
  *graph = reinterpret_cast<cudaGraph_t>(new EmuGraph{std::move(nodes)});
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  std::lock_guard lock(capture().mutex);
  const bool mine = capture().active && capture().stream == stream;
  *status = !mine                   ? cudaStreamCaptureStatusNone
            : capture().invalidated ? cudaStreamCaptureStatusInvalidated
                                    : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (graph == nullptr) return cudaErrorInvalidValue;
  *exec = reinterpret_cast<cudaGraphExec_t>(
      new EmuGraphExec{reinterpret_cast<EmuGraph*>(graph)->nodes});
  return cudaSuccess;
}

cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t graph,
                                cudaGraphExecUpdateResultInfo* info) {
  if (exec == nullptr || graph == nullptr) return cudaErrorInvalidValue;
  auto& target = reinterpret_cast<EmuGraphExec*>(exec)->nodes;
  const auto& source = reinterpret_cast<EmuGraph*>(graph)->nodes;
  if (info) *info = cudaGraphExecUpdateResultInfo{};
  if (!same_topology(target, source)) {
    if (info) info->result = cudaGraphExecUpdateErrorTopologyChanged;
    return cudaErrorGraphExecUpdateFailure;
  }
  target = source;
  if (info) info->result = cudaGraphExecUpdateSuccess;
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (exec == nullptr) return cudaErrorInvalidValue;
  if (stream_capturing(stream)) refuse_during_capture("cudaGraphLaunch", "not emulated");
  for (const Node& node : reinterpret_cast<EmuGraphExec*>(exec)->nodes) node.run();
  return cudaSuccess;
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* count) {
  if (graph == nullptr || count == nullptr || nodes != nullptr) return cudaErrorInvalidValue;
  *count = reinterpret_cast<EmuGraph*>(graph)->nodes.size();
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete reinterpret_cast<EmuGraph*>(graph);
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete reinterpret_cast<EmuGraphExec*>(exec);
  return cudaSuccess;
}

}  // namespace smol::emu
