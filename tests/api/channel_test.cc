// Target names and their resolution, shared by the CLI, the remote worker
// pool and the runner pool.
#include "api/channel.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace coremlz::api {
namespace {

TEST(SplitHostPort, SplitsAtTheLastColonAndUnbracketsIpv6) {
  std::optional<HostPort> hp = SplitHostPort("worker-0.workers:50052");
  ASSERT_TRUE(hp.has_value());
  EXPECT_EQ(hp->host, "worker-0.workers");
  EXPECT_EQ(hp->port, "50052");
  hp = SplitHostPort("[::1]:7");
  ASSERT_TRUE(hp.has_value());
  EXPECT_EQ(hp->host, "::1");
  EXPECT_EQ(hp->port, "7");
  EXPECT_FALSE(SplitHostPort("no-port").has_value());
}

TEST(DnsName, OnlyForDnsTargets) {
  EXPECT_EQ(DnsName("dns:///workers:50052"), "workers:50052");
  EXPECT_EQ(DnsName("dns:workers:50052"), "workers:50052");
  EXPECT_FALSE(DnsName("127.0.0.1:50052").has_value());
  EXPECT_FALSE(DnsName("ipv4:127.0.0.1:1").has_value());
}

TEST(ResolveHost, LiteralsResolveByFamily) {
  absl::StatusOr<ResolvedAddresses> v4 = ResolveHost("127.0.0.1", "50052");
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_THAT(v4->ipv4, ::testing::ElementsAre("127.0.0.1:50052"));
  EXPECT_TRUE(v4->ipv6.empty());
  absl::StatusOr<ResolvedAddresses> v6 = ResolveHost("::1", "9");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_THAT(v6->ipv6, ::testing::ElementsAre("[::1]:9"));
  EXPECT_EQ(v6->size(), 1u);
}

TEST(ResolveHost, AnUnknownNameIsNotFound) {
  // .invalid never resolves (RFC 6761).
  EXPECT_EQ(ResolveHost("nothing.invalid", "1").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace coremlz::api
