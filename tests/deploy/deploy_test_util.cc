#include "tests/deploy/deploy_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace coremlz::testing::deploy {

namespace fs = std::filesystem;

std::string DeployDir() { return SourceDir() + "/deploy"; }
std::string KubernetesDir() { return DeployDir() + "/kubernetes"; }

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> YamlFiles(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file()) continue;
    const std::string ext = it->path().extension().string();
    if (ext == ".yaml" || ext == ".yml") out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<YAML::Node> LoadDocuments(const std::string& path) {
  std::vector<YAML::Node> out;
  for (YAML::Node& doc : YAML::LoadAllFromFile(path)) {
    if (doc && !doc.IsNull()) out.push_back(doc);
  }
  return out;
}

std::vector<K8sObject> LoadKustomizedObjects() {
  std::vector<K8sObject> out;
  YAML::Node kustomization = YAML::LoadFile(KubernetesDir() + "/kustomization.yaml");
  for (const YAML::Node& r : kustomization["resources"]) {
    const std::string file = r.as<std::string>();
    for (YAML::Node& doc : LoadDocuments(KubernetesDir() + "/" + file)) {
      K8sObject o;
      o.file = file;
      o.kind = doc["kind"] ? doc["kind"].as<std::string>() : "";
      o.name = doc["metadata"]["name"] ? doc["metadata"]["name"].as<std::string>() : "";
      o.node = doc;
      out.push_back(std::move(o));
    }
  }
  return out;
}

const K8sObject* Find(const std::vector<K8sObject>& objects, const std::string& kind, const std::string& name) {
  for (const K8sObject& o : objects) {
    if (o.kind == kind && o.name == name) return &o;
  }
  return nullptr;
}

std::vector<const K8sObject*> OfKind(const std::vector<K8sObject>& objects, const std::string& kind) {
  std::vector<const K8sObject*> out;
  for (const K8sObject& o : objects) {
    if (o.kind == kind) out.push_back(&o);
  }
  return out;
}

std::map<std::string, std::string> StringMap(const YAML::Node& node) {
  std::map<std::string, std::string> out;
  if (!node || !node.IsMap()) return out;
  for (const auto& kv : node) out[kv.first.as<std::string>()] = kv.second.as<std::string>();
  return out;
}

bool IsSubset(const std::map<std::string, std::string>& small, const std::map<std::string, std::string>& big) {
  for (const auto& [k, v] : small) {
    auto it = big.find(k);
    if (it == big.end() || it->second != v) return false;
  }
  return true;
}

std::vector<Instruction> ParseDockerfile(const std::string& text) {
  std::vector<Instruction> out;
  std::string pending;
  int stage = -1;
  auto flush = [&]() {
    std::string line(absl::StripAsciiWhitespace(pending));
    pending.clear();
    if (line.empty()) return;
    const size_t sp = line.find_first_of(" \t");
    Instruction ins;
    ins.keyword = absl::AsciiStrToUpper(line.substr(0, sp));
    ins.args = sp == std::string::npos ? "" : std::string(absl::StripAsciiWhitespace(line.substr(sp)));
    if (ins.keyword == "FROM") ++stage;
    ins.stage = stage;
    out.push_back(std::move(ins));
  };
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    absl::string_view line = absl::StripTrailingAsciiWhitespace(raw);
    absl::string_view stripped = absl::StripLeadingAsciiWhitespace(line);
    if (stripped.empty() || stripped[0] == '#') continue;  // comments, also inside continuations
    if (absl::ConsumeSuffix(&line, "\\")) {
      pending.append(line.data(), line.size());
      pending += ' ';
      continue;
    }
    pending.append(line.data(), line.size());
    flush();
  }
  flush();
  return out;
}

std::vector<std::string> ExecForm(const std::string& args) {
  std::vector<std::string> out;
  std::string s(absl::StripAsciiWhitespace(args));
  if (s.size() < 2 || s.front() != '[' || s.back() != ']') return out;
  size_t i = 1;
  while (i < s.size() - 1) {
    while (i < s.size() - 1 && (std::isspace(static_cast<unsigned char>(s[i])) || s[i] == ',')) ++i;
    if (i >= s.size() - 1) break;
    if (s[i] != '"') return {};
    std::string item;
    ++i;
    while (i < s.size() - 1 && s[i] != '"') {
      if (s[i] == '\\' && i + 1 < s.size() - 1) ++i;
      item += s[i++];
    }
    if (i >= s.size() - 1) return {};
    ++i;  // closing quote
    out.push_back(item);
  }
  return out;
}

std::vector<std::string> ImageEntrypoint() {
  std::vector<Instruction> ins = ParseDockerfile(ReadText(SourceDir() + "/Dockerfile"));
  int last_stage = -1;
  for (const auto& i : ins) last_stage = std::max(last_stage, i.stage);
  std::vector<std::string> out;
  for (const auto& i : ins) {
    if (i.stage == last_stage && i.keyword == "ENTRYPOINT") out = ExecForm(i.args);
  }
  return out;
}

std::map<std::string, std::string> ContainerEnv(const YAML::Node& container, const std::vector<K8sObject>& objects) {
  std::map<std::string, std::string> env;
  for (const YAML::Node& from : container["envFrom"]) {
    if (!from["configMapRef"]) continue;
    const K8sObject* cm = Find(objects, "ConfigMap", from["configMapRef"]["name"].as<std::string>());
    if (cm == nullptr) continue;
    const std::string prefix = from["prefix"] ? from["prefix"].as<std::string>() : "";
    for (const auto& [k, v] : StringMap(cm->node["data"])) env[prefix + k] = v;
  }
  for (const YAML::Node& e : container["env"]) {
    const std::string name = e["name"].as<std::string>();
    if (e["value"]) {
      env[name] = ExpandVars(e["value"].as<std::string>(), env);
    } else if (e["valueFrom"] && e["valueFrom"]["configMapKeyRef"]) {
      const YAML::Node& ref = e["valueFrom"]["configMapKeyRef"];
      const K8sObject* cm = Find(objects, "ConfigMap", ref["name"].as<std::string>());
      if (cm != nullptr && cm->node["data"][ref["key"].as<std::string>()]) {
        env[name] = cm->node["data"][ref["key"].as<std::string>()].as<std::string>();
      }
    }
  }
  return env;
}

std::string ExpandVars(const std::string& text, const std::map<std::string, std::string>& env) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, 3, "$$(") == 0) {  // escaped
      out += "$(";
      i += 3;
      continue;
    }
    if (text.compare(i, 2, "$(") == 0) {
      const size_t close = text.find(')', i + 2);
      if (close != std::string::npos) {
        auto it = env.find(text.substr(i + 2, close - i - 2));
        if (it != env.end()) {
          out += it->second;
          i = close + 1;
          continue;
        }
      }
    }
    out += text[i++];
  }
  return out;
}

std::vector<std::string> ContainerArgv(const YAML::Node& container, const std::vector<K8sObject>& objects) {
  const auto env = ContainerEnv(container, objects);
  std::vector<std::string> argv;
  if (container["command"]) {
    for (const YAML::Node& c : container["command"]) argv.push_back(ExpandVars(c.as<std::string>(), env));
  } else {
    argv = ImageEntrypoint();
  }
  for (const YAML::Node& a : container["args"]) argv.push_back(ExpandVars(a.as<std::string>(), env));
  return argv;
}

std::optional<std::string> FlagValue(const std::vector<std::string>& argv, const std::string& flag) {
  std::optional<std::string> value;
  const std::string eq = flag + "=";
  for (size_t i = 1; i < argv.size(); ++i) {
    if (absl::StartsWith(argv[i], eq)) {
      value = argv[i].substr(eq.size());
    } else if (argv[i] == flag && i + 1 < argv.size()) {
      value = argv[++i];
    }
  }
  return value;
}

int PortOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return 0;
  return std::atoi(address.c_str() + colon + 1);
}

double ParseQuantity(const std::string& q) {
  static const std::vector<std::pair<std::string, double>> kSuffixes = {
      {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
      {"k", 1e3},     {"M", 1e6},        {"G", 1e9},           {"T", 1e12}, {"m", 1e-3}};
  for (const auto& [suffix, factor] : kSuffixes) {
    if (absl::EndsWith(q, suffix)) return std::atof(q.substr(0, q.size() - suffix.size()).c_str()) * factor;
  }
  return std::atof(q.c_str());
}

std::string BuildBinaryFor(const std::string& image_path) {
  const std::string base = fs::path(image_path).filename().string();
  if (base == "coremlzd") return BinaryPath("service/coremlzd");
  if (base == "coremlz-worker") return BinaryPath("workers/coremlz-worker");
  if (base == "coremlz-runner") return BinaryPath("workers/coremlz-runner");
  if (base == "coremlz") return BinaryPath("clients/coremlz");
  return "";
}

std::string FindProgram(const std::string& name) {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) dirs = absl::StrSplit(path, ':', absl::SkipEmpty());
  for (const char* d : {"/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"}) dirs.emplace_back(d);
  for (const std::string& d : dirs) {
    const std::string p = d + "/" + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

std::string UrlEncode(const std::string& text) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace coremlz::testing::deploy
