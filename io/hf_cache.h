// Local Hugging Face hub cache lookup (docs/formats.md §7): "HuggingFaceTB/SmolLM2-135M" →
// <root>/models--HuggingFaceTB--SmolLM2-135M/snapshots/<commit>/. No network, ever.
#pragma once

#include <optional>
#include <string>

namespace smol {

// The cache root: HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub ("~" and $VARS expanded).
std::string hf_hub_cache_root();

// True for strings shaped like a hub repo id ("org/name", or a bare "name"): no leading '/',
// '.', or '~', at most one '/', characters [A-Za-z0-9._-]. Existing local paths win over this.
bool looks_like_hub_repo_id(const std::string& text);

// The snapshot directory of a model repo in the cache. `revision`: a 40-hex commit, or a
// branch/tag looked up in refs/ (default "main"); if refs/<revision> is missing and exactly
// one snapshot exists, that one. Returns nullopt when the repo is not in the cache at all;
// throws smol::Error (naming the paths looked at) when it is there but no snapshot resolves.
std::optional<std::string> resolve_hf_snapshot(const std::string& repo_id,
                                               const std::string& revision = "main");

}  // namespace smol
