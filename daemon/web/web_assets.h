// The web view's files (pages, script, style, Chart.js), compiled into the
// binary from daemon/web/assets/ and Debian's libjs-chart.js by
// embed_assets.py, so a build works without anything installed beside it.
//
// Thread-safety: constant data.
#pragma once

#include <string_view>

namespace amld::daemon {

struct WebAsset {
  std::string_view name;  // "index.html", "app.js", "chart.min.js"
  std::string_view content_type;
  std::string_view data;
};

// nullptr when there is no asset of that name.
const WebAsset* FindWebAsset(std::string_view name);

}  // namespace amld::daemon
