// Helpers shared by the deploy/ tests: loading the Kubernetes manifests,
// reading the Dockerfile, resolving a container's command line the way the
// kubelet does, and small process / HTTP utilities.
#ifndef COREMLZ_TESTS_DEPLOY_DEPLOY_TEST_UTIL_H_
#define COREMLZ_TESTS_DEPLOY_DEPLOY_TEST_UTIL_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/testing/http_get.h"
#include "yaml-cpp/yaml.h"

namespace coremlz::testing::deploy {

std::string DeployDir();      // <source>/deploy
std::string KubernetesDir();  // <source>/deploy/kubernetes
std::string ReadText(const std::string& path);  // "" when unreadable

// Every *.yaml / *.yml file under `dir`, recursively, sorted.
std::vector<std::string> YamlFiles(const std::string& dir);

// Every non-empty YAML document of a file (multi-document aware). Throws
// YAML::Exception on a syntax error.
std::vector<YAML::Node> LoadDocuments(const std::string& path);

// One Kubernetes object of deploy/kubernetes.
struct K8sObject {
  std::string file;  // relative to deploy/kubernetes
  std::string kind, name;
  YAML::Node node;
};

// The objects of every file kustomization.yaml lists under resources:.
std::vector<K8sObject> LoadKustomizedObjects();
const K8sObject* Find(const std::vector<K8sObject>& objects, const std::string& kind, const std::string& name);
std::vector<const K8sObject*> OfKind(const std::vector<K8sObject>& objects, const std::string& kind);

// matchLabels / selector maps.
std::map<std::string, std::string> StringMap(const YAML::Node& node);
bool IsSubset(const std::map<std::string, std::string>& small, const std::map<std::string, std::string>& big);

// --- Dockerfile --------------------------------------------------------------

struct Instruction {
  std::string keyword;  // upper case: FROM, RUN, COPY, ...
  std::string args;     // continuation lines joined
  int stage = -1;       // index of the FROM it belongs to
};
std::vector<Instruction> ParseDockerfile(const std::string& text);
// An exec-form argument list (["a", "b"]); empty if `args` is not one.
std::vector<std::string> ExecForm(const std::string& args);
// The final stage's ENTRYPOINT in exec form.
std::vector<std::string> ImageEntrypoint();

// --- containers ----------------------------------------------------------------

// The container's environment as the kubelet builds it: envFrom
// configMapRef (and secretRef names are ignored), then env value /
// valueFrom.configMapKeyRef.
std::map<std::string, std::string> ContainerEnv(const YAML::Node& container, const std::vector<K8sObject>& objects);
// $(VAR) expansion; unknown variables are left as written (as Kubernetes does).
std::string ExpandVars(const std::string& text, const std::map<std::string, std::string>& env);
// command (or the image's ENTRYPOINT) followed by args, expanded.
std::vector<std::string> ContainerArgv(const YAML::Node& container, const std::vector<K8sObject>& objects);
// The last value of --flag (as "--flag=value" or "--flag value").
std::optional<std::string> FlagValue(const std::vector<std::string>& argv, const std::string& flag);
// "0.0.0.0:50051" -> 50051 (0 when unparsable).
int PortOf(const std::string& address);
// Kubernetes quantities: "500m" -> 0.5, "2" -> 2, "512Mi" -> 512*2^20, "1G" -> 1e9.
double ParseQuantity(const std::string& quantity);

// The build-tree binary for an image path: /usr/local/bin/coremlzd ->
// <build>/service/coremlzd ("" for an unknown program).
std::string BuildBinaryFor(const std::string& image_path);

// --- processes and HTTP --------------------------------------------------------

// Absolute path of `name` found on $PATH (or /usr/bin, /usr/sbin, /bin), "" if none.
std::string FindProgram(const std::string& name);
std::string UrlEncode(const std::string& text);

}  // namespace coremlz::testing::deploy

#endif  // COREMLZ_TESTS_DEPLOY_DEPLOY_TEST_UTIL_H_
