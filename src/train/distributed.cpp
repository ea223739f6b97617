// Data-parallel plumbing: environment rules, rendezvous and collectives over c10d Gloo.
// The only translation unit that includes the c10d headers (compiled with USE_C10D_GLOO).
#include "nephroseg/train/distributed.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <map>
#include <sstream>

#include "nephroseg/core/error.h"

#ifndef USE_C10D_GLOO
#error "distributed.cpp must be compiled with -DUSE_C10D_GLOO (see src/train/CMakeLists.txt)"
#endif

namespace nephroseg::train {

namespace {

using Clock = std::chrono::steady_clock;

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

// A whole-string decimal integer, or an Error naming the variable.
int64_t parse_int(const std::string& name, const std::string& value) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(value, &used);
  } catch (...) {
    used = 0;
  }
  NEPHRO_CHECK(used > 0 && used == value.size(), "--distributed: ", name, "='", value, "' is not an integer");
  return v;
}

// First line of a c10 / std error, without LibTorch's backtrace.
std::string short_message(const std::exception& e) {
  std::string msg;
  if (const auto* ce = dynamic_cast<const c10::Error*>(&e)) {
    msg = ce->what_without_backtrace();
  } else {
    msg = e.what();
  }
  const size_t nl = msg.find('\n');
  if (nl != std::string::npos) msg = msg.substr(0, nl);
  while (!msg.empty() && (msg.back() == '.' || msg.back() == ' ')) msg.pop_back();
  return msg;
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  // The first entry ends at the first comma outside brackets.
  int depth = 0;
  size_t end = nodelist.size();
  for (size_t i = 0; i < nodelist.size(); ++i) {
    if (nodelist[i] == '[') ++depth;
    if (nodelist[i] == ']') --depth;
    if (nodelist[i] == ',' && depth == 0) {
      end = i;
      break;
    }
  }
  const std::string entry = nodelist.substr(0, end);
  const size_t open = entry.find('[');
  if (open == std::string::npos) return entry;
  const size_t close = entry.find(']', open);
  NEPHRO_CHECK(close != std::string::npos, "Slurm node list '", nodelist, "': unbalanced '['");
  // "prefix[03-05,9]suffix": the first number of the first range keeps its zero padding.
  const std::string inside = entry.substr(open + 1, close - open - 1);
  const size_t stop = inside.find_first_of(",-");
  return entry.substr(0, open) + inside.substr(0, stop) + entry.substr(close + 1);
}

DistributedEnv resolve_distributed_env(const DistributedOptions& o, const EnvLookup& env) {
  DistributedEnv d;
  if (!o.enabled) return d;
  auto get = [&](const std::string& name) { return env ? env(name) : std::nullopt; };
  // Rank and world size.
  if (o.rank >= 0 || o.world_size >= 0) {
    NEPHRO_CHECK(o.rank >= 0 && o.world_size >= 0, "--distributed: rank and world size must be given together");
    d.rank = o.rank;
    d.world_size = o.world_size;
    d.rank_source = "options";
  } else {
    const auto rank = get("RANK"), world = get("WORLD_SIZE");
    const auto procid = get("SLURM_PROCID"), ntasks = get("SLURM_NTASKS");
    if (rank || world) {
      NEPHRO_CHECK(rank && world, "--distributed: ", rank ? "RANK" : "WORLD_SIZE", " is set but ",
                   rank ? "WORLD_SIZE" : "RANK", " is not");
      d.rank = parse_int("RANK", *rank);
      d.world_size = parse_int("WORLD_SIZE", *world);
      d.rank_source = "RANK/WORLD_SIZE";
    } else if (procid || ntasks) {
      NEPHRO_CHECK(procid && ntasks, "--distributed: ", procid ? "SLURM_PROCID" : "SLURM_NTASKS", " is set but ",
                   procid ? "SLURM_NTASKS" : "SLURM_PROCID", " is not");
      d.rank = parse_int("SLURM_PROCID", *procid);
      d.world_size = parse_int("SLURM_NTASKS", *ntasks);
      d.rank_source = "SLURM_PROCID/SLURM_NTASKS";
    } else {
      NEPHRO_FAIL("--distributed: no rank and world size: set RANK and WORLD_SIZE, or start the ranks with "
                  "srun (which sets SLURM_PROCID and SLURM_NTASKS)");
    }
  }
  NEPHRO_CHECK(d.world_size >= 1, "--distributed: world size must be >= 1, got ", d.world_size, " (from ",
               d.rank_source, ")");
  NEPHRO_CHECK(d.rank >= 0 && d.rank < d.world_size, "--distributed: rank ", d.rank, " is outside 0..",
               d.world_size - 1, " (from ", d.rank_source, ")");
  if (d.world_size == 1) return d;
  // Rendezvous.
  d.store_file = o.store_file;
  if (d.store_file.empty()) d.store_file = get("NEPHROSEG_DIST_STORE").value_or("");
  if (!d.store_file.empty()) return d;
  if (auto addr = get("MASTER_ADDR"); addr && !addr->empty()) {
    d.master_addr = *addr;
  } else if (auto step = get("SLURM_STEP_NODELIST"); step && !step->empty()) {
    d.master_addr = first_slurm_host(*step);  // rank 0 runs on the first node of the step
  } else if (auto job = get("SLURM_JOB_NODELIST"); job && !job->empty()) {
    d.master_addr = first_slurm_host(*job);
  } else if (auto launch = get("SLURM_LAUNCH_NODE_IPADDR"); launch && !launch->empty()) {
    d.master_addr = *launch;
  } else {
    NEPHRO_FAIL("--distributed: no rendezvous: set MASTER_ADDR and MASTER_PORT (TCP, rank 0 listens), or give "
                "--dist-store FILE / NEPHROSEG_DIST_STORE (a file on a folder every rank sees)");
  }
  if (auto port = get("MASTER_PORT"); port && !port->empty()) {
    d.master_port = parse_int("MASTER_PORT", *port);
  } else if (auto job_id = get("SLURM_JOB_ID"); job_id && !job_id->empty()) {
    d.master_port = 29500 + parse_int("SLURM_JOB_ID", *job_id) % 1000;
  } else {
    NEPHRO_FAIL("--distributed: MASTER_ADDR is ", d.master_addr, " but MASTER_PORT is not set");
  }
  NEPHRO_CHECK(d.master_port > 0 && d.master_port < 65536, "--distributed: MASTER_PORT ", d.master_port,
               " is not a TCP port");
  return d;
}

DistributedEnv resolve_distributed_env(const DistributedOptions& options) {
  return resolve_distributed_env(options, [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  });
}

struct Communicator::Impl {
  DistributedEnv env;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;  // null for world size 1
  double seconds = 0;

  std::string where() const {
    std::ostringstream s;
    s << "rank " << env.rank << " of " << env.world_size;
    if (!env.store_file.empty()) {
      s << " (FileStore " << env.store_file << ")";
    } else if (env.world_size > 1) {
      s << " (TCPStore " << env.master_addr << ":" << env.master_port << ")";
    }
    return s.str();
  }

  // Runs one collective, timing it and turning c10 errors into one-line Errors.
  template <typename F>
  void run(const char* what, F&& f) {
    const auto t0 = Clock::now();
    try {
      f();
    } catch (const std::exception& e) {
      NEPHRO_FAIL("distributed ", what, " failed on ", where(), ": ", short_message(e),
                  " (did another rank fail or exit?)");
    }
    seconds += std::chrono::duration<double>(Clock::now() - t0).count();
  }
};

Communicator::Communicator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Communicator::~Communicator() = default;

std::shared_ptr<Communicator> Communicator::single_process() {
  return std::shared_ptr<Communicator>(new Communicator(std::make_unique<Impl>()));
}

std::shared_ptr<Communicator> Communicator::connect(const DistributedOptions& o) {
  auto impl = std::make_unique<Impl>();
  impl->env = resolve_distributed_env(o);
  if (impl->env.world_size == 1) return std::shared_ptr<Communicator>(new Communicator(std::move(impl)));
  NEPHRO_CHECK(o.timeout_seconds > 0, "--dist-timeout must be positive, got ", o.timeout_seconds);
  const DistributedEnv& env = impl->env;
  const auto t0 = Clock::now();
  try {
    if (!env.store_file.empty()) {
      impl->store = c10::make_intrusive<c10d::FileStore>(env.store_file, static_cast<int>(env.world_size));
    } else {
      c10d::TCPStoreOptions so;
      so.port = static_cast<std::uint16_t>(env.master_port);
      so.isServer = env.rank == 0;
      so.numWorkers = static_cast<size_t>(env.world_size);
      so.waitWorkers = true;
      so.timeout = to_ms(o.timeout_seconds);
      impl->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    }
    impl->store->setTimeout(to_ms(o.timeout_seconds));
    // Gloo's own rendezvous waits with the collective timeout, so the ranks first meet
    // here, under the rendezvous timeout: each announces itself and waits for the rest.
    std::vector<std::string> joined;
    for (int64_t r = 0; r < env.world_size; ++r) joined.push_back("nephroseg/joined/" + std::to_string(r));
    impl->store->set(joined[static_cast<size_t>(env.rank)], std::vector<uint8_t>{1});
    impl->store->wait(joined, to_ms(o.timeout_seconds));
    auto go = c10d::ProcessGroupGloo::Options::create(to_ms(o.collective_timeout_seconds));
    // GLOO_SOCKET_IFNAME picks the network interface, as in PyTorch; else the address
    // this host's name resolves to.
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else {
      go->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    go->threads = 2;
    impl->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, static_cast<int>(env.rank),
                                                               static_cast<int>(env.world_size), go);
  } catch (const std::exception& e) {
    const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
    std::ostringstream s;
    s << "distributed rendezvous failed for " << impl->where() << " after " << static_cast<int64_t>(waited)
      << " s (timeout " << o.timeout_seconds << " s): " << short_message(e)
      << "; check that all " << env.world_size << " ranks started with the same store"
      << (env.store_file.empty() ? " address and port" : " file") << " and that none exited early";
    NEPHRO_FAIL(s.str());
  }
  return std::shared_ptr<Communicator>(new Communicator(std::move(impl)));
}

int64_t Communicator::rank() const { return impl_->env.rank; }
int64_t Communicator::world_size() const { return impl_->env.world_size; }
std::string Communicator::describe() const { return impl_->where(); }
double Communicator::collective_seconds() const { return impl_->seconds; }

namespace {

// Tensors grouped by dtype, in first-seen order, so that every rank builds the same buffers.
std::vector<std::vector<at::Tensor>> by_dtype(const std::vector<at::Tensor>& tensors) {
  std::vector<std::vector<at::Tensor>> groups;
  std::vector<at::ScalarType> types;
  for (const auto& t : tensors) {
    NEPHRO_CHECK(t.defined(), "distributed: undefined tensor in a collective");
    NEPHRO_CHECK(t.device().is_cpu(), "distributed: only CPU tensors are supported, got ", t.device());
    const at::ScalarType st = t.scalar_type();
    NEPHRO_CHECK(st == at::kFloat || st == at::kDouble || st == at::kLong,
                 "distributed: dtype ", st, " is not supported (float32, float64, int64)");
    size_t i = 0;
    while (i < types.size() && types[i] != st) ++i;
    if (i == types.size()) {
      types.push_back(st);
      groups.emplace_back();
    }
    groups[i].push_back(t);
  }
  return groups;
}

at::Tensor flatten(const std::vector<at::Tensor>& group) {
  std::vector<at::Tensor> flat;
  flat.reserve(group.size());
  for (const auto& t : group) flat.push_back(t.detach().reshape({-1}));
  return at::cat(flat);
}

void unflatten(const at::Tensor& buffer, const std::vector<at::Tensor>& group) {
  at::NoGradGuard no_grad;  // parameters are leaves that require grad
  int64_t offset = 0;
  for (const auto& t : group) {
    const int64_t n = t.numel();
    t.copy_(buffer.slice(0, offset, offset + n).view(t.sizes()));
    offset += n;
  }
}

}  // namespace

void Communicator::all_reduce_sum(const std::vector<at::Tensor>& tensors) {
  if (!impl_->group || tensors.empty()) return;
  for (const auto& group : by_dtype(tensors)) {
    std::vector<at::Tensor> buffer{flatten(group)};
    impl_->run("all-reduce", [&] { impl_->group->allreduce(buffer)->wait(); });
    unflatten(buffer[0], group);
  }
}

void Communicator::all_reduce_mean(const std::vector<at::Tensor>& tensors) {
  if (!impl_->group || tensors.empty()) return;
  for (const auto& group : by_dtype(tensors)) {
    NEPHRO_CHECK(group[0].scalar_type() != at::kLong, "distributed: the mean of an int64 tensor is not defined");
    std::vector<at::Tensor> buffer{flatten(group)};
    impl_->run("all-reduce", [&] { impl_->group->allreduce(buffer)->wait(); });
    buffer[0].div_(static_cast<double>(impl_->env.world_size));
    unflatten(buffer[0], group);
  }
}

void Communicator::broadcast(const std::vector<at::Tensor>& tensors, int64_t root) {
  NEPHRO_CHECK(root >= 0 && root < world_size(), "distributed: broadcast root ", root, " outside 0..",
               world_size() - 1);
  if (!impl_->group || tensors.empty()) return;
  for (const auto& group : by_dtype(tensors)) {
    std::vector<at::Tensor> buffer{flatten(group)};
    c10d::BroadcastOptions bo;
    bo.rootRank = root;
    impl_->run("broadcast", [&] { impl_->group->broadcast(buffer, bo)->wait(); });
    unflatten(buffer[0], group);
  }
}

void Communicator::barrier() {
  if (!impl_->group) return;
  impl_->run("barrier", [&] { impl_->group->barrier()->wait(); });
}

}  // namespace nephroseg::train
