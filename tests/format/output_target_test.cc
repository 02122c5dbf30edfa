// OutputTarget: what may be replaced, where staging happens, and that a
// commit or an abandoned target leaves nothing else behind.
#include "format/output_target.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "absl/strings/match.h"
#include "common/file_util.h"
#include "format/manifest.h"
#include "format/package.h"
#include "gtest/gtest.h"
#include "tests/testing/test_env.h"

namespace coremlz::format {
namespace {
namespace fs = std::filesystem;

// Every entry under `dir` with its content (files), link target (links) or
// "<dir>": two equal snapshots mean nothing was added, removed or changed.
std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string rel = it->path().lexically_relative(dir).string();
    std::error_code type_ec;
    const fs::file_status type = it->symlink_status(type_ec);  // never follows a link (loops included)
    if (fs::is_symlink(type)) {
      out[rel] = "-> " + fs::read_symlink(it->path()).string();
      it.disable_recursion_pending();
    } else if (fs::is_directory(type)) {
      out[rel] = "<dir>";
    } else {
      out[rel] = ReadFile(it->path().string()).value_or("<unreadable>");
    }
  }
  return out;
}

void WritePackage(const std::string& dir, const std::string& payload) {
  ASSERT_TRUE(MakeDirectories(dir + "/Data").ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/Manifest.json", Manifest::ForNewPackage("t").Serialize()).ok());
  ASSERT_TRUE(WriteFileAtomically(dir + "/Data/payload", payload).ok());
}

std::string ModelFileBytes() {
  CoreML::Specification::Model model;
  model.set_specificationversion(7);
  model.mutable_neuralnetwork();
  return SerializeModelSpec(model);
}

class OutputTargetTest : public ::testing::Test {
 protected:
  std::string Join(const std::string& rel) const { return scratch_.Join(rel); }
  testing::ScratchDir scratch_;
};

TEST_F(OutputTargetTest, RefusesPathsThatNameNoModel) {
  for (const std::string& bad : {std::string(""), std::string("/"), std::string("//"), Join("."), Join("./"),
                                 Join(".."), Join("a/.."), std::string("."), std::string("..")}) {
    auto t = OutputTarget::Check(bad, "", true);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  auto t = OutputTarget::Check(Join("out.mlpackage///"), "", false);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->path(), Join("out.mlpackage"));
}

TEST_F(OutputTargetTest, RefusesTheInputAndWhatHoldsOrIsInsideIt) {
  WritePackage(Join("in/model.mlpackage"), "weights");
  ASSERT_TRUE(WriteFileAtomically(Join("nn.mlmodel"), ModelFileBytes()).ok());
  const std::string input = Join("in/model.mlpackage");
  fs::create_symlink(Join("in"), Join("link"));
  ASSERT_EQ(::link(Join("nn.mlmodel").c_str(), Join("hard.mlmodel").c_str()), 0);
  struct Case {
    std::string output, input, words;
  } cases[] = {
      {input, input, "is the input model"},
      {input + "/", input, "is the input model"},
      {Join("in/../in/model.mlpackage"), input, "is the input model"},
      {Join("link/model.mlpackage"), input, "is the input model"},
      {input + "/Data/x.mlpackage", input, "inside the input model"},
      {Join("link/model.mlpackage/new.mlpackage"), input, "inside the input model"},
      {Join("in"), input, "contains the input model"},
      {scratch_.path(), input, "contains the input model"},
      {Join("hard.mlmodel"), Join("nn.mlmodel"), "is the input model"},
  };
  const auto before = Snapshot(scratch_.path());
  for (const Case& c : cases) {
    auto t = OutputTarget::Check(c.output, c.input, /*replace=*/true);
    ASSERT_FALSE(t.ok()) << c.output;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << c.output;
    EXPECT_TRUE(absl::StrContains(t.status().message(), c.words)) << c.output << ": " << t.status();
  }
  EXPECT_EQ(Snapshot(scratch_.path()), before);
}

TEST_F(OutputTargetTest, ReplacesOnlyModelsAndOnlyWhenAsked) {
  WritePackage(Join("pkg.mlpackage"), "old");
  ASSERT_TRUE(WriteFileAtomically(Join("nn.mlmodel"), ModelFileBytes()).ok());
  ASSERT_TRUE(MakeDirectories(Join("plain")).ok());
  ASSERT_TRUE(WriteFileAtomically(Join("plain/sentinel"), "keep").ok());
  ASSERT_TRUE(WriteFileAtomically(Join("notes.mlmodel"), "not a model, just text\n").ok());
  ASSERT_TRUE(MakeDirectories(Join("fake.mlpackage")).ok());
  ASSERT_TRUE(WriteFileAtomically(Join("fake.mlpackage/Manifest.json"), "{}").ok());
  fs::create_symlink(Join("pkg.mlpackage"), Join("link.mlpackage"));
  fs::create_symlink("loop", Join("loop"));

  for (const char* model : {"pkg.mlpackage", "nn.mlmodel"}) {
    EXPECT_EQ(OutputTarget::Check(Join(model), "", false).status().code(), absl::StatusCode::kAlreadyExists) << model;
    EXPECT_TRUE(OutputTarget::Check(Join(model), "", true).ok()) << model;
  }
  for (const char* other : {"plain", "notes.mlmodel", "fake.mlpackage", "link.mlpackage", "loop"}) {
    for (bool replace : {false, true}) {
      auto t = OutputTarget::Check(Join(other), "", replace);
      ASSERT_FALSE(t.ok()) << other;
      EXPECT_EQ(t.status().code(), absl::StatusCode::kAlreadyExists) << other;
      EXPECT_TRUE(absl::StrContains(t.status().message(), "not a Core ML model") ||
                  absl::StrContains(t.status().message(), "symbolic link"))
          << t.status();
    }
  }
}

TEST_F(OutputTargetTest, PathErrorsAreTheCallersInput) {
  fs::create_symlink("loop", Join("loop"));
  ASSERT_TRUE(WriteFileAtomically(Join("file"), "x").ok());
  const std::string long_name = Join(std::string(300, 'n') + ".mlpackage");
  std::string deep = scratch_.path();
  while (deep.size() < 4200) deep += "/" + std::string(100, 'd');
  for (const std::string& bad : {Join("loop/out.mlpackage"), Join("file/out.mlpackage"), long_name,
                                 deep + "/out.mlpackage", Join(std::string(300, 'p') + "/out.mlpackage")}) {
    auto t = OutputTarget::Check(bad, "", true);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << t.status();
  }
}

TEST_F(OutputTargetTest, StagesBesideAndCreatesParentsOnlyWhileNeeded) {
  ASSERT_TRUE(WriteFileAtomically(Join("sentinel"), "keep").ok());
  const auto before = Snapshot(scratch_.path());
  {
    auto t = OutputTarget::Check(Join("a/b/out.mlpackage"), "", false);
    ASSERT_TRUE(t.ok()) << t.status();
    auto staging = t->Stage();
    ASSERT_TRUE(staging.ok()) << staging.status();
    EXPECT_EQ(fs::path(*staging).parent_path(), fs::path(Join("a/b")));
    EXPECT_TRUE(absl::StrContains(*staging, "out.mlpackage.coremlz-staging-")) << *staging;
    ASSERT_TRUE(WriteFileAtomically(*staging + "/half", "written").ok());
    // Dropped without Commit: staging and the parents it made go away.
  }
  EXPECT_EQ(Snapshot(scratch_.path()), before);

  auto t = OutputTarget::Check(Join("a/b/out.mlpackage"), "", false);
  ASSERT_TRUE(t.ok());
  auto staging = t->Stage();
  ASSERT_TRUE(staging.ok());
  ASSERT_TRUE(WriteFileAtomically(*staging + "/Manifest.json", "m").ok());
  ASSERT_TRUE(t->Commit(*staging).ok());
  auto after = Snapshot(scratch_.path());
  EXPECT_EQ(after.size(), before.size() + 4) << "a, a/b, the package and its file, nothing else";
  EXPECT_EQ(after["a/b/out.mlpackage/Manifest.json"], "m");
  // Directories made by staging get the umask's permissions, not mkdtemp's 0700.
  struct stat st;
  ASSERT_EQ(::stat(Join("a/b/out.mlpackage").c_str(), &st), 0);
  const mode_t mask = ::umask(0);
  ::umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0777 & ~mask);
}

TEST_F(OutputTargetTest, CommitSwapsAModelAndLeavesNothingElse) {
  WritePackage(Join("pkg.mlpackage"), "old");
  ASSERT_TRUE(WriteFileAtomically(Join("nn.mlmodel"), ModelFileBytes()).ok());
  {
    auto t = OutputTarget::Check(Join("pkg.mlpackage"), "", true);
    ASSERT_TRUE(t.ok()) << t.status();
    auto staging = t->Stage();
    ASSERT_TRUE(staging.ok());
    WritePackage(*staging, "new");
    ASSERT_TRUE(t->Commit(*staging).ok());
  }
  {
    auto t = OutputTarget::Check(Join("nn.mlmodel"), "", true);
    ASSERT_TRUE(t.ok()) << t.status();
    auto staging = t->Stage();
    ASSERT_TRUE(staging.ok());
    ASSERT_TRUE(WriteFileAtomically(*staging + "/nn.mlmodel", "new model").ok());
    ASSERT_TRUE(t->Commit(*staging + "/nn.mlmodel").ok());
  }
  auto after = Snapshot(scratch_.path());
  EXPECT_EQ(after["pkg.mlpackage/Data/payload"], "new");
  EXPECT_EQ(after["nn.mlmodel"], "new model");
  EXPECT_EQ(after.size(), 5u) << "the package (dir, manifest, Data, payload) and the file, no staging or old copy";
}

TEST_F(OutputTargetTest, CommitRechecksWhatAppearedMeanwhile) {
  auto t = OutputTarget::Check(Join("out.mlpackage"), "", true);
  ASSERT_TRUE(t.ok());
  auto staging = t->Stage();
  ASSERT_TRUE(staging.ok());
  WritePackage(*staging, "new");
  // Someone else's directory appears at the destination while we work.
  ASSERT_TRUE(MakeDirectories(Join("out.mlpackage")).ok());
  ASSERT_TRUE(WriteFileAtomically(Join("out.mlpackage/theirs"), "keep").ok());
  absl::Status s = t->Commit(*staging);
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_EQ(*ReadFile(Join("out.mlpackage/theirs")), "keep");
}

// The output has the input's kind: a suffix of the other kind is refused
// before anything (naming both kinds and the name to use), in any case, and
// a model of the other kind is never replaced.
TEST_F(OutputTargetTest, TheOutputHasTheInputsKind) {
  WritePackage(Join("in.mlpackage"), "w");
  ASSERT_TRUE(WriteFileAtomically(Join("in.mlmodel"), ModelFileBytes()).ok());
  WritePackage(Join("old_package"), "old");
  ASSERT_TRUE(WriteFileAtomically(Join("old_file"), ModelFileBytes()).ok());
  const auto before = Snapshot(scratch_.path());
  struct Case {
    std::string input, output, use;
  } wrong_suffix[] = {
      {Join("in.mlpackage"), Join("x.mlmodel"), Join("x.mlpackage")},
      {Join("in.mlpackage"), Join("new/dir/X.MLModel"), Join("new/dir/X.mlpackage")},
      {Join("in.mlmodel"), Join("y.mlpackage"), Join("y.mlmodel")},
      {Join("in.mlmodel"), Join("y.mlpackage/"), Join("y.mlmodel")},
  };
  for (const Case& c : wrong_suffix) {
    for (bool replace : {false, true}) {
      auto t = OutputTarget::Check(c.output, c.input, replace);
      ASSERT_FALSE(t.ok()) << c.output;
      EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << t.status();
      const std::string m(t.status().message());
      EXPECT_TRUE(absl::StrContains(m, "an .mlpackage directory") && absl::StrContains(m, "a single-file .mlmodel")) << m;
      EXPECT_TRUE(absl::StrContains(m, "name the output " + c.use)) << m;
    }
  }
  for (const auto& [input, existing] : {std::pair<std::string, std::string>{"in.mlpackage", "old_file"},
                                        std::pair<std::string, std::string>{"in.mlmodel", "old_package"}}) {
    auto t = OutputTarget::Check(Join(existing), Join(input), /*replace=*/true);
    ASSERT_FALSE(t.ok()) << existing;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kAlreadyExists) << t.status();
    EXPECT_TRUE(absl::StrContains(t.status().message(), "does not replace one kind of model with the other")) << t.status();
  }
  EXPECT_EQ(Snapshot(scratch_.path()), before);
  // The right kind is fine, and any other name is left as the user chose it.
  EXPECT_TRUE(OutputTarget::Check(Join("o.mlpackage"), Join("in.mlpackage"), false).ok());
  EXPECT_TRUE(OutputTarget::Check(Join("o.mlmodel"), Join("in.mlmodel"), false).ok());
  EXPECT_TRUE(OutputTarget::Check(Join("o"), Join("in.mlmodel"), false).ok());
  EXPECT_TRUE(OutputTarget::Check(Join("old_package"), Join("in.mlpackage"), true).ok());
  EXPECT_TRUE(OutputTarget::Check(Join("old_file"), Join("in.mlmodel"), true).ok());
}

// What a server sent back is committed only if it is the kind promised.
TEST_F(OutputTargetTest, CommitRefusesTheOtherKind) {
  WritePackage(Join("in.mlpackage"), "w");
  ASSERT_TRUE(WriteFileAtomically(Join("in.mlmodel"), ModelFileBytes()).ok());
  {
    auto t = OutputTarget::Check(Join("out"), Join("in.mlpackage"), false);
    ASSERT_TRUE(t.ok()) << t.status();
    auto staging = t->Stage();
    ASSERT_TRUE(staging.ok());
    ASSERT_TRUE(WriteFileAtomically(*staging + "/model.mlmodel", ModelFileBytes()).ok());
    absl::Status s = t->Commit(*staging + "/model.mlmodel");
    EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  }
  {
    auto t = OutputTarget::Check(Join("out"), Join("in.mlmodel"), false);
    ASSERT_TRUE(t.ok()) << t.status();
    auto staging = t->Stage();
    ASSERT_TRUE(staging.ok());
    WritePackage(*staging, "new");
    absl::Status s = t->Commit(*staging);
    EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  }
  EXPECT_FALSE(PathExists(Join("out")));
  EXPECT_EQ(Snapshot(scratch_.path()).size(), 5u) << "the two inputs only, no staging left";
}

TEST_F(OutputTargetTest, SideFileNeverOverwritesAModel) {
  WritePackage(Join("in.mlpackage"), "w");
  ASSERT_TRUE(WriteFileAtomically(Join("nn.mlmodel"), ModelFileBytes()).ok());
  EXPECT_EQ(CheckSideFile(Join("nn.mlmodel"), Join("nn.mlmodel"), Join("out.mlmodel")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckSideFile(Join("out.mlmodel"), Join("nn.mlmodel"), Join("out.mlmodel")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckSideFile(Join("in.mlpackage/Manifest.json"), Join("in.mlpackage"), Join("o.mlpackage")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckSideFile(Join("o.mlpackage/r.json"), Join("in.mlpackage"), Join("o.mlpackage")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckSideFile(scratch_.path(), Join("in.mlpackage"), Join("o.mlpackage")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckSideFile(Join("missing/r.json"), Join("in.mlpackage"), Join("o.mlpackage")).code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(CheckSideFile(Join("r.json"), Join("in.mlpackage"), Join("o.mlpackage")).ok());
}

}  // namespace
}  // namespace coremlz::format
