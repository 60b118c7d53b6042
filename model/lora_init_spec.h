// What `peft.init_lora_weights` (and the `loraga` section) select: the initialiser kind and
// the LoRA-GA / LoRA-NS direction and scale (docs/seed-behaviour.md §4), with their parsing.
#pragma once

#include <cstdint>
#include <string>

namespace smol {

enum class LoraInitKind : uint8_t { Gaussian, Kaiming, NonZero, Pissa, PissaNiter, LoraGa, LoraNs };
enum class LoraGaDirection : uint8_t { ArB2r, ArBr, A2rBr, Random };
enum class LoraGaScale : uint8_t { Stable, Gd, Unit, WeightS };

struct LoraInitSpec {
  LoraInitKind kind = LoraInitKind::Gaussian;
  int niter = 0;  // pissa_niter_K: K
  LoraGaDirection direction = LoraGaDirection::ArB2r;
  LoraGaScale scale = LoraGaScale::Stable;
  double stable_gamma = 16.0;  // γ of the "stable" scale (both lora_ga and lora_ns: d_out^¼/4)
  uint64_t seed = 42;          // every random draw (A, sketches, Ω) derives from it per tensor
  bool operator==(const LoraInitSpec&) const = default;
};

// init_lora_weights values: "gaussian", "true", "false", "pissa", "pissa_niter_K", "lora_ga",
// "lora_ns" (YAML true/false arrive as "true"/"false"). Throws naming `where`.
LoraInitSpec parse_lora_init(const std::string& value, const std::string& where);
LoraGaDirection parse_lora_ga_direction(const std::string& value, const std::string& where);
LoraGaScale parse_lora_ga_scale(const std::string& value, const std::string& where);
std::string lora_init_name(const LoraInitSpec& spec);
bool lora_init_needs_gradient(LoraInitKind kind);
bool lora_init_moves_base_weight(LoraInitKind kind);

}  // namespace smol
