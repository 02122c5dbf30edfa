// deploy/: the Kubernetes manifests, the Prometheus files' structure and the
// Mac runner's launchd job and config, parsed and cross-checked - and the
// containers' command lines run against the real binaries (no cluster here).
#include <signal.h>

#include <filesystem>
#include <regex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/deploy/deploy_test_util.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace coremlz::testing::deploy {
namespace {

namespace fs = std::filesystem;

class ManifestsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    try {
      objects_ = LoadKustomizedObjects();
      kustomization_ = YAML::LoadFile(KubernetesDir() + "/kustomization.yaml");
    } catch (const YAML::Exception& e) {
      FAIL() << "deploy/kubernetes does not parse: " << e.what();
    }
  }

  const K8sObject& Get(const std::string& kind, const std::string& name) {
    const K8sObject* o = Find(objects_, kind, name);
    if (o == nullptr) {
      ADD_FAILURE() << "no " << kind << " " << name << " in deploy/kubernetes";
      static const K8sObject empty;
      return empty;
    }
    return *o;
  }
  std::string Namespace() const { return kustomization_["namespace"].as<std::string>(""); }

  // Pod labels of a Deployment.
  static std::map<std::string, std::string> PodLabels(const K8sObject& d) {
    return StringMap(d.node["spec"]["template"]["metadata"]["labels"]);
  }
  // The Deployment whose pods a label selector picks (nullptr if none or several).
  const K8sObject* DeploymentSelectedBy(const std::map<std::string, std::string>& selector) const {
    const K8sObject* found = nullptr;
    for (const K8sObject* d : OfKind(objects_, "Deployment")) {
      if (!selector.empty() && IsSubset(selector, PodLabels(*d))) {
        if (found != nullptr) return nullptr;
        found = d;
      }
    }
    return found;
  }
  static int ServingPort(const std::vector<std::string>& argv) { return PortOf(FlagValue(argv, "--address").value_or("")); }
  static int ContainerPort(const YAML::Node& container, const std::string& name) {
    for (const YAML::Node& p : container["ports"]) {
      if (p["name"].as<std::string>("") == name) return p["containerPort"].as<int>(0);
    }
    return 0;
  }

  std::vector<K8sObject> objects_;
  YAML::Node kustomization_;
};

TEST(DeployYamlTest, EveryYamlFileUnderDeployParses) {
  const std::vector<std::string> files = YamlFiles(DeployDir());
  ASSERT_GE(files.size(), 10u) << "deploy/ should hold the Kubernetes, Prometheus and Mac runner YAML files";
  for (const std::string& f : files) {
    try {
      const std::vector<YAML::Node> docs = LoadDocuments(f);
      EXPECT_FALSE(docs.empty()) << f << " has no document";
      for (const YAML::Node& d : docs) EXPECT_TRUE(d.IsMap()) << f << ": every document must be a mapping";
      if (absl::StrContains(f, "/deploy/kubernetes/") && !absl::EndsWith(f, "kustomization.yaml")) {
        for (const YAML::Node& d : docs) {
          EXPECT_TRUE(d["apiVersion"] && d["kind"] && d["metadata"]["name"]) << f << ": a Kubernetes object needs apiVersion, kind, metadata.name";
        }
      }
    } catch (const YAML::Exception& e) {
      ADD_FAILURE() << f << ": " << e.what();
    }
  }
}

TEST_F(ManifestsTest, KustomizationListsEveryManifestAndNothingElse) {
  std::set<std::string> listed, on_disk;
  for (const YAML::Node& r : kustomization_["resources"]) listed.insert(r.as<std::string>());
  for (const auto& entry : fs::directory_iterator(KubernetesDir())) {
    const std::string name = entry.path().filename().string();
    if ((absl::EndsWith(name, ".yaml") || absl::EndsWith(name, ".yml")) && name != "kustomization.yaml") on_disk.insert(name);
  }
  EXPECT_EQ(listed, on_disk);
  EXPECT_EQ(kustomization_["kind"].as<std::string>(""), "Kustomization");
  EXPECT_FALSE(Namespace().empty()) << "kustomization.yaml should set namespace:";
  const K8sObject* ns = Find(objects_, "Namespace", Namespace());
  EXPECT_NE(ns, nullptr) << "the Namespace " << Namespace() << " should be created too";
  // Every object kind the deployment needs.
  std::multiset<std::string> kinds;
  for (const K8sObject& o : objects_) kinds.insert(o.kind);
  for (const std::string kind : {"Deployment", "Service", "PodDisruptionBudget"}) EXPECT_EQ(kinds.count(kind), 2u) << kind;
  for (const std::string kind : {"HorizontalPodAutoscaler", "Secret", "Namespace"}) EXPECT_EQ(kinds.count(kind), 1u) << kind;
  EXPECT_GE(kinds.count("ConfigMap"), 1u);
  // No two objects share kind and name.
  std::set<std::pair<std::string, std::string>> ids;
  for (const K8sObject& o : objects_) EXPECT_TRUE(ids.insert({o.kind, o.name}).second) << o.kind << " " << o.name << " twice";
}

TEST_F(ManifestsTest, DeploymentsHaveResourcesProbesAndConsistentPorts) {
  const auto deployments = OfKind(objects_, "Deployment");
  ASSERT_EQ(deployments.size(), 2u);
  for (const K8sObject* d : deployments) {
    SCOPED_TRACE(d->name);
    const YAML::Node spec = d->node["spec"]["template"]["spec"];
    ASSERT_TRUE(spec["containers"].IsSequence());
    ASSERT_TRUE(spec["securityContext"]) << "pod securityContext";
    EXPECT_TRUE(spec["securityContext"]["runAsNonRoot"].as<bool>(false));
    EXPECT_EQ(spec["securityContext"]["runAsUser"].as<int>(0), 10001) << "the image's user";
    for (const YAML::Node& c : spec["containers"]) {
      const std::string cname = c["name"].as<std::string>();
      SCOPED_TRACE(cname);
      const YAML::Node res = c["resources"];
      ASSERT_TRUE(res && res["requests"] && res["limits"]) << "resources.requests and resources.limits";
      for (const std::string r : {"cpu", "memory"}) {
        ASSERT_TRUE(res["requests"][r] && res["limits"][r]) << "requests and limits for " << r;
        EXPECT_GT(ParseQuantity(res["requests"][r].as<std::string>()), 0);
        EXPECT_LE(ParseQuantity(res["requests"][r].as<std::string>()), ParseQuantity(res["limits"][r].as<std::string>()))
            << r << ": request above limit";
      }
      const std::vector<std::string> argv = ContainerArgv(c, objects_);
      ASSERT_FALSE(argv.empty());
      for (const std::string& a : argv) EXPECT_FALSE(absl::StrContains(a, "$(")) << "unresolved variable in " << a;
      EXPECT_FALSE(BuildBinaryFor(argv[0]).empty()) << argv[0] << " is not one of the image's binaries";
      const int grpc_port = ServingPort(argv);
      ASSERT_GT(grpc_port, 0) << "no --address in " << absl::StrJoin(argv, " ");
      EXPECT_TRUE(absl::StartsWith(FlagValue(argv, "--address").value_or(""), "0.0.0.0:")) << "must listen on the pod IP";
      EXPECT_EQ(ContainerPort(c, "grpc"), grpc_port) << "containerPort grpc vs --address";
      EXPECT_EQ(ContainerPort(c, "metrics"), PortOf(FlagValue(argv, "--metrics-address").value_or(""))) << "containerPort metrics vs --metrics-address";
      for (const std::string probe : {"readinessProbe", "livenessProbe"}) {
        ASSERT_TRUE(c[probe] && c[probe]["grpc"]) << probe << " must be a native gRPC probe";
        EXPECT_EQ(c[probe]["grpc"]["port"].as<int>(0), grpc_port) << probe << " must check the serving port";
        EXPECT_FALSE(c[probe]["grpc"]["service"]) << probe << ": coremlzd reports the overall status (service \"\")";
      }
      ASSERT_TRUE(c["securityContext"]) << "container securityContext";
      EXPECT_TRUE(c["securityContext"]["readOnlyRootFilesystem"].as<bool>(false));
      EXPECT_FALSE(c["securityContext"]["allowPrivilegeEscalation"].as<bool>(true));
      // Memory budget for jobs stays below the container's limit.
      if (auto budget = FlagValue(argv, "--memory-budget-mb")) {
        EXPECT_LT(std::stod(*budget) * 1048576.0, ParseQuantity(res["limits"]["memory"].as<std::string>()));
      }
      // Every mount names a volume; every path flag lies in a mount.
      std::set<std::string> volumes;
      for (const YAML::Node& v : spec["volumes"]) volumes.insert(v["name"].as<std::string>());
      std::vector<std::string> mounts;
      for (const YAML::Node& m : c["volumeMounts"]) {
        EXPECT_TRUE(volumes.count(m["name"].as<std::string>())) << "mount of unknown volume " << m["name"];
        mounts.push_back(m["mountPath"].as<std::string>());
      }
      EXPECT_NE(std::find(mounts.begin(), mounts.end(), "/tmp"), mounts.end()) << "a writable /tmp (read-only root)";
      for (const std::string flag : {"--token-file", "--peer-token-file", "--runners-file", "--work-dir"}) {
        auto path = FlagValue(argv, flag);
        if (!path) continue;
        bool mounted = false;
        for (const std::string& m : mounts) mounted |= absl::StartsWith(*path, m + "/") || *path == m;
        EXPECT_TRUE(mounted) << flag << "=" << *path << " is not under any volumeMount";
      }
    }
  }
}

TEST_F(ManifestsTest, SelectorsMatchTheirPods) {
  for (const K8sObject* d : OfKind(objects_, "Deployment")) {
    SCOPED_TRACE(d->name);
    const auto selector = StringMap(d->node["spec"]["selector"]["matchLabels"]);
    EXPECT_FALSE(selector.empty());
    EXPECT_TRUE(IsSubset(selector, PodLabels(*d))) << "the Deployment's selector must match its pod template";
    EXPECT_EQ(DeploymentSelectedBy(selector), d) << "selector overlaps another Deployment's pods";
    EXPECT_EQ(PodLabels(*d).count("app.kubernetes.io/component"), 1u) << "Prometheus labels series by component";
    for (const YAML::Node& t : d->node["spec"]["template"]["spec"]["topologySpreadConstraints"]) {
      EXPECT_TRUE(IsSubset(StringMap(t["labelSelector"]["matchLabels"]), PodLabels(*d)));
    }
  }
  // Services: selector picks exactly one Deployment, and every targetPort is
  // a named port of its containers.
  for (const K8sObject* s : OfKind(objects_, "Service")) {
    SCOPED_TRACE(s->name);
    const K8sObject* d = DeploymentSelectedBy(StringMap(s->node["spec"]["selector"]));
    ASSERT_NE(d, nullptr) << "Service selector must pick exactly one Deployment's pods";
    for (const YAML::Node& p : s->node["spec"]["ports"]) {
      const std::string target = p["targetPort"].as<std::string>("");
      bool found = false;
      for (const YAML::Node& c : d->node["spec"]["template"]["spec"]["containers"]) {
        const int named = ContainerPort(c, target);
        found |= named > 0;
        if (named > 0 && s->node["spec"]["clusterIP"].as<std::string>("") == "None") {
          // Headless: clients dial pod IPs directly, so port == containerPort.
          EXPECT_EQ(p["port"].as<int>(), named) << "headless Service port must equal the container port";
        }
      }
      EXPECT_TRUE(found) << "targetPort " << target << " is not a named container port of " << d->name;
    }
  }
  for (const K8sObject* pdb : OfKind(objects_, "PodDisruptionBudget")) {
    SCOPED_TRACE(pdb->name);
    const K8sObject* d = DeploymentSelectedBy(StringMap(pdb->node["spec"]["selector"]["matchLabels"]));
    ASSERT_NE(d, nullptr) << "PDB selector must pick exactly one Deployment's pods";
    EXPECT_TRUE(pdb->node["spec"]["minAvailable"] || pdb->node["spec"]["maxUnavailable"]);
    if (pdb->node["spec"]["minAvailable"]) {
      // A PDB that needs every replica blocks node drains forever.
      EXPECT_LT(pdb->node["spec"]["minAvailable"].as<int>(), d->node["spec"]["replicas"].as<int>(1));
    }
  }
  std::set<std::string> pdb_targets;
  for (const K8sObject* pdb : OfKind(objects_, "PodDisruptionBudget")) {
    if (const K8sObject* d = DeploymentSelectedBy(StringMap(pdb->node["spec"]["selector"]["matchLabels"]))) pdb_targets.insert(d->name);
  }
  EXPECT_EQ(pdb_targets, (std::set<std::string>{"coremlz-front", "coremlz-worker"}));
}

TEST_F(ManifestsTest, FrontAutoscalesOnCpu) {
  const K8sObject& hpa = Get("HorizontalPodAutoscaler", "coremlz-front");
  const YAML::Node ref = hpa.node["spec"]["scaleTargetRef"];
  EXPECT_EQ(hpa.node["apiVersion"].as<std::string>(""), "autoscaling/v2");
  EXPECT_EQ(ref["kind"].as<std::string>(""), "Deployment");
  EXPECT_EQ(ref["apiVersion"].as<std::string>(""), "apps/v1");
  const K8sObject* target = Find(objects_, "Deployment", ref["name"].as<std::string>(""));
  ASSERT_NE(target, nullptr);
  EXPECT_EQ(target->name, "coremlz-front");
  bool cpu = false;
  for (const YAML::Node& m : hpa.node["spec"]["metrics"]) {
    cpu |= m["type"].as<std::string>("") == "Resource" && m["resource"]["name"].as<std::string>("") == "cpu" &&
           m["resource"]["target"]["type"].as<std::string>("") == "Utilization";
  }
  EXPECT_TRUE(cpu) << "HPA on CPU utilisation";
  const int min = hpa.node["spec"]["minReplicas"].as<int>(1), max = hpa.node["spec"]["maxReplicas"].as<int>(0);
  EXPECT_GE(min, 2) << "one front alone is a single point of failure";
  EXPECT_GT(max, min);
  // CPU utilisation is relative to requests: every container must request CPU.
  for (const YAML::Node& c : target->node["spec"]["template"]["spec"]["containers"]) EXPECT_TRUE(c["resources"]["requests"]["cpu"]);
}

TEST_F(ManifestsTest, FrontDialsTheWorkersHeadlessService) {
  const K8sObject& front = Get("Deployment", "coremlz-front");
  const K8sObject& worker = Get("Deployment", "coremlz-worker");
  const K8sObject& svc = Get("Service", "coremlz-worker");
  ASSERT_TRUE(front.node && worker.node && svc.node);
  EXPECT_EQ(svc.node["spec"]["clusterIP"].as<std::string>(""), "None") << "round_robin over DNS needs a headless Service";
  EXPECT_FALSE(svc.node["spec"]["publishNotReadyAddresses"].as<bool>(false)) << "draining workers must leave DNS";
  EXPECT_EQ(DeploymentSelectedBy(StringMap(svc.node["spec"]["selector"])), Find(objects_, "Deployment", "coremlz-worker"));
  int svc_port = 0;
  for (const YAML::Node& p : svc.node["spec"]["ports"]) {
    if (p["name"].as<std::string>("") == "grpc") svc_port = p["port"].as<int>();
  }
  EXPECT_EQ(svc_port, 50052);

  const YAML::Node front_c = front.node["spec"]["template"]["spec"]["containers"][0];
  const YAML::Node worker_c = worker.node["spec"]["template"]["spec"]["containers"][0];
  const auto front_argv = ContainerArgv(front_c, objects_);
  const auto worker_argv = ContainerArgv(worker_c, objects_);
  EXPECT_EQ(absl::StrCat("dns:///coremlz-worker.", Namespace(), ".svc.cluster.local:", svc_port),
            FlagValue(front_argv, "--remote-workers").value_or("(none)"));
  EXPECT_EQ(ServingPort(worker_argv), svc_port) << "the worker must listen where the Service points";
  EXPECT_TRUE(absl::EndsWith(worker_argv[0], "/coremlz-worker"));
  EXPECT_TRUE(absl::EndsWith(front_argv[0], "/coremlzd"));
  // Jobs per worker from one front = the worker's threads.
  EXPECT_EQ(FlagValue(front_argv, "--worker-concurrency"), FlagValue(worker_argv, "--workers"));
  // The worker receives the uploads the front accepted.
  const double front_upload = std::stod(FlagValue(front_argv, "--max-upload-mb").value_or("8192"));
  const double worker_upload = std::stod(FlagValue(worker_argv, "--max-upload-mb").value_or("8192"));
  EXPECT_LE(front_upload, worker_upload);
  // The front keeps each accepted upload and its artifact on the work volume.
  const double calls = std::stod(FlagValue(front_argv, "--max-calls").value_or("64"));
  for (const YAML::Node& v : front.node["spec"]["template"]["spec"]["volumes"]) {
    if (v["name"].as<std::string>() != "work") continue;
    ASSERT_TRUE(v["emptyDir"]["sizeLimit"]);
    EXPECT_LE(calls * front_upload * 2 * 1048576.0, ParseQuantity(v["emptyDir"]["sizeLimit"].as<std::string>()))
        << "work volume smaller than max-calls x max-upload x 2";
  }
  // The workers require the token the front sends.
  auto mount_key = [](const YAML::Node& pod, const std::string& path) -> std::string {
    // Which secret key ends up at `path` (mount of a secret volume).
    for (const YAML::Node& m : pod["containers"][0]["volumeMounts"]) {
      const std::string mp = m["mountPath"].as<std::string>();
      if (!absl::StartsWith(path, mp + "/")) continue;
      for (const YAML::Node& v : pod["volumes"]) {
        if (v["name"].as<std::string>() == m["name"].as<std::string>() && v["secret"]) {
          std::string key = path.substr(mp.size() + 1);
          for (const YAML::Node& item : v["secret"]["items"]) {
            if (item["path"].as<std::string>() == key) key = item["key"].as<std::string>();
          }
          return v["secret"]["secretName"].as<std::string>() + "/" + key;
        }
      }
    }
    return "";
  };
  const std::string sent = mount_key(front.node["spec"]["template"]["spec"], FlagValue(front_argv, "--peer-token-file").value_or(""));
  const std::string required = mount_key(worker.node["spec"]["template"]["spec"], FlagValue(worker_argv, "--token-file").value_or(""));
  EXPECT_FALSE(sent.empty());
  EXPECT_EQ(sent, required) << "front --peer-token-file and worker --token-file must be the same secret key";
}

TEST_F(ManifestsTest, TerminationGraceExceedsDrainTime) {
  for (const K8sObject* d : OfKind(objects_, "Deployment")) {
    SCOPED_TRACE(d->name);
    const YAML::Node spec = d->node["spec"]["template"]["spec"];
    ASSERT_TRUE(spec["terminationGracePeriodSeconds"]);
    const int tgps = spec["terminationGracePeriodSeconds"].as<int>();
    for (const YAML::Node& c : spec["containers"]) {
      const auto argv = ContainerArgv(c, objects_);
      const int grace = std::stoi(FlagValue(argv, "--grace-seconds").value_or("30"));
      int pre_stop = 0;
      const YAML::Node pre = c["lifecycle"] ? c["lifecycle"]["preStop"] : YAML::Node();
      if (pre && pre["exec"]) {
        std::vector<std::string> cmd;
        for (const YAML::Node& a : pre["exec"]["command"]) cmd.push_back(a.as<std::string>());
        ASSERT_EQ(cmd.size(), 2u);
        EXPECT_EQ(cmd[0], "sleep") << "/bin/sleep is in debian:12-slim";
        pre_stop = std::stoi(cmd[1]);
      }
      if (pre && pre["sleep"]) pre_stop = pre["sleep"]["seconds"].as<int>();
      EXPECT_GT(tgps, grace + pre_stop) << "terminationGracePeriodSeconds " << tgps << " vs preStop " << pre_stop
                                        << " s + --grace-seconds " << grace;
    }
  }
}

TEST_F(ManifestsTest, EveryContainerUsesTheOneImage) {
  std::set<std::string> images;
  for (const K8sObject* d : OfKind(objects_, "Deployment")) {
    for (const YAML::Node& c : d->node["spec"]["template"]["spec"]["containers"]) images.insert(c["image"].as<std::string>(""));
  }
  ASSERT_EQ(images.size(), 1u) << "front and workers run the same image (different entrypoints)";
  bool mapped = false;
  for (const YAML::Node& i : kustomization_["images"]) {
    mapped |= i["name"].as<std::string>("") == *images.begin() && i["newName"] && i["newTag"];
  }
  EXPECT_TRUE(mapped) << "kustomization.yaml images: should map " << *images.begin() << " to a registry and tag";
  // The ports the front uses are the ones the image EXPOSEs.
  const auto entry = ImageEntrypoint();
  ASSERT_FALSE(entry.empty());
  EXPECT_EQ(ServingPort(entry), 50051);
  EXPECT_EQ(PortOf(FlagValue(entry, "--metrics-address").value_or("")), 9464);
}

TEST_F(ManifestsTest, ConfigMapsAndSecretsReferencedExist) {
  for (const K8sObject* d : OfKind(objects_, "Deployment")) {
    SCOPED_TRACE(d->name);
    const YAML::Node spec = d->node["spec"]["template"]["spec"];
    for (const YAML::Node& c : spec["containers"]) {
      for (const YAML::Node& from : c["envFrom"]) {
        if (from["configMapRef"]) {
          EXPECT_NE(Find(objects_, "ConfigMap", from["configMapRef"]["name"].as<std::string>()), nullptr);
        }
      }
    }
    for (const YAML::Node& v : spec["volumes"]) {
      const K8sObject* src = nullptr;
      YAML::Node data;
      if (v["configMap"]) {
        src = Find(objects_, "ConfigMap", v["configMap"]["name"].as<std::string>());
        if (src) data = src->node["data"];
      } else if (v["secret"]) {
        src = Find(objects_, "Secret", v["secret"]["secretName"].as<std::string>());
        if (src) data = src->node["stringData"] ? src->node["stringData"] : src->node["data"];
      } else {
        continue;
      }
      ASSERT_NE(src, nullptr) << "volume " << v["name"] << " references a missing object";
      const YAML::Node items = v["configMap"] ? v["configMap"]["items"] : v["secret"]["items"];
      for (const YAML::Node& item : items) EXPECT_TRUE(data[item["key"].as<std::string>()]) << "missing key " << item["key"];
    }
  }
}

TEST_F(ManifestsTest, TokenSecretIsAPlaceholderThatFailsClosed) {
  const K8sObject& secret = Get("Secret", "coremlz-tokens");
  ASSERT_TRUE(secret.node["stringData"].IsMap());
  const std::string text = ReadText(KubernetesDir() + "/" + secret.file);
  EXPECT_TRUE(absl::StrContains(text, "EXAMPLE")) << "the file must say it is an example";
  for (const auto& [key, value] : StringMap(secret.node["stringData"])) {
    EXPECT_TRUE(absl::StrContains(value, "PLACEHOLDER")) << key;
    // Every line a comment: a token file without a token stops the server
    // (TokenLines in api/credentials.cc), so the example can't go live.
    for (absl::string_view line : absl::StrSplit(value, '\n', absl::SkipWhitespace())) {
      EXPECT_TRUE(absl::StartsWith(absl::StripLeadingAsciiWhitespace(line), "#")) << key << ": " << line;
    }
  }
}

TEST_F(ManifestsTest, PrometheusDiscoversThePodsByTheirLabels) {
  YAML::Node prom = YAML::LoadFile(DeployDir() + "/prometheus/prometheus.yml");
  YAML::Node k8s_job;
  bool has_static = false;
  for (const YAML::Node& job : prom["scrape_configs"]) {
    if (job["kubernetes_sd_configs"]) k8s_job.reset(job);
    has_static |= static_cast<bool>(job["static_configs"]);
  }
  ASSERT_TRUE(k8s_job.IsMap()) << "a kubernetes_sd_configs job";
  EXPECT_TRUE(has_static) << "and a static example";
  const YAML::Node sd = k8s_job["kubernetes_sd_configs"][0];
  EXPECT_EQ(sd["role"].as<std::string>(""), "pod");
  bool ns_listed = false;
  for (const YAML::Node& n : sd["namespaces"]["names"]) ns_listed |= n.as<std::string>() == Namespace();
  EXPECT_TRUE(ns_listed) << "the deployment's namespace " << Namespace();
  // Apply the keep rules to each Deployment's pods the way Prometheus would:
  // pod labels -> __meta_kubernetes_pod_label_<sanitised>, one target per
  // container port (__meta_kubernetes_pod_container_port_name).
  auto sanitise = [](std::string s) {
    for (char& c : s) {
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    }
    return s;
  };
  std::set<std::string> component_labels;
  for (const K8sObject* d : OfKind(objects_, "Deployment")) {
    int kept = 0;
    for (const YAML::Node& c : d->node["spec"]["template"]["spec"]["containers"]) {
      for (const YAML::Node& port : c["ports"]) {
        std::map<std::string, std::string> meta;
        for (const auto& [k, v] : PodLabels(*d)) meta["__meta_kubernetes_pod_label_" + sanitise(k)] = v;
        meta["__meta_kubernetes_pod_container_port_name"] = port["name"].as<std::string>("");
        meta["__meta_kubernetes_pod_phase"] = "Running";
        meta["__meta_kubernetes_namespace"] = Namespace();
        bool keep = true;
        for (const YAML::Node& r : k8s_job["relabel_configs"]) {
          std::string value;
          std::vector<std::string> parts;
          for (const YAML::Node& s : r["source_labels"]) parts.push_back(meta[s.as<std::string>()]);
          value = absl::StrJoin(parts, r["separator"].as<std::string>(";"));
          const std::regex re("^(?:" + r["regex"].as<std::string>("(.*)") + ")$");
          const std::string action = r["action"].as<std::string>("replace");
          if (action == "keep" && !std::regex_match(value, re)) keep = false;
          if (action == "drop" && std::regex_match(value, re)) keep = false;
          if (action == "replace" && r["target_label"].as<std::string>("") == "component" && keep) {
            component_labels.insert(value);
          }
        }
        if (keep) {
          ++kept;
          EXPECT_EQ(port["name"].as<std::string>(), "metrics") << d->name;
        }
      }
    }
    EXPECT_EQ(kept, 1) << d->name << ": exactly its metrics port should be scraped";
  }
  EXPECT_EQ(component_labels, (std::set<std::string>{"front", "worker"})) << "alerts.yml selects on component";
  // Rule files exist next to the config.
  for (const YAML::Node& f : prom["rule_files"]) EXPECT_TRUE(PathExists(DeployDir() + "/prometheus/" + f.as<std::string>())) << f;
}

TEST(DeployPrometheusTest, AlertsCoverTheRequiredConditions) {
  YAML::Node alerts = YAML::LoadFile(DeployDir() + "/prometheus/alerts.yml");
  std::map<std::string, std::string> exprs;
  for (const YAML::Node& g : alerts["groups"]) {
    for (const YAML::Node& r : g["rules"]) {
      if (!r["alert"]) continue;
      exprs[r["alert"].as<std::string>()] = r["expr"].as<std::string>();
      EXPECT_TRUE(r["labels"]["severity"]) << r["alert"];
      EXPECT_TRUE(r["annotations"]["summary"]) << r["alert"];
    }
  }
  const std::map<std::string, std::string> required = {
      {"CoremlzFrontDown", "up{component=\"front\"}"},
      {"CoremlzHighErrorRatio", "grpc_server_handled_total"},
      {"CoremlzQueueDepthHigh", "coremlz_queue_depth"},
      {"CoremlzRunnerDown", "coremlz_runner_up == 0"},
      {"CoremlzJobLatencyP99High", "histogram_quantile(0.99"},
      {"CoremlzNoJobsSucceeding", "coremlz_jobs_total"},
  };
  for (const auto& [name, needle] : required) {
    ASSERT_TRUE(exprs.count(name)) << "missing alert " << name;
    EXPECT_TRUE(absl::StrContains(exprs[name], needle)) << name << ": " << exprs[name];
  }
  EXPECT_TRUE(absl::StrContains(exprs["CoremlzJobLatencyP99High"], "coremlz_job_seconds_bucket"));
  EXPECT_TRUE(absl::StrContains(exprs["CoremlzNoJobsSucceeding"], "outcome=\"ok\""));
}

// --- the Mac runner -------------------------------------------------------------

// The value element following <key>name</key> in the plist's top dict.
std::string PlistValue(const std::string& xml, const std::string& key) {
  const std::string k = "<key>" + key + "</key>";
  const size_t pos = xml.find(k);
  if (pos == std::string::npos) return "";
  size_t start = xml.find('<', pos + k.size());
  while (start != std::string::npos && xml.compare(start, 4, "<!--") == 0) start = xml.find('<', xml.find("-->", start) + 3);
  if (start == std::string::npos) return "";
  const size_t name_end = xml.find_first_of(" />", start + 1);
  const std::string tag = xml.substr(start + 1, name_end - start - 1);
  if (xml.compare(start, tag.size() + 3, "<" + tag + "/>") == 0) return "<" + tag + "/>";
  const size_t end = xml.find("</" + tag + ">", start);
  return end == std::string::npos ? "" : xml.substr(start, end + tag.size() + 3 - start);
}

std::vector<std::string> PlistStrings(const std::string& element) {
  std::vector<std::string> out;
  static const std::regex re("<string>([^<]*)</string>");
  for (std::sregex_iterator it(element.begin(), element.end(), re), end; it != end; ++it) out.push_back((*it)[1]);
  return out;
}

TEST(DeployMacosTest, LaunchdPlistRunsTheRunnerWithItsConfig) {
  const std::string xml = ReadText(DeployDir() + "/macos/com.coremlz.runner.plist");
  ASSERT_FALSE(xml.empty());
  EXPECT_TRUE(absl::StartsWith(xml, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
  EXPECT_TRUE(absl::StrContains(xml, "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\""));
  // Well-formed enough: every element opened is closed, in order.
  {
    std::vector<std::string> stack;
    static const std::regex tag_re("<(/?)([A-Za-z][A-Za-z0-9]*)[^>]*?(/?)>");
    std::string body = std::regex_replace(xml, std::regex("<!--[\\s\\S]*?-->"), "");
    for (std::sregex_iterator it(body.begin(), body.end(), tag_re), end; it != end; ++it) {
      if ((*it)[3] == "/") continue;  // <true/>
      if ((*it)[1] == "/") {
        ASSERT_FALSE(stack.empty()) << "stray </" << (*it)[2] << ">";
        ASSERT_EQ(stack.back(), (*it)[2]) << "mismatched </" << (*it)[2] << ">";
        stack.pop_back();
      } else {
        stack.push_back((*it)[2]);
      }
    }
    EXPECT_TRUE(stack.empty()) << "unclosed <" << (stack.empty() ? "" : stack.back()) << ">";
  }
  EXPECT_EQ(PlistValue(xml, "Label"), "<string>com.coremlz.runner</string>");
  EXPECT_EQ(PlistValue(xml, "RunAtLoad"), "<true/>");
  EXPECT_EQ(PlistValue(xml, "KeepAlive"), "<true/>");
  const auto args = PlistStrings(PlistValue(xml, "ProgramArguments"));
  ASSERT_EQ(args.size(), 3u);
  EXPECT_EQ(args[0], "/usr/local/bin/coremlz-runner");
  EXPECT_EQ(args[1], "--config");
  EXPECT_TRUE(absl::EndsWith(args[2], "/runner.yaml"));
  for (const std::string key : {"StandardOutPath", "StandardErrorPath"}) {
    const auto v = PlistStrings(PlistValue(xml, key));
    ASSERT_EQ(v.size(), 1u) << key;
    EXPECT_TRUE(absl::StartsWith(v[0], "/")) << key << " must be absolute";
  }
  // launchd's ExitTimeOut (then SIGKILL) leaves the runner its 30 s drain.
  std::smatch exit_timeout;
  const std::string exit_element = PlistValue(xml, "ExitTimeOut");
  ASSERT_TRUE(std::regex_match(exit_element, exit_timeout, std::regex("<integer>([0-9]+)</integer>"))) << exit_element;
  EXPECT_GT(std::stoi(exit_timeout[1]), 30);
}

TEST(DeployMacosTest, RunnerYamlHasTheKeysTheRunnerAccepts) {
  const std::string path = DeployDir() + "/macos/runner.yaml";
  YAML::Node c = YAML::LoadFile(path);
  // The keys of workers/runner/runner_config.cc.
  const std::set<std::string> accepted = {"listen",  "backend",     "token_file", "tls",  "work_dir",
                                          "runner_id", "devices", "include_mac", "harness", "host"};
  for (const auto& kv : c) EXPECT_TRUE(accepted.count(kv.first.as<std::string>())) << "unknown key " << kv.first;
  EXPECT_EQ(c["backend"].as<std::string>(""), "macos");
  EXPECT_EQ(PortOf(c["listen"].as<std::string>("")), 50061);
  EXPECT_TRUE(c["token_file"]);
  for (const std::string k : {"cert", "key", "client_ca"}) EXPECT_TRUE(c["tls"][k]) << "tls." << k;
  EXPECT_TRUE(c["work_dir"]);
  ASSERT_TRUE(c["devices"].IsSequence());
  static const std::regex udid("^[0-9A-F]{8}-[0-9A-F]{16}$|^[0-9a-f]{40}$");
  for (const YAML::Node& d : c["devices"]) EXPECT_TRUE(std::regex_match(d.as<std::string>(), udid)) << d;
  EXPECT_TRUE(c["include_mac"].IsScalar());
  (void)c["include_mac"].as<bool>();
  for (const std::string k : {"app", "bundle_id", "cli"}) EXPECT_TRUE(c["harness"][k]) << "harness." << k;
  EXPECT_EQ(c["harness"]["bundle_id"].as<std::string>(""), "com.coremlz.harness") << "clients/runner/harness/App/project.yml";
}

TEST(DeployMacosTest, RunnerStartsWithTheExampleConfig) {
  // The real runner parses the file (unknown keys are fatal there); --backend
  // host replaces macos (no Xcode here) and the Mac-only files are blanked.
  ScratchDir scratch;
  const std::string config = DeployDir() + "/macos/runner.yaml";
  Daemon runner({BinaryPath("workers/coremlz-runner"), "--config", config, "--backend", "host", "--address", "127.0.0.1:0",
                 "--token-file=", "--tls-cert=", "--tls-key=", "--tls-client-ca=", "--work-dir", scratch.path()},
                "(host backend) on port ");
  ASSERT_TRUE(runner.ok()) << runner.log();
  auto health = RunProgram({BinaryPath("clients/coremlz"), "health", "--server", absl::StrCat("127.0.0.1:", runner.port())},
                           absl::Seconds(20));
  EXPECT_EQ(health.exit_code, 0) << health.out << health.err;
  EXPECT_EQ(runner.Stop(SIGTERM), 0) << runner.log();

  // And the same runner rejects a config with a key it does not know, so the
  // start above really checked the example's keys.
  const std::string bad = scratch.Join("bad.yaml");
  ASSERT_TRUE(WriteFileAtomically(bad, ReadText(config) + "\nharnes: {app: typo}\n").ok());
  auto rejected = RunProgram({BinaryPath("workers/coremlz-runner"), "--config", bad, "--backend", "host", "--address",
                              "127.0.0.1:0", "--token-file=", "--tls-cert=", "--tls-key=", "--tls-client-ca="},
                             absl::Seconds(10));
  EXPECT_EQ(rejected.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(rejected.err, "unknown key \"harnes\"")) << rejected.err;
}

// --- the containers' command lines against the real binaries ------------------

// Runs a Deployment's container as the kubelet would, on loopback: the
// command line from the manifest (ConfigMap variables expanded), its volumes
// materialised in a scratch directory (ConfigMap items as files, secrets as
// `secret_value`, emptyDirs as directories).
class PodOnLoopback {
 public:
  PodOnLoopback(const std::vector<K8sObject>& objects, const K8sObject& deployment, const std::string& root,
                const std::string& secret_value, const std::map<std::string, std::string>& flag_overrides) {
    const YAML::Node spec = deployment.node["spec"]["template"]["spec"];
    const YAML::Node c = spec["containers"][0];
    std::map<std::string, std::string> mount_to_dir;
    for (const YAML::Node& m : c["volumeMounts"]) {
      const std::string vol = m["name"].as<std::string>();
      const std::string dir = root + "/" + deployment.name + "/" + vol;
      EXPECT_TRUE(MakeDirectories(dir).ok());
      mount_to_dir[m["mountPath"].as<std::string>()] = dir;
      for (const YAML::Node& v : spec["volumes"]) {
        if (v["name"].as<std::string>() != vol) continue;
        if (v["configMap"]) {
          const K8sObject* cm = Find(objects, "ConfigMap", v["configMap"]["name"].as<std::string>());
          if (cm == nullptr) continue;
          // All keys as files, or only the listed items.
          for (const auto& [key, value] : StringMap(cm->node["data"])) {
            std::string path = v["configMap"]["items"] ? "" : key;
            for (const YAML::Node& item : v["configMap"]["items"]) {
              if (item["key"].as<std::string>() == key) path = item["path"].as<std::string>();
            }
            if (!path.empty()) {
              EXPECT_TRUE(WriteFileAtomically(dir + "/" + path, value).ok());
            }
          }
        } else if (v["secret"]) {
          const K8sObject* s = Find(objects, "Secret", v["secret"]["secretName"].as<std::string>());
          if (s == nullptr) continue;
          for (const auto& [key, value] : StringMap(s->node["stringData"])) {
            std::string path = v["secret"]["items"] ? "" : key;
            for (const YAML::Node& item : v["secret"]["items"]) {
              if (item["key"].as<std::string>() == key) path = item["path"].as<std::string>();
            }
            if (!path.empty()) {
              EXPECT_TRUE(WriteFileAtomically(dir + "/" + path, secret_value.empty() ? value : secret_value).ok());
            }
          }
        }
      }
    }
    std::vector<std::string> argv = ContainerArgv(c, objects);
    argv_.push_back(BuildBinaryFor(argv[0]));
    for (size_t i = 1; i < argv.size(); ++i) {
      std::string a = argv[i];
      for (const auto& [flag, value] : flag_overrides) {
        if (absl::StartsWith(a, flag + "=")) a = flag + "=" + value;
      }
      // "--flag=/mount/path/file" -> "--flag=<scratch>/<volume>/file" (once).
      const size_t eq = a.find('=');
      if (eq != std::string::npos) {
        const std::string value = a.substr(eq + 1);
        for (const auto& [mount, dir] : mount_to_dir) {
          if (value == mount || absl::StartsWith(value, mount + "/")) {
            a = a.substr(0, eq + 1) + dir + value.substr(mount.size());
            break;
          }
        }
      }
      argv_.push_back(a);
    }
  }
  const std::vector<std::string>& argv() const { return argv_; }

 private:
  std::vector<std::string> argv_;
};

TEST_F(ManifestsTest, ContainersStartWithTheirManifestFlagsAndServe) {
  ScratchDir scratch;
  const std::string token = "deploy-test-token-0123456789";
  const std::map<std::string, std::string> loopback = {{"--address", "127.0.0.1:0"}, {"--metrics-address", "127.0.0.1:0"}};
  PodOnLoopback worker_pod(objects_, Get("Deployment", "coremlz-worker"), scratch.path(), token, loopback);
  Daemon worker(worker_pod.argv(), "coremlz-worker: serving gRPC on port ");
  ASSERT_TRUE(worker.ok()) << absl::StrJoin(worker_pod.argv(), " ") << "\n" << worker.log();

  auto front_flags = loopback;
  front_flags["--remote-workers"] = absl::StrCat("127.0.0.1:", worker.port());
  PodOnLoopback front_pod(objects_, Get("Deployment", "coremlz-front"), scratch.path(), token, front_flags);
  Daemon front(front_pod.argv(), "coremlzd: serving gRPC on port ");
  ASSERT_TRUE(front.ok()) << absl::StrJoin(front_pod.argv(), " ") << "\n" << front.log();
  EXPECT_TRUE(absl::StrContains(front.log(), "remote workers at 127.0.0.1:")) << front.log();

  // What the probes ask (grpc.health.v1, no token), on both.
  for (int port : {front.port(), worker.port()}) {
    auto health = RunProgram({BinaryPath("clients/coremlz"), "health", "--server", absl::StrCat("127.0.0.1:", port)},
                             absl::Seconds(20));
    EXPECT_EQ(health.exit_code, 0) << port << ": " << health.out << health.err;
  }
  // A real call through the front to the worker, with the client token; the
  // front authenticates to the worker with the peer token.
  const std::string token_file = scratch.Join("client.token");
  ASSERT_TRUE(WriteFileAtomically(token_file, token + "\n").ok());
  const std::string server = absl::StrCat("127.0.0.1:", front.port());
  auto ok = RunProgram({BinaryPath("clients/coremlz"), "compress", GoldenDir() + "/ios16_original.mlpackage", "-o",
                        scratch.Join("out.mlpackage"), "--palettize", "4", "--weight-threshold", "512", "--server", server,
                        "--token-file", token_file},
                       absl::Seconds(60));
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err << front.log() << worker.log();
  EXPECT_TRUE(PathExists(scratch.Join("out.mlpackage/Manifest.json")));
  auto denied = RunProgram({BinaryPath("clients/coremlz"), "compress", GoldenDir() + "/ios16_original.mlpackage", "-o",
                            scratch.Join("denied.mlpackage"), "--palettize", "4", "--server", server},
                           absl::Seconds(60));
  EXPECT_EQ(denied.exit_code, 4) << "no token: UNAUTHENTICATED\n" << denied.err;

  EXPECT_EQ(front.Stop(SIGTERM), 0) << front.log();
  EXPECT_EQ(worker.Stop(SIGTERM), 0) << worker.log();
}

TEST_F(ManifestsTest, FrontRefusesToStartWithThePlaceholderSecret) {
  ScratchDir scratch;
  PodOnLoopback front_pod(objects_, Get("Deployment", "coremlz-front"), scratch.path(), /*secret_value=*/"",
                          {{"--address", "127.0.0.1:0"}, {"--metrics-address", "127.0.0.1:0"}, {"--remote-workers", "127.0.0.1:1"}});
  auto r = RunProgram(front_pod.argv(), absl::Seconds(15));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "holds no token")) << r.err;
}

}  // namespace
}  // namespace coremlz::testing::deploy
