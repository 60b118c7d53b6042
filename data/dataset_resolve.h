// Which local files hold a dataset's splits (docs/design.md §5, docs/formats.md §6). We read no
// Parquet and fetch nothing: the known hub datasets resolve to converted copies under a data root
// (find_data_file: --data-dir, $SMOLENGINE_DATA, ./data, ../shared/data):
//
//   gsm8k, openai/gsm8k (subset "main" or none)   <root>/gsm8k/{train,test}.jsonl
//   meta-math/MetaMathQA                           <root>/meta-math/MetaMathQA-395K.json
//                                                  (the hub file as it is: one JSON array;
//                                                  its only split is "train")
//   a local .json / .jsonl file                    that file as split "train"
//   a local directory                              every <split>.jsonl / <split>.json in it
//
// Relative local paths are tried as given, then under each data root.
#pragma once

#include <map>
#include <string>

namespace smol {

struct DatasetFiles {
  std::string name;                           // as configured (for messages)
  std::map<std::string, std::string> splits;  // split name -> file
};

// Throws smol::Error naming the dataset and every place looked at when nothing resolves, and
// for an unsupported subset of a known dataset.
DatasetFiles resolve_dataset(const std::string& name, const std::string& subset = "",
                             const std::string& data_dir = "");

}  // namespace smol
