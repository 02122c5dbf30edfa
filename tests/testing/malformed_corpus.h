// The malformed-input corpus (tests/data/malformed/*.case): each case file
// names one class of bad input, the base model it damages and the status the
// service must answer. A case expands into variants - e.g. a weight file cut
// at each of its structural boundaries - each a complete Compress request
// stream whose header describes the damaged files truthfully (sizes and
// digests match), so the damage reaches the model reader rather than the
// transfer checks, unless the case is about the stream itself.
//
// Case file (YAML):
//   description: what is broken and why it matters
//   base: golden/ios16_original.mlpackage      # under ../shared
//   config: <compression config YAML>          # optional, default 4-bit palettization
//   mutation: {<kind>: <parameters>}           # exactly one, see malformed_corpus.cc
//   expect: {code: INVALID_ARGUMENT, message: "weight.bin"}
//
// Base models are read from ../shared at test time; no copy of them (or of
// their damaged forms) lives in the repository.
#ifndef COREMLZ_TESTS_TESTING_MALFORMED_CORPUS_H_
#define COREMLZ_TESTS_TESTING_MALFORMED_CORPUS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coremlz/v1/compressor.pb.h"
#include "grpcpp/support/status.h"

namespace coremlz::testing {

struct MalformedVariant {
  std::string name;  // "<case>@<where>"
  std::vector<v1::CompressRequest> requests;
};

struct MalformedCase {
  std::string name;  // the file's base name
  std::string description;
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;  // a substring of the status message
  std::vector<MalformedVariant> variants;
};

// The case files under `dir`, sorted by name.
std::vector<std::string> ListMalformedCases(const std::string& dir);

// Reads one case and builds its variants from the base model under `shared_dir`.
absl::StatusOr<MalformedCase> LoadMalformedCase(const std::string& path, const std::string& shared_dir);

}  // namespace coremlz::testing

#endif  // COREMLZ_TESTS_TESTING_MALFORMED_CORPUS_H_
