// Projection names (HF module names) and the LoRA scaling factor (docs/formats.md §2,
// docs/seed-behaviour.md §4).
#include <cmath>
#include <string>

#include "common/error.h"
#include "model/llama_model.h"

namespace smol {

const char* projection_name(Projection p) {
  switch (p) {
    case Projection::Q:
      return "q_proj";
    case Projection::K:
      return "k_proj";
    case Projection::V:
      return "v_proj";
    case Projection::O:
      return "o_proj";
    case Projection::Gate:
      return "gate_proj";
    case Projection::Up:
      return "up_proj";
    case Projection::Down:
      return "down_proj";
  }
  return "?";
}

Projection parse_projection(const std::string& name) {
  static const struct {
    const char* short_name;
    Projection p;
  } kAll[] = {{"q", Projection::Q},      {"k", Projection::K},       {"v", Projection::V},
              {"o", Projection::O},      {"gate", Projection::Gate}, {"up", Projection::Up},
              {"down", Projection::Down}};
  for (const auto& e : kAll)
    if (name == e.short_name || name == projection_name(e.p)) return e.p;
  throw_error("unknown LoRA target module '", name,
              "' (expected one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)");
}

double LoraSettings::scaling() const {
  SMOL_CHECK(r > 0, "LoRA rank r must be positive (got ", r, ")");
  return use_rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

}  // namespace smol
