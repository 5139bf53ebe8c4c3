// Float64 statistics of feature matrices for sample-quality metrics: the
// Gaussian moments and the Fréchet distance of FID (Heusel et al. 2017), and
// the k-nearest-neighbour manifolds of improved precision and recall
// (Kynkäänniemi et al. 2019). Plain libtorch on the calling thread; the addon
// runs them on torch threads (napi/feature_statistics_js.cpp).
//
// Float64 throughout, whatever the input dtype: FD subtracts traces of
// similar size (a cancellation), and precision/recall compare distances
// with radii that are themselves distances, so float32 round-off would show
// in both.
#pragma once

#include <ATen/ATen.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

namespace tg {

// Set by another thread to ask a long computation to stop; read between
// blocks, which then throw ERR_ABORTED. May be null.
using StopFlag = std::atomic<bool>;

struct GaussianMoments {
  at::Tensor mean;  // [d], float64
  at::Tensor cov;   // [d, d], float64, unbiased (divides by n - 1), as numpy.cov
};

// Mean and covariance of `features` [n, d] (any floating dtype). `what`
// names the set in errors: ERR_INVALID_ARGUMENT for fewer than two rows or a
// row holding NaN or infinity.
GaussianMoments FeatureMoments(const at::Tensor& features, const std::string& what, const StopFlag* stop);

struct FrechetTerms {
  double distance = 0;          // meanTerm + traceCov1 + traceCov2 - 2 traceSqrtProduct
  double meanTerm = 0;          // |mu1 - mu2|^2
  double traceCov1 = 0;
  double traceCov2 = 0;
  double traceSqrtProduct = 0;  // tr (S1 S2)^(1/2)
  // How tr (S1 S2)^(1/2) was taken: "cholesky" (S1 or S2 factored) or
  // "eigh" (both singular to working precision; S1^(1/2) from eigh).
  std::string method;
};

// Runs the part of a computation that is matrix factorisations and products.
// The caller may run it with more BLAS threads than a job usually gets (the
// Node binding passes runtime/blas_gate.h's WithEveryBlasThread); by default
// it just runs.
using BlasRunner = std::function<void(const std::function<void()>&)>;

// The Fréchet distance between N(mean1, cov1) and N(mean2, cov2). The
// covariances must be symmetric (FeatureMoments' are, exactly).
// ERR_INVALID_ARGUMENT for mismatched shapes or non-finite values.
FrechetTerms FrechetDistance(const at::Tensor& mean1, const at::Tensor& cov1, const at::Tensor& mean2,
                             const at::Tensor& cov2, const BlasRunner& runBlas = nullptr);

// Rows per block of a [rows, others] distance block: about 64 MB of float64.
int64_t DefaultBlockRows(int64_t others);

// Squared Euclidean distances between the rows of a [na, d] and b [nb, d]:
// [na, nb] in float64. The whole matrix: for sets small enough to hold it.
at::Tensor SquaredDistances(const at::Tensor& a, const at::Tensor& b);

// The squared distance from each row of `set` [n, d] to its k-th nearest
// other row (the radius of its k-NN ball): [n] float64, from blocks of
// `blockRows` rows (<= 0: an eighth of the set, at most DefaultBlockRows).
// 1 <= k < n.
at::Tensor KthNeighbourRadii(const at::Tensor& set, int64_t k, int64_t blockRows, const StopFlag* stop);

struct ManifoldCounts {
  int64_t precise = 0;   // fake rows inside some real row's k-NN ball
  int64_t recalled = 0;  // real rows inside some fake row's k-NN ball
  at::Tensor realRadii;  // [n real], float64
  at::Tensor fakeRadii;  // [n fake], float64
};

// Improved precision and recall: a ball includes its boundary, as the
// paper's code. `realRadii`: the real set's radii for this k when known
// (a fixed reference set), else undefined and computed. Memory stays within
// the inputs in float64 plus blocks of `blockRows` rows.
ManifoldCounts PrecisionRecall(const at::Tensor& real, const at::Tensor& fake, int64_t k, const at::Tensor& realRadii,
                               int64_t blockRows, const StopFlag* stop);

}  // namespace tg
