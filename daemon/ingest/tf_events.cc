#include "daemon/ingest/tf_events.h"

#include <endian.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"

namespace amld::daemon {
namespace {

using google::protobuf::io::CodedInputStream;
using google::protobuf::internal::WireFormatLite;

constexpr char kEventsPrefix[] = "events.out.tfevents.";
constexpr int64_t kHeaderBytes = 12;  // length + its CRC
constexpr int64_t kFooterBytes = 4;   // the data's CRC

std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}

uint32_t LoadLe32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return le32toh(v);
}

uint64_t LoadLe64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return le64toh(v);
}

// TensorFlow's DataType values this reader takes as numbers.
enum DataType { kFloat = 1, kDouble = 2, kInt32 = 3, kInt64 = 9 };

struct Tensor {
  int dtype = 0;
  int dims = 0;  // rank: a scalar has none
  std::string content;
  std::vector<double> values;  // float_val, double_val, int_val, int64_val
};

// Reads a length-delimited field's bytes.
bool ReadBytes(CodedInputStream* in, std::string* out) {
  uint32_t size;
  return in->ReadVarint32(&size) && in->ReadString(out, static_cast<int>(size));
}

// A repeated numeric field, packed (wire type 2) or not.
template <typename ReadOne>
bool ReadNumbers(CodedInputStream* in, uint32_t tag, std::vector<double>* out, ReadOne read_one) {
  if (WireFormatLite::GetTagWireType(tag) != WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
    return read_one(in, out);
  }
  uint32_t size;
  if (!in->ReadVarint32(&size)) return false;
  const CodedInputStream::Limit limit = in->PushLimit(static_cast<int>(size));
  while (in->BytesUntilLimit() > 0) {
    if (!read_one(in, out)) return false;
  }
  in->PopLimit(limit);
  return true;
}

bool ReadFloat(CodedInputStream* in, std::vector<double>* out) {
  uint32_t bits;
  if (!in->ReadLittleEndian32(&bits)) return false;
  out->push_back(WireFormatLite::DecodeFloat(bits));
  return true;
}

bool ReadDouble(CodedInputStream* in, std::vector<double>* out) {
  uint64_t bits;
  if (!in->ReadLittleEndian64(&bits)) return false;
  out->push_back(WireFormatLite::DecodeDouble(bits));
  return true;
}

bool ReadSignedVarint(CodedInputStream* in, std::vector<double>* out) {
  uint64_t v;
  if (!in->ReadVarint64(&v)) return false;
  out->push_back(static_cast<double>(static_cast<int64_t>(v)));
  return true;
}

// Calls `field(tag)` for each field of the message that `in` is limited to;
// `field` returns false on malformed input, or calls SkipField itself.
template <typename Field>
bool ForEachField(CodedInputStream* in, Field field) {
  for (;;) {
    const uint32_t tag = in->ReadTag();
    if (tag == 0) return in->ConsumedEntireMessage() || in->BytesUntilLimit() == 0;
    if (!field(tag)) return false;
  }
}

// Runs `body` over a nested message's bytes.
template <typename Body>
bool ReadNested(CodedInputStream* in, Body body) {
  uint32_t size;
  if (!in->ReadVarint32(&size)) return false;
  const CodedInputStream::Limit limit = in->PushLimit(static_cast<int>(size));
  if (!body(in) || in->BytesUntilLimit() != 0) return false;
  in->PopLimit(limit);
  return true;
}

bool ReadTensorShape(CodedInputStream* in, int* dims) {
  return ForEachField(in, [&](uint32_t tag) {
    if (WireFormatLite::GetTagFieldNumber(tag) == 2) ++*dims;  // dim
    return WireFormatLite::SkipField(in, tag);
  });
}

bool ReadTensor(CodedInputStream* in, Tensor* t) {
  return ForEachField(in, [&](uint32_t tag) {
    switch (WireFormatLite::GetTagFieldNumber(tag)) {
      case 1: {
        uint32_t v;
        if (!in->ReadVarint32(&v)) return false;
        t->dtype = static_cast<int>(v);
        return true;
      }
      case 2:
        return ReadNested(in, [&](CodedInputStream* s) { return ReadTensorShape(s, &t->dims); });
      case 4:
        return ReadBytes(in, &t->content);
      case 5:
        return ReadNumbers(in, tag, &t->values, ReadFloat);
      case 6:
        return ReadNumbers(in, tag, &t->values, ReadDouble);
      case 7:
      case 10:
        return ReadNumbers(in, tag, &t->values, ReadSignedVarint);
      default:
        return WireFormatLite::SkipField(in, tag);
    }
  });
}

bool ReadPluginName(CodedInputStream* in, std::string* plugin) {
  return ForEachField(in, [&](uint32_t tag) {
    if (WireFormatLite::GetTagFieldNumber(tag) != 1) return WireFormatLite::SkipField(in, tag);
    return ReadNested(in, [&](CodedInputStream* p) {  // PluginData
      return ForEachField(p, [&](uint32_t t) {
        if (WireFormatLite::GetTagFieldNumber(t) == 1) return ReadBytes(p, plugin);
        return WireFormatLite::SkipField(p, t);
      });
    });
  });
}

// The one number of a scalar tensor, if it is one.
std::optional<double> TensorScalar(const Tensor& t) {
  if (t.dims != 0) return std::nullopt;
  if (t.values.size() == 1) return t.values[0];
  if (!t.values.empty()) return std::nullopt;
  const std::string& c = t.content;
  switch (t.dtype) {
    case kFloat:
      if (c.size() == 4) return WireFormatLite::DecodeFloat(LoadLe32(c.data()));
      break;
    case kDouble:
      if (c.size() == 8) return WireFormatLite::DecodeDouble(LoadLe64(c.data()));
      break;
    case kInt32:
      if (c.size() == 4) return static_cast<int32_t>(LoadLe32(c.data()));
      break;
    case kInt64:
      if (c.size() == 8) return static_cast<double>(static_cast<int64_t>(LoadLe64(c.data())));
      break;
  }
  return std::nullopt;
}

struct Value {
  std::string tag;
  std::optional<double> simple;
  bool has_tensor = false;
  Tensor tensor;
  std::string plugin;
};

bool ReadValue(CodedInputStream* in, Value* v) {
  return ForEachField(in, [&](uint32_t tag) {
    switch (WireFormatLite::GetTagFieldNumber(tag)) {
      case 1:
        return ReadBytes(in, &v->tag);
      case 2: {
        uint32_t bits;
        if (WireFormatLite::GetTagWireType(tag) != WireFormatLite::WIRETYPE_FIXED32 ||
            !in->ReadLittleEndian32(&bits)) {
          return false;
        }
        v->simple = WireFormatLite::DecodeFloat(bits);
        return true;
      }
      case 8:
        v->has_tensor = true;
        return ReadNested(in, [&](CodedInputStream* t) { return ReadTensor(t, &v->tensor); });
      case 9:
        return ReadNested(in, [&](CodedInputStream* m) { return ReadPluginName(m, &v->plugin); });
      default:
        return WireFormatLite::SkipField(in, tag);
    }
  });
}

std::optional<double> ValueScalar(const Value& v) {
  if (v.tag.empty()) return std::nullopt;
  if (v.simple) return v.simple;
  if (!v.has_tensor) return std::nullopt;
  if (!v.plugin.empty() && v.plugin != "scalars") return std::nullopt;
  return TensorScalar(v.tensor);
}

}  // namespace

bool IsTfEventsFile(absl::string_view path) {
  const size_t slash = path.rfind('/');
  const absl::string_view name = slash == absl::string_view::npos ? path : path.substr(slash + 1);
  return absl::StartsWith(name, kEventsPrefix);
}

uint32_t Crc32c(absl::string_view data) {
  static const std::array<uint32_t, 256> table = MakeCrcTable();
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t MaskedCrc32c(absl::string_view data) {
  const uint32_t c = Crc32c(data);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

absl::StatusOr<std::vector<amld::v1::Metric>> DecodeEventScalars(absl::string_view record) {
  CodedInputStream in(reinterpret_cast<const uint8_t*>(record.data()),
                      static_cast<int>(record.size()));
  double wall_time = 0;
  int64_t step = 0;
  std::vector<Value> values;
  const bool ok = ForEachField(&in, [&](uint32_t tag) {
    switch (WireFormatLite::GetTagFieldNumber(tag)) {
      case 1: {
        uint64_t bits;
        if (WireFormatLite::GetTagWireType(tag) != WireFormatLite::WIRETYPE_FIXED64 ||
            !in.ReadLittleEndian64(&bits)) {
          return false;
        }
        wall_time = WireFormatLite::DecodeDouble(bits);
        return true;
      }
      case 2: {
        uint64_t v;
        if (!in.ReadVarint64(&v)) return false;
        step = static_cast<int64_t>(v);
        return true;
      }
      case 5:  // Summary
        return ReadNested(&in, [&](CodedInputStream* s) {
          return ForEachField(s, [&](uint32_t t) {
            if (WireFormatLite::GetTagFieldNumber(t) != 1) return WireFormatLite::SkipField(s, t);
            return ReadNested(s, [&](CodedInputStream* v) {
              return ReadValue(v, &values.emplace_back());
            });
          });
        });
      default:
        return WireFormatLite::SkipField(&in, tag);
    }
  });
  if (!ok) return absl::InvalidArgumentError("not a well-formed Event message");
  std::vector<amld::v1::Metric> out;
  const double seconds = std::isfinite(wall_time) ? std::floor(wall_time) : 0;
  for (const Value& v : values) {
    const std::optional<double> number = ValueScalar(v);
    if (!number) continue;
    amld::v1::Metric& m = out.emplace_back();
    m.set_name(v.tag);
    m.set_number(*number);
    m.set_step(step);
    m.mutable_time()->set_seconds(static_cast<int64_t>(seconds));
    m.mutable_time()->set_nanos(
        std::isfinite(wall_time) ? static_cast<int32_t>((wall_time - seconds) * 1e9) : 0);
  }
  return out;
}

absl::StatusOr<TfEventsTail::Batch> TfEventsTail::Read(int fd, bool at_end) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return absl::ErrnoToStatus(errno, "fstat");
  Batch batch;
  int64_t offset = offset_;
  if (st.st_size < offset) {
    batch.warnings.push_back(absl::StrCat("the file is shorter (", st.st_size,
                                          " bytes) than what was read (", offset,
                                          "): it was rewritten; reading it again from its top"));
    offset = 0;
  }
  // Reads exactly `n` bytes at `at`; false when the file ends first.
  auto read_at = [&](int64_t at, int64_t n, std::string* out) -> absl::StatusOr<bool> {
    out->resize(static_cast<size_t>(n));
    int64_t got = 0;
    while (got < n) {
      const ssize_t r = ::pread(fd, out->data() + got, static_cast<size_t>(n - got), at + got);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return absl::ErrnoToStatus(errno, "pread");
      if (r == 0) return false;
      got += r;
    }
    return true;
  };
  // A whole record starts at `at` when its length's CRC checks and its data
  // is there.
  std::string header, data;
  bool torn = false;
  while (offset < st.st_size) {
    absl::StatusOr<bool> have = read_at(offset, kHeaderBytes, &header);
    if (!have.ok()) return have.status();
    if (!*have) {
      torn = true;
      break;
    }
    const uint64_t length = LoadLe64(header.data());
    if (LoadLe32(header.data() + 8) != MaskedCrc32c(absl::string_view(header.data(), 8)) ||
        length > kMaxTfRecordBytes) {
      // The length cannot be trusted: find the next whole record.
      const int64_t bad = offset;
      bool found = false;
      for (int64_t at = offset + 1; at + kHeaderBytes <= st.st_size; ++at) {
        absl::StatusOr<bool> h = read_at(at, kHeaderBytes, &header);
        if (!h.ok()) return h.status();
        if (!*h) break;
        const uint64_t len = LoadLe64(header.data());
        if (len > kMaxTfRecordBytes ||
            LoadLe32(header.data() + 8) != MaskedCrc32c(absl::string_view(header.data(), 8))) {
          continue;
        }
        absl::StatusOr<bool> d = read_at(at + kHeaderBytes, static_cast<int64_t>(len) + 4, &data);
        if (!d.ok()) return d.status();
        if (*d && LoadLe32(data.data() + len) ==
                      MaskedCrc32c(absl::string_view(data.data(), static_cast<size_t>(len)))) {
          offset = at;
          found = true;
          break;
        }
      }
      if (!found && !at_end) break;  // maybe the next record is still being written
      batch.warnings.push_back(absl::StrCat(
          "byte ", bad, ": a record's length does not match its CRC (or is over ",
          kMaxTfRecordBytes, " bytes); skipped ",
          found ? absl::StrCat(offset - bad, " bytes to the next whole record")
                : std::string("the rest of the file")));
      if (!found) offset = st.st_size;
      continue;
    }
    const int64_t end = offset + kHeaderBytes + static_cast<int64_t>(length) + kFooterBytes;
    absl::StatusOr<bool> d =
        read_at(offset + kHeaderBytes, static_cast<int64_t>(length) + kFooterBytes, &data);
    if (!d.ok()) return d.status();
    if (!*d) {
      torn = true;
      break;
    }
    const absl::string_view payload(data.data(), static_cast<size_t>(length));
    if (LoadLe32(data.data() + length) != MaskedCrc32c(payload)) {
      batch.warnings.push_back(
          absl::StrCat("byte ", offset, ": a record's data does not match its CRC; skipped"));
    } else if (absl::StatusOr<std::vector<amld::v1::Metric>> scalars = DecodeEventScalars(payload);
               !scalars.ok()) {
      batch.warnings.push_back(absl::StrCat("byte ", offset, ": ", scalars.status().message(),
                                            "; skipped"));
    } else {
      for (amld::v1::Metric& m : *scalars) {
        batch.metrics.push_back(std::move(m));
        batch.record_ends.push_back(end);
      }
    }
    offset = end;
  }
  if (torn && at_end && !torn_reported_) {
    batch.warnings.push_back(absl::StrCat("byte ", offset,
                                          ": the last record is incomplete (the writer stopped "
                                          "in the middle of it); ignored"));
  }
  torn_reported_ = torn && at_end;
  offset_ = offset;
  return batch;
}

}  // namespace amld::daemon
