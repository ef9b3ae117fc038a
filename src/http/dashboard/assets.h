// The dashboard's templates, stylesheet and script, embedded at build time
// (generated assets.cc; see embed_assets.cmake).
#pragma once

#include <string_view>
#include <vector>

namespace postline::dashboard_internal {

struct Asset {
  std::string_view name;   // file name under src/http/dashboard/assets
  std::string_view bytes;  // its content
};

// Every embedded asset. Thread-safe (built once, read-only).
const std::vector<Asset>& Assets();

}  // namespace postline::dashboard_internal
