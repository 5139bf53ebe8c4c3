#include "ops/feature_statistics.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <tuple>
#include <vector>

#include "common/errors.h"

namespace tg {

namespace {

// About 64 MB of float64 per block: large enough that each block is one
// efficient matrix multiply, small enough that 50,000 x 50,000 distances
// (20 GB at once) never exist.
constexpr int64_t kBlockElements = int64_t{8} << 20;

void CheckStop(const StopFlag* stop) {
  if (stop != nullptr && stop->load(std::memory_order_relaxed)) {
    throw Error(code::kAborted, "the feature statistics were stopped through their AbortSignal.");
  }
}

[[noreturn]] void Invalid(const std::string& message) { throw Error(code::kInvalidArgument, message); }

// Names the first row holding NaN or infinity: a bad feature vector usually
// comes from one bad image, and its index is what the caller can look up.
// One sum first, since it is finite exactly when every value is (NaN and
// infinities propagate) unless finite values overflow it, which only sends
// it on to the row search; the search makes a boolean copy of the input, as
// slow as the statistics themselves for a 2048 x 2048 covariance.
void RequireFinite(const at::Tensor& x, const std::string& what) {
  if (std::isfinite(x.sum().item<double>())) return;
  at::Tensor rowFinite = x.dim() == 2 ? at::isfinite(x).all(1) : at::isfinite(x).reshape({1, -1}).all(1);
  if (rowFinite.all().item<bool>()) return;
  int64_t row = at::logical_not(rowFinite).nonzero()[0][0].item<int64_t>();
  Invalid(what + (x.dim() == 2 ? ": row " + std::to_string(row) : std::string()) +
          " holds NaN or infinity. Fix: drop or recompute the vectors that are not finite (a failed image, an "
          "overflow in float16) before computing statistics.");
}

// `features` as a finite, contiguous float64 [n, d] matrix (a copy only
// where the dtype or layout differ).
at::Tensor Float64Matrix(const at::Tensor& features, const std::string& what) {
  if (features.dim() != 2 || !at::isFloatingType(features.scalar_type()) || features.size(1) < 1) {
    Invalid(what + ": needs a floating [count, dim] matrix with dim >= 1; got " + c10::str(features.sizes()) + ".");
  }
  at::Tensor x = features.to(at::kCPU, at::kDouble).contiguous();
  RequireFinite(x, what);
  return x;
}

at::Tensor Float64Vector(const at::Tensor& vector, int64_t dim, const std::string& what) {
  if (vector.dim() != 1 || vector.size(0) != dim) {
    Invalid(what + ": needs " + std::to_string(dim) + " values; got shape " + c10::str(vector.sizes()) +
            ". Fix: pass the mean and covariance of the same features.");
  }
  at::Tensor v = vector.to(at::kCPU, at::kDouble).contiguous();
  RequireFinite(v, what);
  return v;
}

// A covariance as a finite float64 matrix. Read as symmetric, not made so:
// the Cholesky factor reads S1's lower triangle and S2 multiplies in full, so
// an asymmetry at round-off (a BLAS's order of summation) moves the result
// at round-off only, and (S + Sᵀ)/2 (a transposed pass over 32 MB at
// n = 2048) cost about as much as the factor.
at::Tensor CovarianceMatrix(const at::Tensor& cov, int64_t dim, const std::string& what) {
  if (cov.dim() != 2 || cov.size(0) != dim || cov.size(1) != dim) {
    Invalid(what + ": needs a " + std::to_string(dim) + " x " + std::to_string(dim) + " matrix; got shape " +
            c10::str(cov.sizes()) + ". Fix: pass the mean and covariance of the same features.");
  }
  at::Tensor s = cov.to(at::kCPU, at::kDouble).contiguous();
  RequireFinite(s, what);
  return s;
}

// The lower Cholesky factor of `s`, or an undefined tensor where a pivot is
// zero or negative (s singular to working precision, or not PSD).
at::Tensor CholeskyOrNone(const at::Tensor& s) {
  at::Tensor factor, info;
  std::tie(factor, info) = at::linalg_cholesky_ex(s);
  return info.item<int64_t>() == 0 ? factor : at::Tensor();
}

// Columns per block of the triangular products below: wide enough for
// efficient matrix multiplies, narrow enough that the zeros skipped are most
// of L's upper triangle.
constexpr int64_t kTriangleBlock = 256;

// Runs body(block) for blocks 0 .. count - 1 on the job's intra-op threads,
// one matrix product each (each product on one BLAS thread, as the job has;
// the results do not depend on how blocks are shared out). The blocks below
// cost more at one end than at the other, so they are dealt in pairs from
// both ends (0, count - 1, 1, count - 2, ...), which evens out the halves
// parallel_for gives two threads.
void ForEachBlock(int64_t count, const std::function<void(int64_t)>& body) {
  std::vector<int64_t> order;
  for (int64_t low = 0, high = count - 1; low <= high; ++low, --high) {
    order.push_back(low);
    if (high != low) order.push_back(high);
  }
  at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) body(order[i]);
  });
}

int64_t BlockCount(int64_t n) { return (n + kTriangleBlock - 1) / kTriangleBlock; }

// The lower triangle of Lᵀ S L for a lower-triangular L (the eigensolver
// reads no more; the upper part is left at zero). In blocks that skip L's
// zero upper part: T = S L needs, for the columns of L from j on, only S's
// columns and L's rows from j on; Lᵀ T row block i only rows of T from i on
// and columns up to the block's end. About 4n³/3 flops instead of the 4n³ of
// two full products, and the same sums (the skipped terms are exact zeros).
at::Tensor LowerCongruence(const at::Tensor& lower, const at::Tensor& s) {
  const int64_t n = s.size(0);
  at::Tensor product = at::empty_like(s);
  ForEachBlock(BlockCount(n), [&](int64_t block) {
    const int64_t j = block * kTriangleBlock;
    const int64_t width = std::min(kTriangleBlock, n - j);
    at::Tensor out = product.narrow(1, j, width);
    at::mm_out(out, s.narrow(1, j, n - j), lower.narrow(0, j, n - j).narrow(1, j, width));
  });
  at::Tensor result = at::zeros_like(s);
  ForEachBlock(BlockCount(n), [&](int64_t block) {
    const int64_t i = block * kTriangleBlock;
    const int64_t height = std::min(kTriangleBlock, n - i);
    at::Tensor out = result.narrow(0, i, height).narrow(1, 0, i + height);
    at::mm_out(out, lower.narrow(0, i, n - i).narrow(1, i, height).t(), product.narrow(0, i, n - i).narrow(1, 0, i + height));
  });
  return result;
}

// Adds Cᵀ C to the lower triangle of `gram` (the upper part is left as it
// was): row blocks of the result stop at the diagonal, half the flops of the
// full product, as a BLAS's syrk (which libtorch does not expose) would.
void AddLowerGram(at::Tensor& gram, const at::Tensor& c) {
  const int64_t d = gram.size(0);
  ForEachBlock(BlockCount(d), [&](int64_t block) {
    const int64_t i = block * kTriangleBlock;
    const int64_t height = std::min(kTriangleBlock, d - i);
    gram.narrow(0, i, height).narrow(1, 0, i + height).addmm_(c.narrow(1, i, height).t(), c.narrow(1, 0, i + height));
  });
}

// The symmetric square root of a symmetric PSD matrix (eigenvalues below
// zero, round-off, clamped to 0).
at::Tensor SqrtPsd(const at::Tensor& s) {
  at::Tensor values, vectors;
  std::tie(values, vectors) = at::linalg_eigh(s);
  return at::matmul(vectors * values.clamp_min(0).sqrt().unsqueeze(0), vectors.t());
}

// tr (S1 S2)^(1/2): the sum of the square roots of the eigenvalues of S1 S2,
// taken from a symmetric PSD matrix with the same eigenvalues.
//
// Why Cholesky first: with S1 = L Lᵀ, Lᵀ S2 L is similar to S1 S2 (it is
// L⁻¹ (S1 S2) L) and costs n³/3 for the factor plus 4n³/3 for the two
// triangular products (LowerCongruence). S1^(1/2) S2 S1^(1/2) needs S1's
// eigenvectors first: at n = 2048 on one core, eigh with vectors alone took
// 3.6 s where the factor and the products took 0.8 s. Only the eigenvalues
// of the result are needed, and eigvalsh finds them without vectors (the
// step that dominates, 1.2 s there). It is as accurate: Cholesky is backward
// stable whenever it completes, however ill-conditioned S1 is (L Lᵀ = S1 + E
// with |E| of order n·eps·|S1|, as the rows of L are bounded by the diagonal
// of S1), so the eigenvalues are those of S1 S2 up to round-off of S1's
// size, as with a square root. Only a zero or negative pivot (S1 singular to
// working precision, say fewer samples than features) stops it; then S2 is
// factored instead (S2 S1 has the same eigenvalues), and when both are
// singular S1^(1/2) comes from eigh.
double TraceSqrtProduct(const at::Tensor& s1, const at::Tensor& s2, std::string* method) {
  at::Tensor similar;
  *method = "cholesky";
  at::Tensor factor = CholeskyOrNone(s1);
  if (factor.defined()) {
    similar = LowerCongruence(factor, s2);
  } else if ((factor = CholeskyOrNone(s2)).defined()) {
    similar = LowerCongruence(factor, s1);
  } else {
    *method = "eigh";
    at::Tensor root = SqrtPsd(s1);
    similar = at::matmul(root, at::matmul(s2, root));
  }
  return at::linalg_eigvalsh(similar).clamp_min(0).sqrt().sum().item<double>();
}

// Centred rows and their squared norms: distances from the matrix form
// |x|² + |y|² - 2 x·y lose digits to the size of |x|², so both sets are
// shifted by one common point (distances do not change) to bring |x|² down
// to the spread of the features rather than their offset.
struct Centred {
  at::Tensor rows;
  at::Tensor norms;
};

Centred CentreOn(const at::Tensor& x, const at::Tensor& centre) {
  at::Tensor rows = (x - centre.unsqueeze(0)).contiguous();
  return {rows, rows.square().sum(1)};
}

// Squared distances from `rows` [b, d] to every row of `all` [n, d], clamped
// at 0 (round-off can take a near-zero distance below it).
at::Tensor DistanceBlock(const at::Tensor& rows, const at::Tensor& rowNorms, const Centred& all) {
  at::Tensor base = rowNorms.unsqueeze(1) + all.norms.unsqueeze(0);
  return at::addmm(base, rows, all.rows.t(), /*beta=*/1, /*alpha=*/-2).clamp_min_(0);
}

int64_t BlockRows(int64_t requested, int64_t others) { return requested > 0 ? requested : DefaultBlockRows(others); }

void RequireK(int64_t k, int64_t count, const std::string& what) {
  if (k < 1 || k >= count) {
    Invalid(what + ": k = " + std::to_string(k) + " with " + std::to_string(count) +
            " vectors; the k-NN radii need 1 <= k < count. Fix: pass more vectors or a smaller k.");
  }
}

// Merges `candidates` [m, c] into `nearest` [m, k] (a view; each row its k
// smallest distances so far, ascending).
void KeepSmallest(at::Tensor nearest, const at::Tensor& candidates, int64_t k) {
  const int64_t take = std::min(k, candidates.size(1));
  at::Tensor best = std::get<0>(at::topk(candidates, take, /*dim=*/1, /*largest=*/false, /*sorted=*/false));
  nearest.copy_(std::get<0>(at::topk(at::cat({nearest, best}, 1), k, 1, /*largest=*/false, /*sorted=*/true)));
}

// KthNeighbourRadii on a float64 matrix already checked, each pair of rows
// measured once: row block I against the rows from I on gives candidates to
// I's rows (along the block's rows) and to the later rows (down its
// columns), and every row keeps its k nearest so far. Half the flops of a
// pass over every pair in each direction, where there are several blocks;
// hence blocks of at most an eighth of the set (56 % of the flops).
at::Tensor Radii(const at::Tensor& x, int64_t k, int64_t blockRows, const StopFlag* stop) {
  const int64_t n = x.size(0);
  const Centred set = CentreOn(x, x.mean(0));
  const int64_t block = blockRows > 0 ? blockRows : std::min(DefaultBlockRows(n), std::max<int64_t>(1, (n + 7) / 8));
  at::Tensor nearest = at::full({n, k}, std::numeric_limits<double>::infinity(), x.options());
  for (int64_t start = 0; start < n; start += block) {
    CheckStop(stop);
    const int64_t length = std::min(block, n - start);
    const int64_t after = n - start - length;
    const Centred later{set.rows.narrow(0, start, n - start), set.norms.narrow(0, start, n - start)};
    at::Tensor d = DistanceBlock(set.rows.narrow(0, start, length), set.norms.narrow(0, start, length), later);
    // Column i of the block is its row i: a point is not its own neighbour.
    d.diagonal(0).fill_(std::numeric_limits<double>::infinity());
    KeepSmallest(nearest.narrow(0, start, length), d, k);
    if (after > 0) KeepSmallest(nearest.narrow(0, start + length, after), d.narrow(1, length, after).t(), k);
  }
  return nearest.select(1, k - 1).contiguous();
}

}  // namespace

GaussianMoments FeatureMoments(const at::Tensor& features, const std::string& what, const StopFlag* stop) {
  at::Tensor x = Float64Matrix(features, what);
  const int64_t n = x.size(0);
  const int64_t d = x.size(1);
  if (n < 2) {
    Invalid(what + ": " + std::to_string(n) + " feature vector(s); a covariance needs at least two. Fix: pass more vectors.");
  }
  at::Tensor mean = x.mean(0);
  at::Tensor cov = at::zeros({d, d}, x.options());
  // Centred in blocks of rows: a centred copy of 50,000 x 2048 features would be 800 MB.
  const int64_t block = std::max<int64_t>(1, kBlockElements / d);
  for (int64_t start = 0; start < n; start += block) {
    CheckStop(stop);
    AddLowerGram(cov, x.narrow(0, start, std::min(block, n - start)) - mean.unsqueeze(0));
  }
  cov.div_(static_cast<double>(n - 1));
  // The upper triangle mirrors the lower: symmetric exactly, as the solvers expect.
  return {mean, (at::tril(cov) + at::tril(cov, -1).t()).contiguous()};
}

FrechetTerms FrechetDistance(const at::Tensor& mean1, const at::Tensor& cov1, const at::Tensor& mean2,
                             const at::Tensor& cov2, const BlasRunner& runBlas) {
  const int64_t d = mean1.dim() == 1 ? mean1.size(0) : -1;
  if (d < 1) Invalid("the first mean: needs a vector of dim >= 1 values; got shape " + c10::str(mean1.sizes()) + ".");
  at::Tensor m1 = Float64Vector(mean1, d, "the first mean");
  at::Tensor m2 = Float64Vector(mean2, d, "the second mean (its features are not " + std::to_string(d) + "-d?)");
  at::Tensor s1 = CovarianceMatrix(cov1, d, "the first covariance");
  at::Tensor s2 = CovarianceMatrix(cov2, d, "the second covariance");
  FrechetTerms terms;
  terms.meanTerm = (m1 - m2).square().sum().item<double>();
  terms.traceCov1 = s1.trace().item<double>();
  terms.traceCov2 = s2.trace().item<double>();
  // The factor, the products and the eigensolver are the whole cost: the
  // caller may give them every BLAS thread.
  const auto trace = [&] { terms.traceSqrtProduct = TraceSqrtProduct(s1, s2, &terms.method); };
  if (runBlas) {
    runBlas(trace);
  } else {
    trace();
  }
  terms.distance = terms.meanTerm + terms.traceCov1 + terms.traceCov2 - 2 * terms.traceSqrtProduct;
  return terms;
}

int64_t DefaultBlockRows(int64_t others) { return std::max<int64_t>(1, kBlockElements / std::max<int64_t>(1, others)); }

at::Tensor SquaredDistances(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor x = Float64Matrix(a, "the first set");
  at::Tensor y = Float64Matrix(b, "the second set");
  if (x.size(1) != y.size(1)) {
    Invalid("the sets have " + std::to_string(x.size(1)) + "-d and " + std::to_string(y.size(1)) +
            "-d vectors. Fix: compare features of the same width.");
  }
  at::Tensor centre = x.size(0) > 0 ? x.mean(0) : at::zeros({x.size(1)}, x.options());
  Centred left = CentreOn(x, centre);
  return DistanceBlock(left.rows, left.norms, CentreOn(y, centre));
}

at::Tensor KthNeighbourRadii(const at::Tensor& set, int64_t k, int64_t blockRows, const StopFlag* stop) {
  at::Tensor x = Float64Matrix(set, "the set");
  RequireK(k, x.size(0), "the set");
  return Radii(x, k, blockRows, stop);
}

ManifoldCounts PrecisionRecall(const at::Tensor& real, const at::Tensor& fake, int64_t k, const at::Tensor& realRadii,
                               int64_t blockRows, const StopFlag* stop) {
  at::Tensor r = Float64Matrix(real, "the real set");
  at::Tensor f = Float64Matrix(fake, "the generated set");
  if (r.size(1) != f.size(1)) {
    Invalid("the real vectors are " + std::to_string(r.size(1)) + "-d and the generated " + std::to_string(f.size(1)) +
            "-d. Fix: take both from the same feature extractor.");
  }
  RequireK(k, r.size(0), "the real set");
  RequireK(k, f.size(0), "the generated set");
  ManifoldCounts counts;
  if (realRadii.defined()) {
    if (realRadii.dim() != 1 || realRadii.size(0) != r.size(0)) {
      Invalid("realRadii: " + c10::str(realRadii.sizes()) + " for " + std::to_string(r.size(0)) +
              " real vectors. Fix: pass the radii computed for this real set and k, or none.");
    }
    counts.realRadii = realRadii.to(at::kCPU, at::kDouble).contiguous();
    RequireFinite(counts.realRadii, "realRadii");
  } else {
    counts.realRadii = Radii(r, k, blockRows, stop);
  }
  counts.fakeRadii = Radii(f, k, blockRows, stop);
  const Centred reals = CentreOn(r, r.mean(0));
  const Centred fakes = CentreOn(f, r.mean(0));
  const int64_t n = f.size(0);
  const int64_t block = BlockRows(blockRows, r.size(0));
  at::Tensor recalled = at::zeros({r.size(0)}, at::kBool);
  for (int64_t start = 0; start < n; start += block) {
    CheckStop(stop);
    const int64_t length = std::min(block, n - start);
    at::Tensor d = DistanceBlock(fakes.rows.narrow(0, start, length), fakes.norms.narrow(0, start, length), reals);
    counts.precise += at::le(d, counts.realRadii.unsqueeze(0)).any(1).sum().item<int64_t>();
    recalled.logical_or_(at::le(d, counts.fakeRadii.narrow(0, start, length).unsqueeze(1)).any(0));
  }
  counts.recalled = recalled.sum().item<int64_t>();
  return counts;
}

}  // namespace tg
