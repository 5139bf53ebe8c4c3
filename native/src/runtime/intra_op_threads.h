// The intra-op (OpenMP) thread count of one job, on the torch thread that
// runs it.
//
// libtorch's intra-op count (at::set_num_threads) is one number for the
// process, but OpenMP keeps the count per calling thread. When a batch is
// split into chunks that run at once on several torch threads, each chunk
// asking for every core oversubscribes the machine (on 2 cores, two chunks
// ran four OpenMP threads, and sampling was 10-20 % slower than with one
// each: docs/benchmarks.md). So a job may run with fewer threads than the
// process-wide count, set here for its duration.
//
// Safe for oneDNN's convolutions: its primitive cache keys primitives by the
// thread count they were created for. Where libtorch has no OpenMP, this
// does nothing.
#pragma once

namespace tg {

class IntraOpThreadsScope {
 public:
  // threads <= 0: leave the thread's count as it is.
  explicit IntraOpThreadsScope(int threads);
  ~IntraOpThreadsScope();
  IntraOpThreadsScope(const IntraOpThreadsScope&) = delete;
  IntraOpThreadsScope& operator=(const IntraOpThreadsScope&) = delete;

 private:
  int previous_ = 0;  // 0: nothing to restore
};

}  // namespace tg
