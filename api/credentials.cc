#include "api/credentials.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace coremlz::api {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, absl::string_view what) {
  auto data = ReadFile(path, 1 << 20);
  if (!data.ok()) return absl::InvalidArgumentError(absl::StrCat(what, ": ", data.status().message()));
  return data;
}

// Compares without an early exit, so timing does not reveal a prefix.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::vector<std::string> TokenLines(absl::string_view text) {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    out.emplace_back(line);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const TlsFiles& files) {
  if (files.cert.empty()) {
    if (!files.key.empty() || !files.client_ca.empty()) {
      return absl::InvalidArgumentError("TLS needs --tls-cert together with --tls-key (and optionally --tls-client-ca)");
    }
    return grpc::InsecureServerCredentials();
  }
  if (files.key.empty()) return absl::InvalidArgumentError("--tls-cert needs --tls-key");
  grpc::SslServerCredentialsOptions options(files.client_ca.empty()
                                                ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                                : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ASSIGN_OR_RETURN(std::string cert, ReadPem(files.cert, "--tls-cert"));
  ASSIGN_OR_RETURN(std::string key, ReadPem(files.key, "--tls-key"));
  options.pem_key_cert_pairs.push_back({key, cert});
  if (!files.client_ca.empty()) { ASSIGN_OR_RETURN(options.pem_root_certs, ReadPem(files.client_ca, "--tls-client-ca")); }
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(const TlsFiles& files) {
  if (files.client_ca.empty() && files.cert.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  if (!files.client_ca.empty()) { ASSIGN_OR_RETURN(options.pem_root_certs, ReadPem(files.client_ca, "--tls-ca")); }
  if (!files.cert.empty()) {
    if (files.key.empty()) return absl::InvalidArgumentError("--tls-cert needs --tls-key");
    ASSIGN_OR_RETURN(options.pem_cert_chain, ReadPem(files.cert, "--tls-cert"));
    ASSIGN_OR_RETURN(options.pem_private_key, ReadPem(files.key, "--tls-key"));
  }
  return grpc::SslCredentials(options);
}

absl::StatusOr<std::shared_ptr<TokenAuth>> TokenAuth::FromFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path, 1 << 20));
  std::vector<std::string> tokens = TokenLines(text);
  if (tokens.empty()) return absl::InvalidArgumentError(absl::StrCat(path, " holds no token"));
  return FromTokens(std::move(tokens));
}

std::shared_ptr<TokenAuth> TokenAuth::FromTokens(std::vector<std::string> tokens) {
  auto auth = std::make_shared<TokenAuth>();
  auth->tokens_ = std::move(tokens);
  return auth;
}

grpc::Status TokenAuth::Check(const grpc::ServerContextBase& context) const {
  return CheckMetadata(context.client_metadata());
}

grpc::Status TokenAuth::CheckMetadata(const std::multimap<grpc::string_ref, grpc::string_ref>& md) const {
  auto it = md.find("authorization");
  if (it == md.end()) return {grpc::StatusCode::UNAUTHENTICATED, "missing \"authorization: Bearer <token>\" metadata"};
  absl::string_view value(it->second.data(), it->second.size());
  if (!absl::StartsWithIgnoreCase(value, "bearer ")) {
    return {grpc::StatusCode::UNAUTHENTICATED, "authorization metadata must be \"Bearer <token>\""};
  }
  value.remove_prefix(7);
  bool ok = false;
  for (const std::string& t : tokens_) ok |= ConstantTimeEquals(value, t);
  if (!ok) return {grpc::StatusCode::UNAUTHENTICATED, "invalid bearer token"};
  return grpc::Status::OK;
}

absl::StatusOr<std::string> ReadToken(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path, 1 << 20));
  std::vector<std::string> tokens = TokenLines(text);
  if (tokens.empty()) return absl::InvalidArgumentError(absl::StrCat(path, " holds no token"));
  return tokens[0];
}

}  // namespace coremlz::api
