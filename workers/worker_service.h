// The internal Worker service of coremlz-worker: a front's remote worker
// pool sends it jobs, which run exactly as Compressor.Compress calls do
// (the same reactor, admission and limits), and a front's Plan calls send
// it trials (workers/trials_reactor.h).
#ifndef COREMLZ_WORKERS_WORKER_SERVICE_H_
#define COREMLZ_WORKERS_WORKER_SERVICE_H_

#include "api/compress_reactor.h"
#include "api/compressor_service.h"
#include "coremlz/v1/worker.grpc.pb.h"
#include "workers/trials_reactor.h"

namespace coremlz::workers {

class WorkerService final : public v1::Worker::CallbackService {
 public:
  explicit WorkerService(api::CompressorService* jobs) : jobs_(jobs) {}
  grpc::ServerBidiReactor<v1::CompressRequest, v1::CompressResponse>* Run(grpc::CallbackServerContext* context) override {
    return api::NewCompressReactor(jobs_, context);
  }
  grpc::ServerBidiReactor<v1::TrialsRequest, v1::TrialsResponse>* Trials(grpc::CallbackServerContext* context) override {
    return NewTrialsReactor(jobs_, context);
  }

 private:
  api::CompressorService* jobs_;
};

}  // namespace coremlz::workers

#endif  // COREMLZ_WORKERS_WORKER_SERVICE_H_
