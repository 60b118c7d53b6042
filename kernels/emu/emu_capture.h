// cuda-emu stream capture, internal to the emu runtime (emu_graph.cpp; docs/design.md §2.8).
// The entry points that enqueue device work (run_grid, cudaMemcpyAsync, cudaMemsetAsync,
// cublasLtMatmul) ask stream_capturing() first: while their stream captures, they check their
// arguments as a launch would, then hand the work to capture_node() as a closure over the
// argument values — what a real capture stores as node parameters — instead of running it. The
// calls a GPU refuses during a (global-mode) capture call refuse_during_capture(), which
// invalidates the capture and throws.
#pragma once

#include <functional>

#include "kernels/emu/emu_cuda.h"

namespace smol::emu {

// What a node is, for cudaGraphExecUpdate's topology comparison: the kind, and for kernels the
// kernel function (an update may change a node's parameters, never its kind or function).
enum class GraphNodeKind : unsigned char { Kernel, Memcpy, Memset, Matmul };

bool stream_capturing(cudaStream_t stream);
// Appends a node to `stream`'s capture; `run` does the node's work at each graph launch.
void capture_node(cudaStream_t stream, GraphNodeKind kind, const void* function,
                  std::function<void()> run);
// When a capture is in progress: invalidates it and throws smol::Error naming `call` and why a
// GPU refuses it. Otherwise returns.
void refuse_during_capture(const char* call, const char* why);

}  // namespace smol::emu
