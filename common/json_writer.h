// A minimal streaming JSON writer for machine-readable CLI output. It only
// writes; parsing goes through protobuf's JSON mapping or yaml-cpp.
#ifndef COREMLZ_COMMON_JSON_WRITER_H_
#define COREMLZ_COMMON_JSON_WRITER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace coremlz {

class JsonWriter {
 public:
  explicit JsonWriter(int indent = 2) : indent_(indent) {}

  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(absl::string_view key);
  JsonWriter& String(absl::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Uint(uint64_t value);
  // Non-finite numbers have no JSON form and are written as null.
  JsonWriter& Double(double value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // Inserts an already serialised JSON value verbatim.
  JsonWriter& Raw(absl::string_view json);

  const std::string& str() const { return out_; }

 private:
  void BeforeValue();
  void Newline();

  int indent_;
  std::string out_;
  // Per open container: whether it already holds an element.
  std::vector<bool> has_element_;
  bool after_key_ = false;
};

std::string JsonEscape(absl::string_view s);

}  // namespace coremlz

#endif  // COREMLZ_COMMON_JSON_WRITER_H_
