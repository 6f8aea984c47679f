// A TensorBoard events file writer for tests, by hand: protobuf's wire
// format and TFRecord's framing written out byte by byte from their public
// descriptions, so the reader under test (daemon/ingest/tf_events.h, which
// decodes with protobuf's CodedInputStream) is checked against an
// independent writer. Only the CRC comes from the reader's library; its
// known values are checked in tf_events_test.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "daemon/ingest/tf_events.h"

namespace amld::testing::tf_events {

inline std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
inline std::string Key(int field, int wire) { return Varint(static_cast<uint64_t>(field) << 3 | wire); }
inline std::string Le(uint64_t v, int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  return out;
}
inline std::string Bytes(int field, const std::string& data) {
  return Key(field, 2) + Varint(data.size()) + data;
}
inline std::string Float(int field, float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return Key(field, 5) + Le(bits, 4);
}
inline std::string Double(int field, double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, 8);
  return Key(field, 1) + Le(bits, 8);
}

// Event{wall_time, step, summary{value{tag, <value fields>}...}}
inline std::string Event(double wall_time, int64_t step, const std::vector<std::string>& values) {
  std::string summary;
  for (const std::string& v : values) summary += Bytes(1, v);
  return Double(1, wall_time) + Key(2, 0) + Varint(static_cast<uint64_t>(step)) +
         Bytes(5, summary);
}
inline std::string SimpleValue(const std::string& tag, float value) {
  return Bytes(1, tag) + Float(2, value);
}
inline std::string ScalarsPlugin() { return Bytes(9, Bytes(1, Bytes(1, "scalars"))); }
// TF2: tensor{dtype, tensor_shape{}, float_val packed}
inline std::string TensorFloatVal(const std::string& tag, float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  const std::string tensor = Key(1, 0) + Varint(1) + Bytes(2, "") + Bytes(5, Le(bits, 4));
  return Bytes(1, tag) + Bytes(8, tensor) + ScalarsPlugin();
}
// tensor{dtype DT_DOUBLE, tensor_content 8 bytes}
inline std::string TensorContentDouble(const std::string& tag, double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, 8);
  const std::string tensor = Key(1, 0) + Varint(2) + Bytes(2, "") + Bytes(4, Le(bits, 8));
  return Bytes(1, tag) + Bytes(8, tensor) + ScalarsPlugin();
}

// --- TFRecord framing, with its CRCs written out ---------------------------

inline std::string Record(const std::string& data) {
  const std::string length = Le(data.size(), 8);
  return length + Le(amld::daemon::MaskedCrc32c(length), 4) + data +
         Le(amld::daemon::MaskedCrc32c(data), 4);
}

}  // namespace amld::testing::tf_events
