// Converting an adapter trained on a moved base into a plain LoRA on the ORIGINAL base
// (docs/seed-behaviour.md §4, B19; PEFT's
// save_pretrained(path_initial_model_for_weight_conversion)).
//
// pissa, pissa_niter_K, lora_ga and lora_ns replace each targeted W by the residual
// W_res = W − s·B0·A0 and train A, B on top of it. The trained function is
//   W_res + s·B·A = W + s·(B·A − B0·A0) = W + s·[B, −B0]·[A; A0],
// so the rank-2r adapter A' = [A; A0] (rows), B' = [B, −B0] (columns) reproduces it on the
// unmodified base. The scaling must stay s: r' = 2r, lora_alpha' = 2α (s = α/r), or α·√2 with
// rslora (s = α/√r). This is what PEFT's LoraModel.subtract_mutated_init + save_pretrained do
// (peft/tuners/lora/model.py, peft/peft_model.py), and why: the converted checkpoint loads with
// PeftModel.from_pretrained onto the plain base model (and merges into it) with the same
// function, where the unconverted one would need the residual base, which no file holds.
#pragma once

#include "io/host_tensor.h"
#include "io/peft_adapter.h"

namespace smol {

// `trained` and `initial` hold the same LoRA tensor names (our names, A [r, in], B [out, r]):
// the adapter after training and right after initialisation. Returns the rank-2r tensors and
// updates `config`: r ← 2r, lora_alpha ← 2α (α·√2 with use_rslora), init_lora_weights ←
// "true" (PEFT would otherwise re-run the initialiser on load). Throws smol::Error when the
// names or shapes of the two differ, or either is not a LoRA of rank config.r.
HostTensorMap convert_to_plain_lora(const HostTensorMap& trained, const HostTensorMap& initial,
                                    PeftAdapterConfig& config);

}  // namespace smol
