#include "execute/nn_wire.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"

namespace coremlz::execute {
namespace {

using google::protobuf::io::CodedInputStream;

absl::Status Malformed() { return absl::InvalidArgumentError("malformed neural network layer parameters"); }

}  // namespace

absl::StatusOr<WireMessage> WireMessage::Parse(absl::string_view bytes) {
  WireMessage m;
  CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int>(bytes.size()));
  in.PushLimit(static_cast<int>(bytes.size()));
  while (in.BytesUntilLimit() > 0) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) return Malformed();  // truncated, or the invalid field 0
    Field f;
    f.number = static_cast<int>(tag >> 3);
    f.wire_type = static_cast<int>(tag & 7);
    switch (f.wire_type) {
      case 0:
        if (!in.ReadVarint64(&f.varint)) return Malformed();
        break;
      case 1:
        if (!in.ReadLittleEndian64(&f.varint)) return Malformed();
        break;
      case 5: {
        uint32_t v = 0;
        if (!in.ReadLittleEndian32(&v)) return Malformed();
        f.varint = v;
        break;
      }
      case 2: {
        uint32_t len = 0;
        if (!in.ReadVarint32(&len) || !in.ReadString(&f.bytes, static_cast<int>(len))) return Malformed();
        break;
      }
      default:
        return Malformed();  // groups never occur in Core ML specs
    }
    m.fields_.push_back(std::move(f));
  }
  return m;
}

const WireMessage::Field* WireMessage::Last(int field) const {
  for (auto it = fields_.rbegin(); it != fields_.rend(); ++it) {
    if (it->number == field) return &*it;
  }
  return nullptr;
}

bool WireMessage::Has(int field) const { return Last(field) != nullptr; }

uint64_t WireMessage::Varint(int field, uint64_t fallback) const {
  const Field* f = Last(field);
  return f != nullptr && f->wire_type == 0 ? f->varint : fallback;
}

float WireMessage::Float(int field, float fallback) const {
  const Field* f = Last(field);
  if (f == nullptr || f->wire_type != 5) return fallback;
  const uint32_t bits = static_cast<uint32_t>(f->varint);
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

std::string WireMessage::String(int field) const {
  const Field* f = Last(field);
  return f != nullptr && f->wire_type == 2 ? f->bytes : std::string();
}

absl::StatusOr<std::vector<float>> WireMessage::Floats(int field) const {
  std::vector<float> out;
  auto push = [&out](uint32_t bits) {
    float v;
    std::memcpy(&v, &bits, sizeof v);
    out.push_back(v);
  };
  for (const Field& f : fields_) {
    if (f.number != field) continue;
    if (f.wire_type == 5) {
      push(static_cast<uint32_t>(f.varint));
    } else if (f.wire_type == 2 && f.bytes.size() % 4 == 0) {
      for (size_t i = 0; i < f.bytes.size(); i += 4) {
        uint32_t bits = 0;
        for (int k = 3; k >= 0; --k) bits = (bits << 8) | static_cast<uint8_t>(f.bytes[i + k]);
        push(bits);
      }
    } else {
      return Malformed();
    }
  }
  return out;
}

absl::StatusOr<std::vector<int64_t>> WireMessage::Ints(int field) const {
  std::vector<int64_t> out;
  for (const Field& f : fields_) {
    if (f.number != field) continue;
    if (f.wire_type == 0) {
      out.push_back(static_cast<int64_t>(f.varint));
    } else if (f.wire_type == 2) {
      CodedInputStream in(reinterpret_cast<const uint8_t*>(f.bytes.data()), static_cast<int>(f.bytes.size()));
      while (in.BytesUntilLimit() > 0) {
        uint64_t v = 0;
        if (!in.ReadVarint64(&v)) return Malformed();
        out.push_back(static_cast<int64_t>(v));
      }
    } else {
      return Malformed();
    }
  }
  return out;
}

absl::StatusOr<WireMessage> WireMessage::Message(int field) const {
  const Field* f = Last(field);
  if (f == nullptr) return WireMessage();
  if (f->wire_type != 2) return Malformed();
  return Parse(f->bytes);
}

absl::StatusOr<std::vector<WireMessage>> WireMessage::Messages(int field) const {
  std::vector<WireMessage> out;
  for (const Field& f : fields_) {
    if (f.number != field) continue;
    if (f.wire_type != 2) return Malformed();
    absl::StatusOr<WireMessage> m = Parse(f.bytes);
    if (!m.ok()) return m.status();
    out.push_back(*std::move(m));
  }
  return out;
}

std::vector<int> WireMessage::LengthDelimitedIn(int lo, int hi) const {
  std::vector<int> out;
  for (const Field& f : fields_) {
    if (f.wire_type == 2 && f.number >= lo && f.number <= hi) out.push_back(f.number);
  }
  return out;
}

}  // namespace coremlz::execute
