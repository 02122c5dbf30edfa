// A plan's candidate builds and trials fanned out over real coremlz-worker
// processes: a worker builds only the candidate it is asked for, sends its
// package back, and computes exactly the trial result this process computes
// (the study is a function of the model and options); coremlzd + 2 workers
// plans to the embedded YAML and report; a worker SIGKILLed mid-plan changes
// nothing (its trials are rerun elsewhere); a worker that hangs on its trials
// is given up on after a bounded time and changes nothing either; a client's
// cancel ends the plan promptly and the workers' Trials calls with it; a plan
// the front has cached calls no worker.
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "api/transfer.h"
#include "common/file_util.h"
#include "coremlz/v1/worker.grpc.pb.h"
#include "gtest/gtest.h"
#include "plan/candidate.h"
#include "plan/planner.h"
#include "tests/testing/http_get.h"
#include "tests/testing/model_builder.h"
#include "tests/testing/process.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/test_env.h"

namespace coremlz::testing {
namespace {

std::string Cli() { return BinaryPath("clients/coremlz"); }
std::string Transformer() {
  return ModelsDir() + "/transformer_encoder_randinit/transformer_encoder_randinit.mlpackage";
}
constexpr char kCandidates[] = "palettize8,palettize4,palettize2,keep";

std::unique_ptr<Daemon> StartWorker(bool hangs = false) {
  // The test knob is read from the environment the worker inherits.
  if (hangs) setenv("COREMLZ_TEST_HANG_TRIALS", "1", 1);
  auto d = std::make_unique<Daemon>(std::vector<std::string>{BinaryPath("workers/coremlz-worker"), "--address",
                                                             "127.0.0.1:0", "--metrics-address", "127.0.0.1:0",
                                                             "--workers", "1"},
                                    "serving gRPC on port ");
  if (hangs) unsetenv("COREMLZ_TEST_HANG_TRIALS");
  EXPECT_TRUE(d->ok()) << d->log();
  return d;
}

// Every worker takes part in the builds (see service/test_await_workers.h):
// on a loaded machine a worker slow to get ready might otherwise find them all
// done, and then a test of what its hang or death changes tests nothing.
// `trials_on_workers`: the front runs no trial itself (the other knob there).
std::unique_ptr<Daemon> StartFront(const std::vector<const Daemon*>& workers, const std::string& cache_dir = "",
                                   bool trials_on_workers = false) {
  setenv("COREMLZ_TEST_AWAIT_WORKERS", "1", 1);
  if (trials_on_workers) setenv("COREMLZ_TEST_TRIALS_ON_WORKERS", "1", 1);
  std::string list;
  for (const Daemon* w : workers) absl::StrAppend(&list, list.empty() ? "" : ",", "127.0.0.1:", w->port());
  std::vector<std::string> argv = {BinaryPath("service/coremlzd"), "--address", "127.0.0.1:0", "--metrics-address",
                                   "127.0.0.1:0", "--workers", "1", "--remote-workers", list};
  if (!cache_dir.empty()) argv.insert(argv.end(), {"--cache-dir", cache_dir});
  auto d = std::make_unique<Daemon>(argv, "serving gRPC on port ");
  unsetenv("COREMLZ_TEST_AWAIT_WORKERS");
  unsetenv("COREMLZ_TEST_TRIALS_ON_WORKERS");
  EXPECT_TRUE(d->ok()) << d->log();
  return d;
}

double Metric(const Daemon& d, const std::string& series) {
  return MetricValue(HttpGet(d.NumberAfter("metrics on port "), "/metrics"), series);
}

const char kTrialsSent[] =
    "grpc_server_msg_sent_total{grpc_method=\"Trials\",grpc_service=\"coremlz.v1.Worker\",grpc_type=\"bidi_stream\"}";

std::string Slurp(const std::string& path) {
  auto s = ReadFile(path);
  EXPECT_TRUE(s.ok()) << path << ": " << s.status();
  return s.ok() ? *s : "";
}

std::string WithoutTimes(const std::string& json) {
  std::string out = std::regex_replace(json, std::regex(R"re("phase_seconds":\s*\{[^{}]*\},?)re"), "");
  return std::regex_replace(out, std::regex(R"re("seconds":\s*[-+0-9.eE]+,?)re"), "");
}

struct Outputs {
  std::string yaml, report;  // the report without its times
  std::string out;           // what the command printed
};

// `coremlz plan ARGS` writing its config and report into `dir`, embedded or
// (with `server`) through coremlzd.
Outputs PlanModel(const std::string& dir, const std::vector<std::string>& args, const std::string& server,
                  absl::Duration limit = absl::Seconds(300)) {
  std::vector<std::string> argv = {Cli(), "plan"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--config", dir + "/plan.yaml", "--report", dir + "/plan.json"});
  if (!server.empty()) argv.insert(argv.end(), {"--server", server});
  EXPECT_TRUE(MakeDirectories(dir).ok());
  auto r = RunProgram(argv, limit);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return {Slurp(dir + "/plan.yaml"), WithoutTimes(Slurp(dir + "/plan.json")), r.out};
}

// The transformer encoder at 5 bits.
Outputs Plan(const std::string& dir, int samples, const std::string& server = "",
             const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {Transformer(), "--bits", "5", "--candidates", kCandidates,
                                   "--samples", std::to_string(samples)};
  args.insert(args.end(), extra.begin(), extra.end());
  return PlanModel(dir, args, server, absl::Seconds(600));
}

v1::PlanHeader Header(int samples, std::string* root) {
  v1::PlanHeader h;
  auto files = api::DescribeModelFiles(Transformer(), root);
  EXPECT_TRUE(files.ok()) << files.status();
  for (const auto& f : *files) *h.add_files() = f;
  h.set_candidates(kCandidates);
  h.set_samples(samples);
  h.set_seed(7);
  return h;
}

TEST(PlanWorkers, AWorkerComputesTheSameTrialAsThisProcess) {
  auto worker = StartWorker();
  ASSERT_TRUE(worker->ok());
  std::string root;
  const v1::PlanHeader header = Header(2, &root);
  auto stub = v1::Worker::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", worker->port()),
                                                      grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
  auto stream = stub->Trials(&ctx);
  v1::TrialsRequest first;
  *first.mutable_header() = header;
  ASSERT_TRUE(stream->Write(first));
  const std::vector<v1::FileInfo> files(header.files().begin(), header.files().end());
  ASSERT_TRUE(api::SendFiles(root, files, 0, [&](v1::FileChunk&& c) {
                v1::TrialsRequest r;
                *r.mutable_chunk() = std::move(c);
                return stream->Write(r);
              }).ok());
  // This process's study, built as the worker builds its own.
  plan::PlanOptions options;
  options.candidates = *plan::ParseCandidates(kCandidates, 2048);
  options.study.samples = 2;
  options.study.seed = 7;
  ScratchDir work;
  auto study = plan::StudyForPlan(Transformer(), options, work.path());
  ASSERT_TRUE(study.ok()) << study.status();
  const plan::Trial trial{static_cast<int>((*study)->weights().size()) - 1, 1};  // the last weight, palettize4
  auto local = (*study)->Run(trial);
  ASSERT_TRUE(local.ok()) << local.status();

  // The worker builds only the candidate it is asked for, then runs the trial by name.
  v1::TrialsRequest b;
  b.mutable_build()->set_candidate(trial.candidate);
  b.mutable_build()->set_name("palettize4");
  ASSERT_TRUE(stream->Write(b));
  v1::TrialsRequest t;
  t.mutable_trial()->set_weight(trial.weight);
  t.mutable_trial()->set_candidate(trial.candidate);
  t.mutable_trial()->set_weight_name((*study)->weights()[trial.weight].name);
  t.mutable_trial()->set_candidate_name("palettize4");
  ASSERT_TRUE(stream->Write(t));
  stream->WritesDone();
  v1::TrialsResponse r;
  ASSERT_TRUE(stream->Read(&r));
  ASSERT_TRUE(r.has_ready());
  EXPECT_EQ(r.ready().candidates_size(), 4);
  EXPECT_EQ(r.ready().samples(), 2);
  ASSERT_TRUE(stream->Read(&r));
  ASSERT_TRUE(r.has_built());
  EXPECT_EQ(r.built().code(), 0) << r.built().message();
  uint64_t declared = 0, received = 0;
  for (const v1::FileInfo& f : r.built().files()) declared += f.size();
  EXPECT_GT(declared, 0u) << "the compressed package comes back";
  // The built report's row for the weight is the front's candidate bytes.
  bool row = false;
  for (const v1::WeightReport& w : r.built().weights()) {
    if (w.name() == (*study)->weights()[trial.weight].name) {
      row = true;
      EXPECT_EQ(w.bytes_after(), local->bytes);
    }
  }
  EXPECT_TRUE(row);
  while (received < declared) {
    ASSERT_TRUE(stream->Read(&r));
    ASSERT_TRUE(r.has_chunk());
    received += r.chunk().data().size();
  }
  EXPECT_EQ(received, declared);
  ASSERT_TRUE(stream->Read(&r));
  ASSERT_TRUE(r.has_done());
  EXPECT_EQ(r.done().trial().weight(), trial.weight);
  EXPECT_EQ(r.done().bytes(), local->bytes);
  const std::vector<double> remote(r.done().noise().begin(), r.done().noise().end());
  ASSERT_EQ(remote.size(), local->noise.size());
  ASSERT_FALSE(remote.empty());
  EXPECT_GT(remote[0], 0) << "palettize4 changes the outputs";
  EXPECT_EQ(remote, local->noise) << "bit for bit, in another process";
  EXPECT_FALSE(stream->Read(&r));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST(PlanWorkers, TwoWorkersPlanAsEmbedded) {
  ScratchDir scratch;
  constexpr int kSamples = 12;  // trials long enough for the workers to take some
  const Outputs embedded = Plan(scratch.Join("embedded"), kSamples);
  ASSERT_FALSE(embedded.yaml.empty());
  auto w1 = StartWorker();
  auto w2 = StartWorker();
  auto front = StartFront({w1.get(), w2.get()});
  ASSERT_TRUE(front->ok());
  const Outputs remote = Plan(scratch.Join("remote"), kSamples, absl::StrCat("127.0.0.1:", front->port()));
  EXPECT_EQ(remote.yaml, embedded.yaml);
  EXPECT_EQ(remote.report, embedded.report);
  // Both workers built the study (their ready message), and the workers
  // answered trials (how many each took depends on timing).
  const double w1_sent = Metric(*w1, kTrialsSent), w2_sent = Metric(*w2, kTrialsSent);
  EXPECT_GE(w1_sent, 1) << w1->log();
  EXPECT_GE(w2_sent, 1) << w2->log();
  EXPECT_GE(w1_sent + w2_sent, 3) << "at least one trial ran on a worker";
  EXPECT_EQ(Metric(*front, "coremlz_plan_trials_total{outcome=\"rerun\"}"), 0);
}

// A NeuralNetwork (.mlmodel): the workers build candidates as .mlmodel
// files and send them back as one file each; the plan is the embedded one.
TEST(PlanWorkers, ANeuralNetworkPlansAsEmbedded) {
  ScratchDir scratch;
  const std::string model = ModelsDir() + "/tiny_drawing_embedding/TinyDrawingEmbedding.mlmodel";
  auto plan = [&](const std::string& dir, const std::string& server) {
    return PlanModel(dir, {model, "--bits", "4", "--samples", "2", "--apply", dir + "/applied.mlmodel"}, server);
  };
  const Outputs embedded = plan(scratch.Join("embedded"), "");
  ASSERT_FALSE(embedded.yaml.empty());
  auto w1 = StartWorker();
  auto w2 = StartWorker();
  auto front = StartFront({w1.get(), w2.get()});
  ASSERT_TRUE(front->ok());
  const Outputs remote = plan(scratch.Join("remote"), absl::StrCat("127.0.0.1:", front->port()));
  EXPECT_EQ(remote.yaml, embedded.yaml);
  EXPECT_EQ(remote.report, embedded.report);
  EXPECT_EQ(Slurp(scratch.Join("remote/applied.mlmodel")), Slurp(scratch.Join("embedded/applied.mlmodel")));
  EXPECT_EQ(front->log().find("stopped"), std::string::npos) << front->log();
  EXPECT_EQ(Metric(*front, "coremlz_plan_trials_total{outcome=\"rerun\"}"), 0);
}

// A plan that re-admits a pruned candidate runs a second batch of trials
// after the workers' first: the same plan as embedded.
TEST(PlanWorkers, AReadmittingPlanPlansAsEmbedded) {
  ScratchDir scratch;
  const std::string model = scratch.Join("split.mlpackage");
  ASSERT_TRUE(WriteSplitScalePackage(model, 1e-3f).ok());
  auto plan = [&](const std::string& dir, const std::string& server) {
    Outputs o = PlanModel(
        dir, {model, "--bits", "8.5", "--candidates", "palettize8,palettize4,int8,keep", "--samples", "2"}, server);
    EXPECT_NE(o.out.find("(re-admitted int8:"), std::string::npos) << o.out;
    return o;
  };
  const Outputs embedded = plan(scratch.Join("embedded"), "");
  ASSERT_FALSE(embedded.yaml.empty());
  auto w1 = StartWorker();
  auto w2 = StartWorker();
  // The front runs no trial: the plan completes only if the workers ran
  // every trial, the re-admitted candidate's second batch included.
  auto front = StartFront({w1.get(), w2.get()}, "", /*trials_on_workers=*/true);
  ASSERT_TRUE(front->ok());
  const Outputs remote = plan(scratch.Join("remote"), absl::StrCat("127.0.0.1:", front->port()));
  EXPECT_EQ(remote.yaml, embedded.yaml);
  EXPECT_EQ(remote.report, embedded.report);
  EXPECT_EQ(front->log().find("stopped"), std::string::npos) << front->log();
  EXPECT_EQ(front->log().find("COREMLZ_TEST_TRIALS_ON_WORKERS"), std::string::npos) << front->log();
}

TEST(PlanWorkers, AWorkerKilledMidPlanChangesNothing) {
  ScratchDir scratch;
  constexpr int kSamples = 24;  // slow trials, so that the kill lands mid-plan
  const Outputs embedded = Plan(scratch.Join("embedded"), kSamples);
  ASSERT_FALSE(embedded.yaml.empty());
  auto w1 = StartWorker();
  auto w2 = StartWorker();
  auto front = StartFront({w1.get(), w2.get()});
  ASSERT_TRUE(front->ok());
  std::thread killer([&] {
    // Once w2 has built a candidate (its ready, build answer and a chunk
    // sent) and the trials are under way, it dies with that candidate's
    // trials outstanding.
    for (int i = 0; i < 1500 && Metric(*w2, kTrialsSent) < 3; ++i) absl::SleepFor(absl::Milliseconds(20));
    for (int i = 0; i < 3000 && Metric(*front, "coremlz_plan_trials_total{outcome=\"measured\"}") < 2; ++i) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    kill(w2->pid(), SIGKILL);
  });
  const Outputs remote = Plan(scratch.Join("remote"), kSamples, absl::StrCat("127.0.0.1:", front->port()));
  killer.join();
  EXPECT_EQ(remote.yaml, embedded.yaml);
  EXPECT_EQ(remote.report, embedded.report);
  // When the kill caught w2 with trials outstanding (the front says its
  // stream stopped), they were rerun elsewhere. (w2 may also have built no
  // candidate, or finished its trials, by then: timing decides.)
  const std::string w2_stopped = absl::StrCat("plan trials on worker 127.0.0.1:", w2->port(), " stopped");
  if (front->log().find(w2_stopped) != std::string::npos) {
    EXPECT_GE(Metric(*front, "coremlz_plan_trials_total{outcome=\"rerun\"}"), 1) << front->log();
  } else {
    std::printf("note: the kill did not catch w2 with trials outstanding\n%s", front->log().c_str());
  }
}

TEST(PlanWorkers, AHungWorkersTrialsRunElsewhere) {
  ScratchDir scratch;
  constexpr int kSamples = 12;
  const Outputs embedded = Plan(scratch.Join("embedded"), kSamples);
  ASSERT_FALSE(embedded.yaml.empty());
  // The worker builds candidates, accepts their trials and never answers them.
  auto hung = StartWorker(/*hangs=*/true);
  auto front = StartFront({hung.get()});
  ASSERT_TRUE(front->ok());
  const auto start = std::chrono::steady_clock::now();
  const Outputs remote = Plan(scratch.Join("remote"), kSamples, absl::StrCat("127.0.0.1:", front->port()));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(remote.yaml, embedded.yaml);
  EXPECT_EQ(remote.report, embedded.report);
  EXPECT_GE(Metric(*front, "coremlz_plan_trials_total{outcome=\"rerun\"}"), 1) << front->log();
  EXPECT_NE(front->log().find("did not answer its plan trials"), std::string::npos) << front->log();
  // The front gave up on the worker's call (it did not wait for the deadline).
  const std::string cancelled_trials =
      "grpc_server_handled_total{grpc_code=\"CANCELLED\",grpc_method=\"Trials\",grpc_service=\"coremlz.v1.Worker\","
      "grpc_type=\"bidi_stream\"}";
  EXPECT_EQ(Metric(*hung, cancelled_trials), 1) << hung->log();
  EXPECT_LT(seconds, 300);
}

// The result cache in front of the fan-out: a plan planned over a worker is
// stored, and the same plan again is served from the cache without calling
// the worker; --no-cache plans over the worker again, to the same outputs.
TEST(PlanWorkers, ACachedPlanCallsNoWorker) {
  ScratchDir scratch;
  constexpr int kSamples = 2;
  auto worker = StartWorker();
  auto front = StartFront({worker.get()}, scratch.Join("cache"));
  ASSERT_TRUE(front->ok());
  const std::string server = absl::StrCat("127.0.0.1:", front->port());
  const char kTrialsStarted[] =
      "grpc_server_started_total{grpc_method=\"Trials\",grpc_service=\"coremlz.v1.Worker\",grpc_type=\"bidi_stream\"}";
  const Outputs first = Plan(scratch.Join("first"), kSamples, server);
  ASSERT_FALSE(first.yaml.empty());
  EXPECT_EQ(Metric(*worker, kTrialsStarted), 1) << "the first plan fanned out";
  for (int i = 0; i < 500 && Metric(*front, "coremlz_cache_entries") < 1; ++i) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_EQ(Metric(*front, "coremlz_cache_entries"), 1) << front->log();

  const Outputs second = Plan(scratch.Join("second"), kSamples, server);
  EXPECT_EQ(second.yaml, first.yaml);
  EXPECT_EQ(second.report, first.report);
  EXPECT_EQ(Metric(*front, "coremlz_cache_requests_total{outcome=\"hit\"}"), 1);
  EXPECT_EQ(Metric(*worker, kTrialsStarted), 1) << "a hit calls no worker";

  const Outputs third = Plan(scratch.Join("third"), kSamples, server, {"--no-cache"});
  EXPECT_EQ(third.yaml, first.yaml);
  EXPECT_EQ(third.report, first.report);
  EXPECT_EQ(Metric(*worker, kTrialsStarted), 2) << "--no-cache plans over the worker again";
}

TEST(PlanWorkers, CancelStopsThePlanAndTheWorkersTrials) {
  auto w1 = StartWorker();
  auto w2 = StartWorker();
  auto front = StartFront({w1.get(), w2.get()});
  ASSERT_TRUE(front->ok());
  std::string root;
  v1::PlanHeader header = Header(64, &root);
  header.mutable_target()->set_kind(v1::PlanTarget::BITS);
  header.mutable_target()->set_value(5);
  auto stub = v1::Compressor::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", front->port()),
                                                          grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  auto stream = stub->Plan(&ctx);
  v1::PlanRequest first;
  *first.mutable_header() = header;
  ASSERT_TRUE(stream->Write(first));
  const std::vector<v1::FileInfo> files(header.files().begin(), header.files().end());
  ASSERT_TRUE(api::SendFiles(root, files, 0, [&](v1::FileChunk&& c) {
                v1::PlanRequest r;
                *r.mutable_chunk() = std::move(c);
                return stream->Write(r);
              }).ok());
  stream->WritesDone();
  // Wait for the trials to be under way on the workers.
  v1::PlanResponse r;
  bool trials = false;
  while (!trials && stream->Read(&r)) {
    trials = r.has_progress() && r.progress().phase() == v1::PlanProgress::TRIALS && r.progress().trials_done() > 0;
  }
  ASSERT_TRUE(trials);
  const auto cancelled_at = std::chrono::steady_clock::now();
  ctx.TryCancel();
  while (stream->Read(&r)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The front ended the plan, and every worker's Trials call ended: cancelled,
  // or finished - a worker runs only trials of candidates it built, so one
  // that built none, or whose share was done before the cancel (both can
  // be), ends its call OK. Trials a worker still owed when the plan stopped
  // are put back (counted as reruns), and then a worker's call must have
  // been cancelled.
  auto handled = [](const char* code) {
    return absl::StrCat("grpc_server_handled_total{grpc_code=\"", code,
                        "\",grpc_method=\"Trials\",grpc_service=\"coremlz.v1.Worker\",grpc_type=\"bidi_stream\"}");
  };
  bool stopped = false;
  double c1 = 0, c2 = 0, reruns = 0;
  for (int i = 0; i < 200 && !stopped; ++i) {
    c1 = Metric(*w1, handled("CANCELLED"));
    c2 = Metric(*w2, handled("CANCELLED"));
    reruns = Metric(*front, "coremlz_plan_trials_total{outcome=\"rerun\"}");
    stopped = Metric(*front, "coremlz_plans_total{outcome=\"cancelled\"}") == 1 && (reruns <= 0 || c1 + c2 >= 1) &&
              c1 + Metric(*w1, handled("OK")) == 1 && c2 + Metric(*w2, handled("OK")) == 1;
    if (!stopped) absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(stopped) << "cancelled calls " << c1 << " + " << c2 << ", reruns " << reruns << "\n"
                       << front->log() << w1->log() << w2->log();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - cancelled_at).count(), 10);
}

}  // namespace
}  // namespace coremlz::testing
