// Names and parsing of the LoRA initialisers (see lora_init_spec.h).
#include "model/lora_init_spec.h"

#include <algorithm>
#include <cctype>

#include "common/error.h"

namespace smol {

LoraGaDirection parse_lora_ga_direction(const std::string& value, const std::string& where) {
  if (value == "ArB2r") return LoraGaDirection::ArB2r;
  if (value == "ArBr") return LoraGaDirection::ArBr;
  if (value == "A2rBr") return LoraGaDirection::A2rBr;
  if (value == "random") return LoraGaDirection::Random;
  throw_error(where, ": unknown LoRA-GA direction '", value,
              "' (expected ArB2r, ArBr, A2rBr or random)");
}

LoraGaScale parse_lora_ga_scale(const std::string& value, const std::string& where) {
  if (value == "stable") return LoraGaScale::Stable;
  if (value == "gd") return LoraGaScale::Gd;
  if (value == "unit") return LoraGaScale::Unit;
  if (value == "weightS") return LoraGaScale::WeightS;
  throw_error(where, ": unknown LoRA-GA scale '", value,
              "' (expected stable, gd, unit or weightS)");
}

LoraInitSpec parse_lora_init(const std::string& value, const std::string& where) {
  LoraInitSpec spec;
  static const std::string kNiterPrefix = "pissa_niter_";
  if (value == "gaussian") {
    spec.kind = LoraInitKind::Gaussian;
  } else if (value == "true" || value == "True" || value == "kaiming") {
    spec.kind = LoraInitKind::Kaiming;
  } else if (value == "false" || value == "False") {
    spec.kind = LoraInitKind::NonZero;
  } else if (value == "pissa") {
    spec.kind = LoraInitKind::Pissa;
  } else if (value.rfind(kNiterPrefix, 0) == 0) {
    const std::string digits = value.substr(kNiterPrefix.size());
    SMOL_CHECK(!digits.empty() && digits.size() <= 4 &&
                   std::all_of(digits.begin(), digits.end(), ::isdigit),
               where, ": init_lora_weights '", value,
               "' needs pissa_niter_<K> with 0 <= K < 10000");
    spec.kind = LoraInitKind::PissaNiter;
    spec.niter = std::stoi(digits);
  } else if (value == "lora_ga") {
    spec.kind = LoraInitKind::LoraGa;
  } else if (value == "lora_ns") {
    spec.kind = LoraInitKind::LoraNs;
  } else {
    throw_error(where, ": unsupported init_lora_weights '", value,
                "' (expected gaussian, true, false, pissa, pissa_niter_K, lora_ga or lora_ns)");
  }
  return spec;
}

std::string lora_init_name(const LoraInitSpec& spec) {
  switch (spec.kind) {
    case LoraInitKind::Gaussian:
      return "gaussian";
    case LoraInitKind::Kaiming:
      return "true";
    case LoraInitKind::NonZero:
      return "false";
    case LoraInitKind::Pissa:
      return "pissa";
    case LoraInitKind::PissaNiter:
      return "pissa_niter_" + std::to_string(spec.niter);
    case LoraInitKind::LoraGa:
      return "lora_ga";
    case LoraInitKind::LoraNs:
      return "lora_ns";
  }
  return "?";
}

bool lora_init_needs_gradient(LoraInitKind kind) {
  return kind == LoraInitKind::LoraGa || kind == LoraInitKind::LoraNs;
}

bool lora_init_moves_base_weight(LoraInitKind kind) {
  return kind == LoraInitKind::Pissa || kind == LoraInitKind::PissaNiter ||
         kind == LoraInitKind::LoraGa || kind == LoraInitKind::LoraNs;
}

}  // namespace smol
