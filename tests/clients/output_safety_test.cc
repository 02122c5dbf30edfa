// The CLI never deletes or alters what it was not asked to write (issue 10,
// class 1). Every case runs the real coremlz on real files, embedded and
// through a real coremlzd, and checks the exit code, that both give the same
// message, and that everything already on disk is byte-for-byte as before.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "format/package.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/test_env.h"

namespace coremlz::testing {
namespace {
namespace fs = std::filesystem;

std::string Cli() { return BinaryPath("clients/coremlz"); }
std::string Golden16() { return GoldenDir() + "/ios16_original.mlpackage"; }
std::string Edsr() { return ModelsDir() + "/edsr_f32b5/edsr_f32b5_fp32.mlmodel"; }

// Every entry under `dir`: file contents, link targets, "<dir>".
std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string rel = it->path().lexically_relative(dir).string();
    std::error_code type_ec;
    const fs::file_status type = it->symlink_status(type_ec);  // never follows a link (loops included)
    if (fs::is_symlink(type)) {
      out[rel] = "-> " + fs::read_symlink(it->path()).string();
    } else if (fs::is_directory(type)) {
      out[rel] = "<dir>";
    } else {
      out[rel] = ReadFile(it->path().string()).value_or("<unreadable>");
    }
  }
  return out;
}

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

struct Both {
  CommandResult embedded, remote;
};

class OutputSafetyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    daemon_ = new Daemon({BinaryPath("service/coremlzd"), "--address", "127.0.0.1:0", "--metrics-address", "127.0.0.1:0",
                          "--workers", "2"},
                         "serving gRPC on port ");
  }
  static void TearDownTestSuite() {
    delete daemon_;
    daemon_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(daemon_->ok()) << daemon_->log(); }

  std::string Server() const { return absl::StrCat("127.0.0.1:", daemon_->port()); }
  std::string Join(const std::string& rel) const { return scratch_.Join(rel); }

  // `coremlz compress ARGS`, once embedded and once with --server; `prefix`
  // runs it through another program (setpriv).
  Both Compress(const std::vector<std::string>& args, const std::string& cwd = "",
                const std::vector<std::string>& prefix = {}) {
    std::vector<std::string> argv = prefix;
    argv.push_back(Cli());
    argv.push_back("compress");
    argv.insert(argv.end(), args.begin(), args.end());
    Both r;
    r.embedded = RunProgramIn(cwd, argv);
    argv.push_back("--server");
    argv.push_back(Server());
    r.remote = RunProgramIn(cwd, argv);
    return r;
  }

  // Both refused with `code`, the same message naming `words`, and nothing
  // in the scratch directory changed.
  void ExpectRefused(const Both& r, int code, const std::string& words, const std::string& what) {
    SCOPED_TRACE(what);
    EXPECT_EQ(r.embedded.exit_code, code) << r.embedded.err;
    EXPECT_EQ(r.remote.exit_code, code) << r.remote.err;
    EXPECT_TRUE(absl::StrContains(r.embedded.err, words)) << r.embedded.err;
    EXPECT_EQ(r.embedded.err, r.remote.err) << "embedded and --server should say the same";
    EXPECT_FALSE(absl::StrContains(r.embedded.err, "internal")) << r.embedded.err;
  }

  void CopyInputs() {
    CopyTree(Golden16(), Join("in.mlpackage"));
    ASSERT_TRUE(WriteFileAtomically(Join("in.mlmodel"), *ReadFile(Edsr())).ok());
  }

  ScratchDir scratch_;
  static Daemon* daemon_;
};

Daemon* OutputSafetyTest::daemon_ = nullptr;

TEST_F(OutputSafetyTest, OutputsThatNameADirectoryAreRefused) {
  CopyInputs();
  ASSERT_TRUE(MakeDirectories(Join("sub/deeper")).ok());
  ASSERT_TRUE(WriteFileAtomically(Join("sentinel"), "keep").ok());
  ASSERT_TRUE(WriteFileAtomically(Join("sub/sentinel"), "keep").ok());
  const auto before = Snapshot(scratch_.path());
  const std::string in = Join("in.mlpackage");
  ExpectRefused(Compress({in, "-o", ".", "--quantize", "int8", "--force"}, scratch_.path()), 2, "names a directory", "-o .");
  ExpectRefused(Compress({in, "-o", "./", "--quantize", "int8", "--force"}, Join("sub")), 2, "names a directory", "-o ./");
  ExpectRefused(Compress({in, "-o", "..", "--quantize", "int8", "--force"}, Join("sub/deeper")), 2, "names a directory",
                "-o ..");
  ExpectRefused(Compress({in, "-o", Join("sub/."), "--quantize", "int8", "--force"}), 2, "names a directory", "sub/.");
  ExpectRefused(Compress({in, "-o", Join("sub/deeper/.."), "--quantize", "int8", "--force"}), 2, "names a directory",
                "sub/deeper/..");
  // A trailing slash names the directory itself: one that is not a model is
  // not replaced, --force or not.
  for (const char* force : {"--quiet", "--force"}) {
    ExpectRefused(Compress({in, "-o", Join("sub/"), "--quantize", "int8", force}), 2, "is not a Core ML model",
                  absl::StrCat("sub/ ", force));
  }
  EXPECT_EQ(Snapshot(scratch_.path()), before);
}

TEST_F(OutputSafetyTest, TrailingSlashOnANewOutputWritesTheModelThere) {
  ASSERT_TRUE(MakeDirectories(Join("e")).ok());
  ASSERT_TRUE(MakeDirectories(Join("r")).ok());
  auto embedded = RunProgram({Cli(), "compress", Golden16(), "-o", Join("e/new.mlpackage/"), "--quantize", "int8", "--quiet"});
  auto remote = RunProgram({Cli(), "compress", Golden16(), "-o", Join("r/new.mlpackage/"), "--quantize", "int8", "--quiet",
                            "--server", Server()});
  ASSERT_EQ(embedded.exit_code, 0) << embedded.err;
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  for (const char* dir : {"e", "r"}) {
    EXPECT_EQ(Names(Join(dir)), std::vector<std::string>{"new.mlpackage"}) << dir << ": no staging left behind";
    EXPECT_TRUE(format::MlPackage::Open(Join(std::string(dir) + "/new.mlpackage")).ok()) << dir;
  }
  EXPECT_EQ(Snapshot(Join("e")), Snapshot(Join("r")));
}

TEST_F(OutputSafetyTest, TheInputWhatHoldsItAndWhatIsInsideItAreNeverTheOutput) {
  CopyInputs();
  ASSERT_TRUE(MakeDirectories(Join("holder")).ok());
  CopyTree(Golden16(), Join("holder/in.mlpackage"));
  ASSERT_EQ(::link(Join("in.mlmodel").c_str(), Join("hardlink.mlmodel").c_str()), 0);
  fs::create_symlink(Join("in.mlpackage"), Join("alias.mlpackage"));
  const auto before = Snapshot(scratch_.path());
  const std::string pkg = Join("in.mlpackage"), nn = Join("in.mlmodel");
  struct Case {
    std::string input, output, words;
  } cases[] = {
      {pkg, pkg, "is the input model"},
      {pkg, pkg + "/", "is the input model"},
      {Join("alias.mlpackage"), pkg, "is the input model"},
      {nn, nn, "is the input model"},
      {nn, Join("hardlink.mlmodel"), "is the input model"},
      {pkg, pkg + "/Data/new.mlpackage", "is inside the input model"},
      {Join("holder/in.mlpackage"), Join("holder"), "contains the input model"},
      {pkg, scratch_.path() + "/", "contains the input model"},
  };
  for (const Case& c : cases) {
    const char* technique = absl::EndsWith(c.input, ".mlmodel") ? "--fp16" : "--quantize";
    std::vector<std::string> args = {c.input, "-o", c.output, technique};
    if (std::string(technique) == "--quantize") args.push_back("int8");
    args.push_back("--force");
    ExpectRefused(Compress(args), 2, c.words, c.output);
  }
  EXPECT_EQ(Snapshot(scratch_.path()), before);
}

TEST_F(OutputSafetyTest, ForceReplacesOnlyAModelPackageOrModelFile) {
  CopyInputs();
  ASSERT_TRUE(MakeDirectories(Join("plain.mlpackage")).ok());
  ASSERT_TRUE(WriteFileAtomically(Join("plain.mlpackage/sentinel"), "keep").ok());
  ASSERT_TRUE(MakeDirectories(Join("fake.mlpackage")).ok());
  ASSERT_TRUE(WriteFileAtomically(Join("fake.mlpackage/Manifest.json"), "not json").ok());
  ASSERT_TRUE(WriteFileAtomically(Join("notes.mlmodel"), "my notes, not a model\n").ok());
  ASSERT_TRUE(WriteFileAtomically(Join("notes.txt"), "my notes\n").ok());
  CopyTree(Golden16(), Join("target.mlpackage"));
  fs::create_symlink(Join("target.mlpackage"), Join("link.mlpackage"));
  fs::create_symlink("dangling-target", Join("dangling.mlpackage"));
  const auto before = Snapshot(scratch_.path());
  for (const char* out : {"plain.mlpackage", "fake.mlpackage", "notes.txt"}) {
    ExpectRefused(Compress({Join("in.mlpackage"), "-o", Join(out), "--quantize", "int8", "--force"}), 2,
                  "is not a Core ML model", out);
  }
  for (const char* out : {"notes.mlmodel", "notes.txt"}) {
    ExpectRefused(Compress({Join("in.mlmodel"), "-o", Join(out), "--fp16", "--force"}), 2, "is not a Core ML model", out);
  }
  for (const char* out : {"link.mlpackage", "dangling.mlpackage"}) {
    ExpectRefused(Compress({Join("in.mlpackage"), "-o", Join(out), "--quantize", "int8", "--force"}), 2, "symbolic link",
                  out);
  }
  EXPECT_EQ(Snapshot(scratch_.path()), before);
}

TEST_F(OutputSafetyTest, ForceSwapsInTheNewModelAndAFailedRunKeepsTheOld) {
  for (const char* mode : {"embedded", "remote"}) {
    SCOPED_TRACE(mode);
    const std::string dir = Join(mode);
    ASSERT_TRUE(MakeDirectories(dir).ok());
    CopyTree(Golden16(), dir + "/out.mlpackage");
    ASSERT_TRUE(WriteFileAtomically(dir + "/out.mlmodel", *ReadFile(Edsr())).ok());
    std::vector<std::string> server;
    if (std::string(mode) == "remote") server = {"--server", Server()};
    auto run = [&](std::vector<std::string> args) {
      std::vector<std::string> argv = {Cli(), "compress"};
      argv.insert(argv.end(), args.begin(), args.end());
      argv.insert(argv.end(), server.begin(), server.end());
      return RunProgram(argv);
    };
    // Not expressible for iOS16 (exit 3): the existing model stays as it was.
    const auto before = Snapshot(dir);
    auto failed = run({Golden16(), "-o", dir + "/out.mlpackage", "--quantize", "int4", "--force"});
    EXPECT_EQ(failed.exit_code, 3) << failed.err;
    EXPECT_EQ(Snapshot(dir), before);

    auto pkg = run({Golden16(), "-o", dir + "/out.mlpackage", "--quantize", "int8", "--force", "--quiet"});
    ASSERT_EQ(pkg.exit_code, 0) << pkg.err;
    auto nn = run({Edsr(), "-o", dir + "/out.mlmodel", "--fp16", "--force", "--quiet"});
    ASSERT_EQ(nn.exit_code, 0) << nn.err;
    EXPECT_EQ(Names(dir), (std::vector<std::string>{"out.mlmodel", "out.mlpackage"})) << "no staging or old copy left";
    EXPECT_NE(*ReadFile(dir + "/out.mlpackage/Data/com.apple.CoreML/weights/weight.bin"),
              *ReadFile(Golden16() + "/Data/com.apple.CoreML/weights/weight.bin"));
    EXPECT_LT(ReadFile(dir + "/out.mlmodel")->size(), ReadFile(Edsr())->size());
    EXPECT_TRUE(format::MlPackage::Open(dir + "/out.mlpackage").ok());
  }
  EXPECT_EQ(Snapshot(Join("embedded")), Snapshot(Join("remote")));
}

TEST_F(OutputSafetyTest, PathProblemsAreInputErrorsWithOneMessage) {
  fs::create_symlink("loop", Join("loop"));
  ASSERT_TRUE(WriteFileAtomically(Join("file"), "keep").ok());
  std::string deep = scratch_.path();
  while (deep.size() < 4200) deep += "/" + std::string(100, 'd');
  const auto before = Snapshot(scratch_.path());
  struct Case {
    std::string output, words;
  } cases[] = {
      {Join("loop/out.mlpackage"), "Too many levels of symbolic links"},
      {Join("loop"), "symbolic link"},
      {Join("file/out.mlpackage"), "Not a directory"},
      {Join(std::string(300, 'n') + ".mlpackage"), "too long"},
      {Join(std::string(300, 'p') + "/out.mlpackage"), "too long"},
      {deep + "/out.mlpackage", "too long"},
  };
  for (const Case& c : cases) {
    ExpectRefused(Compress({Golden16(), "-o", c.output, "--quantize", "int8", "--force"}), 2, c.words,
                  c.output.substr(0, 200));
  }
  EXPECT_EQ(Snapshot(scratch_.path()), before);
}

TEST_F(OutputSafetyTest, AReadOnlyDirectoryIsAnInputError) {
  // root writes anywhere; drop its override so that permissions apply.
  std::vector<std::string> prefix;
  if (::geteuid() == 0) {
    if (::access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "running as root without setpriv";
    prefix = {"/usr/bin/setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"};
  }
  ASSERT_TRUE(MakeDirectories(Join("ro")).ok());
  ASSERT_TRUE(WriteFileAtomically(Join("ro/sentinel"), "keep").ok());
  CopyTree(Golden16(), Join("ro/old.mlpackage"));
  ASSERT_EQ(::chmod(Join("ro").c_str(), 0555), 0);
  const auto before = Snapshot(scratch_.path());
  for (const char* out : {"ro/out.mlpackage", "ro/new/dir/out.mlpackage", "ro/old.mlpackage"}) {
    ExpectRefused(Compress({Golden16(), "-o", Join(out), "--quantize", "int8", "--force"}, "", prefix), 2,
                  "is not writable", out);
  }
  EXPECT_EQ(Snapshot(scratch_.path()), before);
  ::chmod(Join("ro").c_str(), 0755);
}

TEST_F(OutputSafetyTest, MissingParentsAreCreatedAndRemovedIfNothingIsWritten) {
  const auto before = Snapshot(scratch_.path());
  auto failed = Compress({Golden16(), "-o", Join("new/dirs/out.mlpackage"), "--quantize", "int4"});
  EXPECT_EQ(failed.embedded.exit_code, 3) << failed.embedded.err;
  EXPECT_EQ(failed.remote.exit_code, 3) << failed.remote.err;
  EXPECT_EQ(Snapshot(scratch_.path()), before) << "no empty directories left behind";
  auto ok = RunProgram({Cli(), "compress", Golden16(), "-o", Join("e/f/out.mlpackage"), "--quantize", "int8", "--quiet"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  auto remote = RunProgram({Cli(), "compress", Golden16(), "-o", Join("r/s/out.mlpackage"), "--quantize", "int8",
                            "--quiet", "--server", Server()});
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  EXPECT_EQ(Names(Join("e/f")), std::vector<std::string>{"out.mlpackage"});
  EXPECT_EQ(Names(Join("r/s")), std::vector<std::string>{"out.mlpackage"});
}

TEST_F(OutputSafetyTest, TheReportNeverOverwritesAModel) {
  CopyInputs();
  ASSERT_TRUE(MakeDirectories(Join("reports")).ok());
  const auto before = Snapshot(scratch_.path());
  const std::string pkg = Join("in.mlpackage"), nn = Join("in.mlmodel");
  struct Case {
    std::vector<std::string> args;
    std::string words;
  } cases[] = {
      {{nn, "-o", Join("out.mlmodel"), "--fp16", "--report", nn}, "would overwrite the input model"},
      {{nn, "-o", Join("out.mlmodel"), "--fp16", "--report", Join("out.mlmodel")}, "would overwrite the output model"},
      {{pkg, "-o", Join("o.mlpackage"), "--quantize", "int8", "--report", pkg + "/Manifest.json"},
       "would overwrite the input model"},
      {{pkg, "-o", Join("o.mlpackage"), "--quantize", "int8", "--report", Join("o.mlpackage/report.json")},
       "would overwrite the output model"},
      {{pkg, "-o", Join("o.mlpackage"), "--quantize", "int8", "--report", Join("reports")}, "Is a directory"},
      {{pkg, "-o", Join("o.mlpackage"), "--quantize", "int8", "--report", Join("missing/r.json")},
       "No such file or directory"},
  };
  for (const Case& c : cases) ExpectRefused(Compress(c.args), 2, c.words, c.args.back());
  EXPECT_EQ(Snapshot(scratch_.path()), before) << "refused before any work: no output written either";
}

// A package compresses to a package and an .mlmodel to an .mlmodel: an
// output whose suffix names the other kind is refused before any work,
// embedded and remote alike, naming both kinds and the name to use; a model
// of the other kind is not replaced even with --force; plan --apply says the
// same before planning.
TEST_F(OutputSafetyTest, TheOutputHasTheInputsKind) {
  CopyInputs();
  CopyTree(Golden16(), Join("old_package"));
  ASSERT_TRUE(WriteFileAtomically(Join("old_file"), *ReadFile(Edsr())).ok());
  const auto before = Snapshot(scratch_.path());
  const std::string pkg = Join("in.mlpackage"), nn = Join("in.mlmodel");
  struct Case {
    std::vector<std::string> args;
    std::string words;
  } cases[] = {
      {{pkg, "-o", Join("x.mlmodel"), "--quantize", "int8"}, "name the output " + Join("x.mlpackage")},
      {{pkg, "-o", Join("X.MLMODEL"), "--quantize", "int8", "--force"}, "name the output " + Join("X.mlpackage")},
      {{nn, "-o", Join("y.mlpackage"), "--fp16"}, "name the output " + Join("y.mlmodel")},
      {{nn, "-o", Join("new/y.mlpackage"), "--fp16", "--force"}, "name the output " + Join("new/y.mlmodel")},
      {{pkg, "-o", Join("old_file"), "--quantize", "int8", "--force"}, "does not replace one kind of model with the other"},
      {{nn, "-o", Join("old_package"), "--fp16", "--force"}, "does not replace one kind of model with the other"},
  };
  for (const Case& c : cases) ExpectRefused(Compress(c.args), 2, c.words, c.args[2]);
  auto suffix = RunProgram({Cli(), "compress", pkg, "-o", Join("x.mlmodel"), "--quantize", "int8"});
  EXPECT_TRUE(absl::StrContains(suffix.err, "an .mlpackage directory") &&
              absl::StrContains(suffix.err, "a single-file .mlmodel"))
      << suffix.err;
  for (bool remote : {false, true}) {
    std::vector<std::string> argv = {Cli(), "plan", pkg, "--bits", "6", "--samples", "1", "--apply", Join("p.mlmodel")};
    if (remote) argv.insert(argv.end(), {"--server", Server()});
    auto r = RunProgram(argv);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, "name the output " + Join("p.mlpackage"))) << r.err;
  }
  EXPECT_EQ(Snapshot(scratch_.path()), before);
}

TEST_F(OutputSafetyTest, RemoteRefusesBeforeContactingTheServer) {
  CopyInputs();
  const auto before = Snapshot(scratch_.path());
  // Port 1 answers nothing: a refusal (2) rather than unreachable (4) shows
  // that the output was checked before any network traffic.
  auto r = RunProgram({Cli(), "compress", Join("in.mlpackage"), "-o", Join("in.mlpackage"), "--quantize", "int8",
                       "--force", "--server", "127.0.0.1:1", "--deadline", "3"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "is the input model")) << r.err;
  EXPECT_EQ(Snapshot(scratch_.path()), before);
}

}  // namespace
}  // namespace coremlz::testing
