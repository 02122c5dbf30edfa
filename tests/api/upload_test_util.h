// Helpers shared by the upload tests (FileReceiver, UploadSession,
// UploadStream): a declared file, a chunk of one, a header's file list.
#ifndef COREMLZ_TESTS_API_UPLOAD_TEST_UTIL_H_
#define COREMLZ_TESTS_API_UPLOAD_TEST_UTIL_H_

#include <cstdint>
#include <initializer_list>
#include <string>

#include "common/sha256.h"
#include "coremlz/v1/compressor.pb.h"

namespace coremlz::upload_test {

inline v1::FileInfo Info(const std::string& path, const std::string& data) {
  v1::FileInfo f;
  f.set_path(path);
  f.set_size(data.size());
  f.set_sha256(Sha256Hex(data));
  return f;
}

inline v1::FileChunk Chunk(uint32_t index, uint64_t offset, const std::string& data) {
  v1::FileChunk c;
  c.set_file_index(index);
  c.set_offset(offset);
  c.set_data(data);
  return c;
}

inline google::protobuf::RepeatedPtrField<v1::FileInfo> Files(std::initializer_list<v1::FileInfo> files) {
  google::protobuf::RepeatedPtrField<v1::FileInfo> out;
  for (const v1::FileInfo& f : files) *out.Add() = f;
  return out;
}

}  // namespace coremlz::upload_test

#endif  // COREMLZ_TESTS_API_UPLOAD_TEST_UTIL_H_
