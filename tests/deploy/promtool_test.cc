// deploy/prometheus checked by Prometheus' own tool: the scrape config, the
// alert rules, and the rules' unit tests (alerts_test.yml).
#include <iostream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/deploy/deploy_test_util.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace coremlz::testing::deploy {
namespace {

std::string PromDir() { return DeployDir() + "/prometheus"; }

class PromtoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    promtool_ = FindProgram("promtool");
    ASSERT_FALSE(promtool_.empty()) << "promtool not found: run scripts/install-deps.sh (it installs the Debian package "
                                       "\"prometheus\", which provides promtool) - this test does not skip";
  }
  CommandResult Promtool(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {promtool_};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(argv, absl::Seconds(60));
  }
  std::string promtool_;
};

TEST_F(PromtoolTest, CheckConfig) {
  const std::string config = PromDir() + "/prometheus.yml";
  auto r = Promtool({"check", "config", config});
  if (r.exit_code == 0) {
    EXPECT_TRUE(absl::StrContains(r.out + r.err, "SUCCESS")) << r.out << r.err;
    return;
  }
  // Debian builds Prometheus without Kubernetes service discovery ("Kubernetes
  // support has been completely removed", NEWS.Debian), so its promtool
  // rejects the kubernetes_sd_configs the cluster config needs. Anything else
  // is a real error. In that case check everything else with Debian's
  // promtool: the same file with each kubernetes_sd_configs replaced by a
  // static target (relabelling, rule files, globals stay as written); the
  // kubernetes_sd_configs block itself is checked structurally by
  // manifests_test (PrometheusDiscoversThePodsByTheirLabels).
  const std::string output = r.out + r.err;
  ASSERT_TRUE(absl::StrContains(output, "field kubernetes_sd_configs not found")) << "promtool check config failed:\n" << output;
  std::cout << "note: this promtool has no Kubernetes service discovery (Debian build); checking prometheus.yml with "
               "kubernetes_sd_configs replaced by static_configs\n";
  RecordProperty("kubernetes_sd_checked_by_promtool", "no (Debian build)");

  YAML::Node doc = YAML::LoadFile(config);
  int replaced = 0;
  for (YAML::Node job : doc["scrape_configs"]) {
    if (!job["kubernetes_sd_configs"]) continue;
    job.remove("kubernetes_sd_configs");
    YAML::Node target;
    target["targets"].push_back("kubernetes-sd.invalid:9464");
    job["static_configs"].push_back(target);
    ++replaced;
  }
  EXPECT_GE(replaced, 1);
  ScratchDir scratch;
  YAML::Emitter out;
  out << doc;
  ASSERT_TRUE(WriteFileAtomically(scratch.Join("prometheus.yml"), out.c_str()).ok());
  for (const YAML::Node& f : doc["rule_files"]) {
    const std::string name = f.as<std::string>();
    ASSERT_TRUE(WriteFileAtomically(scratch.Join(name), ReadText(PromDir() + "/" + name)).ok());
  }
  auto again = Promtool({"check", "config", scratch.Join("prometheus.yml")});
  EXPECT_EQ(again.exit_code, 0) << out.c_str() << "\n" << again.out << again.err;
  EXPECT_TRUE(absl::StrContains(again.out + again.err, "is valid prometheus config file syntax")) << again.out << again.err;
  EXPECT_TRUE(absl::StrContains(again.out + again.err, "1 rule files found")) << again.out << again.err;
}

TEST_F(PromtoolTest, CheckRules) {
  auto r = Promtool({"check", "rules", PromDir() + "/alerts.yml"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "SUCCESS: 7 rules found")) << r.out << r.err;
}

TEST_F(PromtoolTest, AlertRuleUnitTests) {
  auto r = Promtool({"test", "rules", PromDir() + "/alerts_test.yml"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out + r.err, "SUCCESS")) << r.out << r.err;

  // Every alert of alerts.yml is shown firing at least once in the tests.
  std::set<std::string> alerts, fired;
  for (const YAML::Node& g : YAML::LoadFile(PromDir() + "/alerts.yml")["groups"]) {
    for (const YAML::Node& rule : g["rules"]) {
      if (rule["alert"]) alerts.insert(rule["alert"].as<std::string>());
    }
  }
  for (const YAML::Node& t : YAML::LoadFile(PromDir() + "/alerts_test.yml")["tests"]) {
    for (const YAML::Node& a : t["alert_rule_test"]) {
      if (a["exp_alerts"].size() > 0) fired.insert(a["alertname"].as<std::string>());
    }
  }
  EXPECT_EQ(alerts, fired) << "each alert needs a test where it fires";
}

TEST_F(PromtoolTest, BrokenRulesAreCaught) {
  // The checks above can fail: a rule with a typo in PromQL is rejected.
  ScratchDir scratch;
  ASSERT_TRUE(WriteFileAtomically(scratch.Join("bad.yml"),
                                  "groups:\n  - name: x\n    rules:\n      - alert: Bad\n        expr: sum(rate(x[5m]) > \n")
                  .ok());
  auto r = Promtool({"check", "rules", scratch.Join("bad.yml")});
  EXPECT_NE(r.exit_code, 0) << r.out << r.err;
}

}  // namespace
}  // namespace coremlz::testing::deploy
