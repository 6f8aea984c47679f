// Byte counts for people: "512 B", "1.5 KiB", "2.0 GiB" (powers of 1024,
// one decimal). The one formatting of sizes in messages and tables.
//
// Thread-safety: pure function.
#pragma once

#include <cstdint>
#include <string>

namespace amld::base {

std::string HumanBytes(int64_t bytes);

}  // namespace amld::base
