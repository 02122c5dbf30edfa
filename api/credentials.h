// TLS and bearer-token credentials for every coremlz server and client.
#ifndef COREMLZ_API_CREDENTIALS_H_
#define COREMLZ_API_CREDENTIALS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace coremlz::api {

struct TlsFiles {
  std::string cert;       // PEM certificate chain
  std::string key;        // PEM private key
  std::string client_ca;  // server: require client certs signed by this CA (mTLS); client: the CA to trust
};

// Insecure when `files.cert` is empty.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const TlsFiles& files);
// Insecure when no file is given; TLS trusting `files.client_ca` (or the
// system roots), with a client certificate when cert/key are given.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(const TlsFiles& files);

// Bearer tokens accepted by a server: one per line in a file, '#' comments.
class TokenAuth {
 public:
  static absl::StatusOr<std::shared_ptr<TokenAuth>> FromFile(const std::string& path);
  static std::shared_ptr<TokenAuth> FromTokens(std::vector<std::string> tokens);
  // UNAUTHENTICATED unless the call carries "authorization: Bearer <token>".
  grpc::Status Check(const grpc::ServerContextBase& context) const;
  // The same check on a call's initial metadata (for interceptors).
  grpc::Status CheckMetadata(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const;

 private:
  std::vector<std::string> tokens_;
};

// Reads a client's token file (the first non-comment line).
absl::StatusOr<std::string> ReadToken(const std::string& path);

}  // namespace coremlz::api

#endif  // COREMLZ_API_CREDENTIALS_H_
