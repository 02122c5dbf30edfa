// The Plan call: `coremlz plan` on the server. The same upload, admission,
// token, limits, header/idle timeouts, memory budget and job directory as
// Compress; the plan (plan::MakePlan) then runs as a job of the worker pool,
// its trials on the job's threads or fanned out (api/plan_fan_out.h), with
// progress streamed. Then the outputs as the embedded command writes them
// and, when asked, the compressed model, streamed as Compress streams it.
// Cancelling the call or passing its deadline stops the study, the trials
// and the rounds.
//
// plan_reactor.cc is ~500 lines for compress_reactor.h's reason: one state
// machine under one mutex. Its write side (outbox, pump, write-stall check)
// still mirrors Compress's; a shared piece for it is the next step.
#ifndef COREMLZ_API_PLAN_REACTOR_H_
#define COREMLZ_API_PLAN_REACTOR_H_

#include "api/compressor_service.h"
#include "coremlz/v1/compressor.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace coremlz::api {

// The reactor deletes itself when the call is done.
grpc::ServerBidiReactor<v1::PlanRequest, v1::PlanResponse>* NewPlanReactor(CompressorService* service,
                                                                             grpc::CallbackServerContext* context);

}  // namespace coremlz::api

#endif  // COREMLZ_API_PLAN_REACTOR_H_
