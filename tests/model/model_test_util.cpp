// Reads tests/golden/model/train_batch.json (the unpadded rows the fixtures were made from).
#include "model_test_util.h"

#include <fstream>
#include <nlohmann/json.hpp>

namespace smol::test {

std::vector<TokenRow> golden_train_rows() {
  std::ifstream in(golden_dir() + "/train_batch.json");
  EXPECT_TRUE(in.good()) << "missing " << golden_dir() << "/train_batch.json";
  const nlohmann::json j = nlohmann::json::parse(in);
  std::vector<TokenRow> rows;
  for (const auto& r : j.at("rows"))
    rows.push_back({r.at("input_ids").get<std::vector<int32_t>>(),
                    r.at("labels").get<std::vector<int32_t>>()});
  return rows;
}

}  // namespace smol::test
