#include "core/json.h"

#include <cmath>

namespace cachalot::core {

std::string json_text(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

double round_to(double v, int places) {
  const double scale = std::pow(10.0, places);
  return std::round(v * scale) / scale;
}

}  // namespace cachalot::core
