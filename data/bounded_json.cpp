// parse_bounded_json: nlohmann's parser callback sees the depth of every object / array start
// (see bounded_json.h).
#include "data/bounded_json.h"

#include "common/error.h"

namespace smol {
namespace {

template <typename Json>
Json parse_with_depth_limit(std::string_view text, const std::string& source) {
  const typename Json::parser_callback_t limit_depth = [&source](int depth,
                                                                 typename Json::parse_event_t event,
                                                                 Json&) {
    if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
        depth >= kMaxJsonDepth)
      throw_error(source, ": JSON nested deeper than ", kMaxJsonDepth,
                  " levels (refused: no file of this kind nests so deep)");
    return true;
  };
  return Json::parse(text.begin(), text.end(), limit_depth);
}

}  // namespace

nlohmann::json parse_bounded_json(std::string_view text, const std::string& source) {
  return parse_with_depth_limit<nlohmann::json>(text, source);
}

nlohmann::ordered_json parse_bounded_ordered_json(std::string_view text,
                                                  const std::string& source) {
  return parse_with_depth_limit<nlohmann::ordered_json>(text, source);
}

}  // namespace smol
