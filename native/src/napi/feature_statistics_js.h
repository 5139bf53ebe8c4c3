// The feature statistics of ops/feature_statistics.h for JS
// (src/metrics/statistics.ts): each copies its arrays, runs on a torch thread
// and returns a promise, so that seconds of float64 linear algebra never hold
// up the event loop. The last argument is an options object:
// { signal?: AbortSignal, blockRows?: number, ... }; an abort rejects at
// once (ERR_ABORTED) and stops the computation at its next block.
#pragma once

#include <napi.h>

namespace tg {

// featureMoments(set: { data, count, dim }, { name?, signal? })
//   -> Promise<{ mean: Float64Array, cov: Float64Array }>
Napi::Value FeatureMomentsJs(const Napi::CallbackInfo& info);

// frechetDistance(a: { mean, cov, dim }, b: { mean, cov, dim }, { signal? })
//   -> Promise<{ distance, meanTerm, traceCov1, traceCov2, traceSqrtProduct, method }>
Napi::Value FrechetDistanceJs(const Napi::CallbackInfo& info);

// squaredDistances(a: { data, count, dim }, b, { signal? }) -> Promise<Float64Array>
Napi::Value SquaredDistancesJs(const Napi::CallbackInfo& info);

// kthNeighbourRadii(set, k, { blockRows?, signal? }) -> Promise<Float64Array>
Napi::Value KthNeighbourRadiiJs(const Napi::CallbackInfo& info);

// precisionRecall(real, fake, k, { realRadii?, blockRows?, signal? })
//   -> Promise<{ precise, recalled, realRadii: Float64Array, fakeRadii: Float64Array }>
Napi::Value PrecisionRecallJs(const Napi::CallbackInfo& info);

}  // namespace tg
