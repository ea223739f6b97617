// nephroseg/train/distributed.h: data-parallel training across processes (c10d Gloo).
//
// One process per rank. Ranks meet through a store: a TCPStore served by rank 0 at
// MASTER_ADDR:MASTER_PORT, or a FileStore (one file on a folder every rank can see).
// Rank and world size come from the options, or RANK / WORLD_SIZE (torchrun style),
// or Slurm's SLURM_PROCID / SLURM_NTASKS (srun). Rendezvous is bounded by a timeout:
// a rank whose peers never come up fails with an Error naming the store and the ranks.
//
// The c10d headers are heavy; they stay in src/train/distributed.cpp. This header
// exposes only what the trainers need: rank, world size, in-place all-reduce (sum or
// mean) and broadcast of a list of tensors, and a barrier.
//
// Usage:
//   DistributedOptions d;
//   d.enabled = true;                       // rank / world size from the environment
//   auto comm = Communicator::connect(d);   // blocks until every rank has joined
//   comm->broadcast(parameters);            // rank 0's values everywhere
//   comm->all_reduce_mean(gradients);       // element-wise mean over ranks, in place
//
// Thread-safety: one Communicator per process, used from one thread at a time. Every
// rank must issue the same collectives in the same order with tensors of the same
// shapes and dtypes.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace nephroseg::train {

struct DistributedOptions {
  /// false: a single process (world size 1, no store, no communication).
  bool enabled = false;
  /// FileStore path; "" = $NEPHROSEG_DIST_STORE, and when that is unset too, a TCPStore
  /// at MASTER_ADDR:MASTER_PORT. Use a fresh path per job: a file left by an earlier
  /// run holds its keys.
  std::string store_file;
  /// Both >= 0 to set them explicitly; -1 = from the environment.
  int64_t rank = -1, world_size = -1;
  /// Bound on rendezvous (store connection, every rank joining the group), seconds.
  double timeout_seconds = 300;
  /// Bound on one collective. Ranks other than 0 wait in a collective while rank 0
  /// validates and writes checkpoints, so this is long; a peer that dies is detected at
  /// once (its sockets close), this only bounds a peer that hangs.
  double collective_timeout_seconds = 7200;
};

/// Where a rank stands, as resolved from the options and the environment.
struct DistributedEnv {
  int64_t rank = 0;
  int64_t world_size = 1;
  std::string store_file;   // non-empty: FileStore rendezvous
  std::string master_addr;  // else TCPStore at master_addr:master_port
  int64_t master_port = 0;
  std::string rank_source;  // "options", "RANK/WORLD_SIZE" or "SLURM_PROCID/SLURM_NTASKS"
};

/// Environment lookup: the value of a variable, or nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

/// Resolves rank, world size and rendezvous (rules in docs/glomsam.md, "Data-parallel
/// training"): rank / world size from the options, else RANK and WORLD_SIZE, else
/// SLURM_PROCID and SLURM_NTASKS; store from store_file, else NEPHROSEG_DIST_STORE,
/// else MASTER_ADDR (else the first host of SLURM_STEP_NODELIST / SLURM_JOB_NODELIST,
/// else SLURM_LAUNCH_NODE_IPADDR) and MASTER_PORT (else 29500 + SLURM_JOB_ID % 1000
/// under Slurm). Throws nephroseg::Error naming the variable that is missing, not an
/// integer, or inconsistent. World size 1 needs no store.
DistributedEnv resolve_distributed_env(const DistributedOptions& options, const EnvLookup& env);
/// The same with the process environment.
DistributedEnv resolve_distributed_env(const DistributedOptions& options);

/// The first host of a Slurm node list: "gpu[03-05,9],login1" -> "gpu03".
std::string first_slurm_host(const std::string& nodelist);

/// A process group (Gloo over TCP) or, for world size 1, a no-op stand-in.
class Communicator {
 public:
  /// World size 1: every collective returns its input unchanged.
  static std::shared_ptr<Communicator> single_process();
  /// options.enabled false -> single_process(). Else resolves the environment and joins
  /// the group; throws nephroseg::Error when the environment is incomplete or when not
  /// every rank joined within options.timeout_seconds.
  static std::shared_ptr<Communicator> connect(const DistributedOptions& options);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int64_t rank() const;
  int64_t world_size() const;
  bool is_main() const { return rank() == 0; }
  /// "rank 1 of 2 (FileStore /shared/run.store)", for messages.
  std::string describe() const;

  /// In place: every tensor becomes the element-wise sum (or mean) over ranks. Tensors
  /// of one dtype travel together in one flat buffer (one collective per dtype). CPU
  /// tensors of float32, float64 or int64; the mean of an int64 tensor is an error.
  void all_reduce_sum(const std::vector<at::Tensor>& tensors);
  void all_reduce_mean(const std::vector<at::Tensor>& tensors);
  /// In place: every tensor takes root's values.
  void broadcast(const std::vector<at::Tensor>& tensors, int64_t root = 0);
  /// Returns when every rank has called it.
  void barrier();

  /// Wall time spent inside collectives since connect(), seconds (for measurements).
  double collective_seconds() const;

 private:
  struct Impl;
  explicit Communicator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nephroseg::train
