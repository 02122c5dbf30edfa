// The Dockerfile, checked without a Docker engine: it builds with the
// project's own scripts, its runtime stage installs packages that exist and
// provide every shared library the built binaries load, and its HEALTHCHECK /
// ENTRYPOINT name binaries it copies - and work against the real binaries.
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <regex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/deploy/deploy_test_util.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace coremlz::testing::deploy {
namespace {

namespace fs = std::filesystem;

// The four binaries of the image, as built in the build tree.
const std::vector<std::string>& BuiltBinaries() {
  static const std::vector<std::string> kBinaries = {"service/coremlzd", "workers/coremlz-worker", "workers/coremlz-runner",
                                                     "clients/coremlz"};
  return kBinaries;
}

std::vector<Instruction> Dockerfile() { return ParseDockerfile(ReadText(SourceDir() + "/Dockerfile")); }

std::vector<Instruction> Stage(const std::vector<Instruction>& all, int stage) {
  std::vector<Instruction> out;
  for (const auto& i : all) {
    if (i.stage == stage) out.push_back(i);
  }
  return out;
}

// Index of the first instruction of `keyword` whose arguments contain every needle (-1 if none).
int IndexOf(const std::vector<Instruction>& ins, const std::string& keyword, const std::vector<std::string>& needles) {
  for (size_t i = 0; i < ins.size(); ++i) {
    if (ins[i].keyword != keyword) continue;
    bool all = true;
    for (const auto& n : needles) all &= absl::StrContains(ins[i].args, n);
    if (all) return static_cast<int>(i);
  }
  return -1;
}

std::vector<std::string> RuntimePackages() {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(ReadText(SourceDir() + "/scripts/runtime-packages.txt"), '\n')) {
    line = line.substr(0, line.find('#'));
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) out.emplace_back(line);
  }
  return out;
}

bool IsExecutable(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & S_IXUSR);
}

TEST(DockerfileTest, BuildStageRunsTheProjectScripts) {
  const auto all = Dockerfile();
  ASSERT_FALSE(all.empty()) << "no Dockerfile at the repository root";
  ASSERT_EQ(all.front().keyword, "FROM");
  const auto build = Stage(all, 0);
  EXPECT_TRUE(std::regex_match(build.front().args, std::regex("debian:12 +AS +build", std::regex::icase))) << build.front().args;

  const int copy_deps = IndexOf(build, "COPY", {"scripts/install-deps.sh"});
  const int deps = IndexOf(build, "RUN", {"COREMLZ_WITH_TEST_TOOLS=0", "scripts/install-deps.sh"});
  const int copy_all = IndexOf(build, "COPY", {". ."});
  const int make = IndexOf(build, "RUN", {"BUILD_DIR=/src/build", "scripts/build.sh", "-DCOREMLZ_BUILD_TESTS=OFF", "-DCOREMLZ_BUILD_BENCH=OFF"});
  ASSERT_GE(copy_deps, 0);
  ASSERT_GE(deps, 0) << "install-deps.sh with COREMLZ_WITH_TEST_TOOLS=0";
  ASSERT_GE(copy_all, 0);
  ASSERT_GE(make, 0) << "build.sh into /src/build with tests and bench off";
  EXPECT_LT(copy_deps, deps);
  EXPECT_LT(deps, copy_all) << "dependencies before the sources, so the package layer is cached";
  EXPECT_LT(copy_all, make);
  EXPECT_TRUE(absl::StrContains(build[IndexOf(build, "WORKDIR", {})].args, "/src"));

  // The scripts exist, are executable (COPY keeps the mode), and take what
  // the Dockerfile gives them.
  for (const std::string s : {"scripts/install-deps.sh", "scripts/build.sh"}) {
    EXPECT_TRUE(IsExecutable(SourceDir() + "/" + s)) << s;
  }
  const std::string install = ReadText(SourceDir() + "/scripts/install-deps.sh");
  EXPECT_TRUE(absl::StrContains(install, "COREMLZ_WITH_TEST_TOOLS")) << "install-deps.sh no longer knows COREMLZ_WITH_TEST_TOOLS";
  EXPECT_TRUE(absl::StrContains(install, "--no-install-recommends"));
  const std::string build_sh = ReadText(SourceDir() + "/scripts/build.sh");
  EXPECT_TRUE(absl::StrContains(build_sh, "BUILD_DIR")) << "build.sh no longer honours BUILD_DIR";
  EXPECT_TRUE(absl::StrContains(build_sh, "\"$@\"")) << "build.sh no longer passes its arguments to CMake";
  const std::string cmake = ReadText(SourceDir() + "/CMakeLists.txt");
  for (const std::string option : {"COREMLZ_BUILD_TESTS", "COREMLZ_BUILD_BENCH"}) {
    EXPECT_TRUE(absl::StrContains(cmake, "option(" + option)) << option << " is not a CMake option any more";
  }
}

TEST(DockerfileTest, BuildContextKeepsTheSources) {
  // .dockerignore must not drop anything the build needs.
  std::set<std::string> ignored;
  for (absl::string_view line : absl::StrSplit(ReadText(SourceDir() + "/.dockerignore"), '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    ignored.insert(std::string(absl::StripPrefix(absl::StripSuffix(line, "/"), "/")));
  }
  EXPECT_TRUE(ignored.count(".git")) << "keep .git out of the context";
  EXPECT_TRUE(ignored.count("build")) << "keep the local build tree out of the context";
  std::set<std::string> needed = {"CMakeLists.txt", "cmake", "scripts", "scripts/install-deps.sh", "scripts/build.sh",
                                  "scripts/runtime-packages.txt"};
  // Every directory the top-level CMakeLists.txt adds.
  static const std::regex add_subdir(R"(add_subdirectory\(([A-Za-z0-9_]+)\))");
  const std::string cmake = ReadText(SourceDir() + "/CMakeLists.txt");
  for (std::sregex_iterator it(cmake.begin(), cmake.end(), add_subdir), end; it != end; ++it) needed.insert((*it)[1]);
  EXPECT_TRUE(needed.count("protos") && needed.count("service") && needed.count("workers"));
  for (const std::string& n : needed) {
    EXPECT_TRUE(fs::exists(SourceDir() + "/" + n)) << n;
    EXPECT_FALSE(ignored.count(n)) << ".dockerignore drops " << n << ", which the build needs";
    for (const std::string& pattern : ignored) {
      if (pattern.find('*') != std::string::npos) {
        // Only simple "**/name" or "*.ext" patterns are used.
        const std::string tail = pattern.substr(pattern.rfind('*') + 1);
        EXPECT_FALSE(!tail.empty() && absl::EndsWith(n, tail) && tail != "/") << pattern << " drops " << n;
      }
    }
  }
}

TEST(DockerfileTest, RuntimeStageIsSlimNonRootAndComplete) {
  const auto all = Dockerfile();
  int last = 0;
  for (const auto& i : all) last = std::max(last, i.stage);
  ASSERT_EQ(last, 1) << "two stages: build and runtime";
  const auto rt = Stage(all, 1);
  EXPECT_EQ(rt.front().args, "debian:12-slim");
  const int copy_list = IndexOf(rt, "COPY", {"scripts/runtime-packages.txt"});
  const int install = IndexOf(rt, "RUN", {"apt-get install", "--no-install-recommends", "runtime-packages.txt"});
  ASSERT_GE(copy_list, 0);
  ASSERT_GE(install, 0) << "the runtime stage installs exactly scripts/runtime-packages.txt";
  EXPECT_TRUE(absl::StrContains(rt[install].args, "rm -rf /var/lib/apt/lists")) << "no apt lists in the image";
  EXPECT_TRUE(absl::StrContains(rt[install].args, "--uid 10001")) << "a non-root user 10001";
  const int user = IndexOf(rt, "USER", {});
  ASSERT_GE(user, 0);
  EXPECT_TRUE(absl::StartsWith(rt[user].args, "10001")) << "numeric USER (runAsNonRoot can verify it)";
  const int expose = IndexOf(rt, "EXPOSE", {});
  ASSERT_GE(expose, 0);
  std::set<std::string> ports = absl::StrSplit(rt[expose].args, ' ', absl::SkipWhitespace());
  EXPECT_EQ(ports, (std::set<std::string>{"50051", "9464"}));
  // Nothing but the runtime list is installed there (no -dev, no compiler).
  for (const auto& i : rt) {
    if (i.keyword == "RUN") {
      EXPECT_FALSE(std::regex_search(i.args, std::regex("-dev\\b|build-essential|cmake"))) << i.args;
    }
  }
}

TEST(DockerfileTest, RuntimeImageGetsTheFourBinariesFromTheBuildStage) {
  const auto all = Dockerfile();
  const auto build = Stage(all, 0);
  const auto rt = Stage(all, 1);
  // The build stage strips (or copies) each build/ binary into /out.
  for (const std::string& b : BuiltBinaries()) {
    EXPECT_TRUE(IsExecutable(BinaryPath(b))) << "not built: " << BinaryPath(b);
    EXPECT_GE(IndexOf(build, "RUN", {b}), 0) << b << " is not taken from the build tree";
  }
  const int copy = IndexOf(rt, "COPY", {"--from=build"});
  ASSERT_GE(copy, 0);
  std::vector<std::string> parts = absl::StrSplit(rt[copy].args, ' ', absl::SkipWhitespace());
  ASSERT_GE(parts.size(), 3u);
  EXPECT_EQ(parts.back(), "/usr/local/bin/");
  std::set<std::string> copied;
  for (size_t i = 1; i + 1 < parts.size(); ++i) copied.insert(fs::path(parts[i]).filename().string());
  EXPECT_EQ(copied, (std::set<std::string>{"coremlzd", "coremlz-worker", "coremlz-runner", "coremlz"}));

  // HEALTHCHECK and ENTRYPOINT name copied binaries.
  const int hc = IndexOf(rt, "HEALTHCHECK", {"CMD"});
  ASSERT_GE(hc, 0);
  const auto health = ExecForm(rt[hc].args.substr(rt[hc].args.find("CMD") + 3));
  ASSERT_EQ(health.size(), 4u) << rt[hc].args;
  EXPECT_EQ(health[0], "/usr/local/bin/coremlz");
  EXPECT_EQ(health[1], "health");
  EXPECT_EQ(health[2], "--server");
  EXPECT_EQ(health[3], "127.0.0.1:50051");
  const auto entry = ImageEntrypoint();
  ASSERT_FALSE(entry.empty()) << "ENTRYPOINT in exec form";
  EXPECT_EQ(entry[0], "/usr/local/bin/coremlzd");
  EXPECT_EQ(FlagValue(entry, "--address").value_or(""), "0.0.0.0:50051");
  EXPECT_EQ(FlagValue(entry, "--metrics-address").value_or(""), "0.0.0.0:9464");
  EXPECT_EQ(PortOf(health[3]), PortOf(FlagValue(entry, "--address").value_or(""))) << "HEALTHCHECK must ask the entrypoint's port";
}

TEST(DockerfileTest, EntrypointAndHealthcheckWorkWithTheBuiltBinaries) {
  // The ENTRYPOINT's command line on loopback (ports chosen by the kernel),
  // then the HEALTHCHECK's command against it: SERVING -> exit 0.
  std::vector<std::string> argv = ImageEntrypoint();
  ASSERT_FALSE(argv.empty());
  argv[0] = BuildBinaryFor(argv[0]);
  for (size_t i = 1; i + 1 < argv.size(); ++i) {
    if (argv[i] == "--address" || argv[i] == "--metrics-address") argv[i + 1] = "127.0.0.1:0";
  }
  Daemon front(argv, "coremlzd: serving gRPC on port ");
  ASSERT_TRUE(front.ok()) << front.log();
  EXPECT_GT(front.NumberAfter("metrics on port "), 0);
  const auto all = Dockerfile();
  const auto rt = Stage(all, 1);
  const int hc = IndexOf(rt, "HEALTHCHECK", {"CMD"});
  ASSERT_GE(hc, 0);
  auto health = ExecForm(rt[hc].args.substr(rt[hc].args.find("CMD") + 3));
  ASSERT_EQ(health.size(), 4u);
  health[0] = BuildBinaryFor(health[0]);
  health[3] = absl::StrCat("127.0.0.1:", front.port());
  auto r = RunProgram(health, absl::Seconds(20));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  // After SIGTERM the server drains and exits 0 (docker stop / kubelet).
  EXPECT_EQ(front.Stop(SIGTERM), 0) << front.log();
  // With nothing listening the health check fails (exit 4), so a dead
  // container is reported unhealthy.
  r = RunProgram(health, absl::Seconds(20));
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
}

TEST(DockerfileTest, RuntimePackagesExistInApt) {
  const auto packages = RuntimePackages();
  ASSERT_FALSE(packages.empty()) << "scripts/runtime-packages.txt lists no package";
  std::set<std::string> seen;
  const std::string dpkg_query = FindProgram("dpkg-query"), apt_cache = FindProgram("apt-cache");
  ASSERT_FALSE(dpkg_query.empty()) << "dpkg-query not found: this check needs Debian 12 (scripts/install-deps.sh)";
  for (const std::string& p : packages) {
    EXPECT_TRUE(seen.insert(p).second) << p << " listed twice";
    EXPECT_TRUE(std::regex_match(p, std::regex("[a-z0-9][a-z0-9+.-]+"))) << "one package name per line: \"" << p << "\"";
    EXPECT_FALSE(absl::EndsWith(p, "-dev")) << p << ": the runtime image needs no headers";
    auto q = RunProgram({dpkg_query, "-W", "-f=${Status}", p}, absl::Seconds(20));
    if (q.exit_code == 0 && absl::StrContains(q.out, "install ok installed")) continue;
    ASSERT_FALSE(apt_cache.empty());
    auto policy = RunProgram({apt_cache, "policy", p}, absl::Seconds(30));
    EXPECT_TRUE(absl::StrContains(policy.out, "Candidate:") && !absl::StrContains(policy.out, "Candidate: (none)"))
        << p << " is neither installed nor available from apt:\n" << policy.out << policy.err;
  }
}

// The path and its usrmerge / symlink twins, any of which dpkg may have recorded.
std::vector<std::string> PathVariants(const std::string& path) {
  std::vector<std::string> out = {path};
  std::error_code ec;
  const std::string real = fs::canonical(path, ec).string();
  if (!ec && real != path) out.push_back(real);
  for (const std::string& c : std::vector<std::string>(out)) out.push_back(absl::StartsWith(c, "/usr/") ? c.substr(4) : "/usr" + c);
  return out;
}

// `dpkg -S` for many paths at once: path -> owning packages (no arch).
std::map<std::string, std::vector<std::string>> DpkgSearch(const std::string& dpkg, const std::set<std::string>& paths) {
  std::vector<std::string> argv = {dpkg, "-S"};
  argv.insert(argv.end(), paths.begin(), paths.end());
  auto r = RunProgram(argv, absl::Seconds(60));  // exit 1 when some path is unknown
  std::map<std::string, std::vector<std::string>> out;
  // "libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6", or "a, b: path".
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "diversion")) continue;
    const size_t sep = line.find(": /");
    if (sep == absl::string_view::npos) continue;
    auto& owners = out[std::string(line.substr(sep + 2))];
    for (absl::string_view pkg : absl::StrSplit(line.substr(0, sep), ", ")) owners.emplace_back(pkg.substr(0, pkg.find(':')));
  }
  return out;
}

TEST(DockerfileTest, EveryLibraryTheBinariesLoadComesFromAListedOrEssentialPackage) {
#ifdef COREMLZ_SANITIZED_BUILD
  GTEST_SKIP() << "sanitizer build: its binaries load libasan/libubsan and no tcmalloc, unlike the image's";
#endif
  const std::string os = ReadText("/etc/os-release");
  ASSERT_TRUE(absl::StrContains(os, "ID=debian") && absl::StrContains(os, "VERSION_ID=\"12\""))
      << "this check maps libraries to Debian 12 packages (the image's base); this host is:\n" << os;
  const std::string ldd = FindProgram("ldd"), dpkg = FindProgram("dpkg"), dpkg_query = FindProgram("dpkg-query");
  ASSERT_FALSE(ldd.empty() || dpkg.empty() || dpkg_query.empty());
  const auto listed_vec = RuntimePackages();
  const std::set<std::string> listed(listed_vec.begin(), listed_vec.end());

  std::set<std::string> libraries;
  static const std::regex arrow(R"(^\s*(\S+) => (\S+) \(0x[0-9a-f]+\))");
  static const std::regex direct(R"(^\s*(/\S+) \(0x[0-9a-f]+\))");
  for (const std::string& b : BuiltBinaries()) {
    auto r = RunProgram({ldd, BinaryPath(b)}, absl::Seconds(30));
    ASSERT_EQ(r.exit_code, 0) << b << ": " << r.out << r.err;
    EXPECT_FALSE(absl::StrContains(r.out, "not found")) << b << " misses a library here already:\n" << r.out;
    int count = 0;
    const std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
    for (const std::string& line : lines) {
      std::smatch m;
      if (std::regex_search(line, m, arrow) || std::regex_search(line, m, direct)) {
        libraries.insert(m[m.size() - 1]);
        ++count;
      }
    }
    EXPECT_GT(count, 5) << b << ": unexpected ldd output\n" << r.out;
  }
  ASSERT_FALSE(libraries.empty());

  std::set<std::string> queried;
  for (const std::string& lib : libraries) {
    for (const std::string& v : PathVariants(lib)) queried.insert(v);
  }
  const auto owned = DpkgSearch(dpkg, queried);
  std::set<std::string> needed_packages, essential;
  {
    std::set<std::string> all;
    for (const auto& [path, owners] : owned) all.insert(owners.begin(), owners.end());
    std::vector<std::string> argv = {dpkg_query, "-W", "-f=${Package} ${Essential}\\n"};
    argv.insert(argv.end(), all.begin(), all.end());
    auto e = RunProgram(argv, absl::Seconds(30));
    for (absl::string_view line : absl::StrSplit(e.out, '\n', absl::SkipEmpty())) {
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      if (f.size() == 2 && f[1] == "yes") essential.insert(f[0]);
    }
  }
  for (const std::string& lib : libraries) {
    std::vector<std::string> owners;
    for (const std::string& v : PathVariants(lib)) {
      auto it = owned.find(v);
      if (it != owned.end()) {
        owners = it->second;
        break;
      }
    }
    if (owners.empty()) {
      ADD_FAILURE() << lib << " belongs to no Debian package: the runtime image cannot get it from apt";
      continue;
    }
    bool ok = false;
    for (const std::string& p : owners) {
      needed_packages.insert(p);
      ok |= listed.count(p) > 0 || essential.count(p) > 0;
    }
    EXPECT_TRUE(ok) << lib << " comes from " << absl::StrJoin(owners, ", ")
                    << ", which is neither in scripts/runtime-packages.txt nor Essential";
  }
  // The list holds no package that no binary needs.
  for (const std::string& p : listed) {
    EXPECT_TRUE(needed_packages.count(p)) << p << " is listed but no binary loads a library from it";
  }
}

}  // namespace
}  // namespace coremlz::testing::deploy
