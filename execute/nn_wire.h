// A protobuf message read by field number: the NeuralNetwork layer
// parameters. format/'s wire-compatible subset of NeuralNetwork.proto keeps
// the parameters of weightless layers (pooling, softmax, padding modes, ...)
// as unknown fields or bytes, so the executor reads them from the wire form
// rather than widening a schema every other layer shares.
#ifndef COREMLZ_EXECUTE_NN_WIRE_H_
#define COREMLZ_EXECUTE_NN_WIRE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coremlz::execute {

class WireMessage {
 public:
  // INVALID_ARGUMENT when `bytes` is not a well-formed message.
  static absl::StatusOr<WireMessage> Parse(absl::string_view bytes);

  bool Has(int field) const;
  // Scalars: the last occurrence wins, as protobuf merges them; `fallback`
  // when absent.
  uint64_t Varint(int field, uint64_t fallback = 0) const;
  int64_t Int(int field, int64_t fallback = 0) const { return static_cast<int64_t>(Varint(field, fallback)); }
  bool Bool(int field) const { return Varint(field) != 0; }
  float Float(int field, float fallback = 0) const;
  // A string or bytes field ("" when absent).
  std::string String(int field) const;
  // A repeated float field, packed or not.
  absl::StatusOr<std::vector<float>> Floats(int field) const;
  // A repeated integer field, packed or not.
  absl::StatusOr<std::vector<int64_t>> Ints(int field) const;
  // A sub-message (empty when absent); all occurrences, for repeated ones.
  absl::StatusOr<WireMessage> Message(int field) const;
  absl::StatusOr<std::vector<WireMessage>> Messages(int field) const;
  // Length-delimited fields in order of appearance whose number is in
  // [lo, hi]: the set member of a oneof of messages.
  std::vector<int> LengthDelimitedIn(int lo, int hi) const;

 private:
  struct Field {
    int number = 0;
    int wire_type = 0;
    uint64_t varint = 0;  // wire type 0, or the bits of 1 and 5
    std::string bytes;    // wire type 2
  };
  const Field* Last(int field) const;
  std::vector<Field> fields_;
};

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_NN_WIRE_H_
