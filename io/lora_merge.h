// Merging a PEFT LoRA adapter into the base weights: W' = W + s·B·A (docs/formats.md §4
// "Merging"; PEFT's merge_and_unload), s = lora_alpha / r (or / √r with rslora).
#pragma once

#include <string>

#include "io/host_tensor.h"
#include "io/peft_adapter.h"

namespace smol {

// Adds s·B·A into each targeted base weight of `weights` (HF names, HF layout). B·A is summed in
// double and the sum W + s·B·A rounded to fp32 once (PEFT rounds B·A, then the sum: the two
// differ by at most a few fp32 ulps of |W| + |s·B·A|). Throws smol::Error prefixed by `where`
// when a targeted weight is missing or its [out, in] does not match B's rows and A's columns
// (e.g. an adapter for another model), or when the adapter's config says it was trained on a
// moved base (init_lora_weights pissa, lora_ga, ...: convert it first, peft_weight_conversion.h).
void merge_peft_adapter(HostTensorMap& weights, const PeftAdapter& adapter,
                        const std::string& where);

}  // namespace smol
