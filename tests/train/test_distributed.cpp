// Data-parallel training: environment rules, collectives over Gloo between two
// in-process ranks, bounded rendezvous, and the equivalence that defines the feature:
// `nephroseg glomsam train --distributed` on 2 ranks x batch B ends with the same
// parameters as 1 process x batch 2B (and a distributed --resume continues exactly).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/checkpoint/state_dict.h"
#include "nephroseg/core/error.h"
#include "nephroseg/io/image.h"
#include "nephroseg/train/distributed.h"
#include "nephroseg/train/losses.h"
#include "support/golden.h"

extern char** environ;

namespace nephroseg::train {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

EnvLookup fake_env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

DistributedOptions enabled() {
  DistributedOptions o;
  o.enabled = true;
  return o;
}

using nephroseg::test::error_of;  // tests/support/golden.h

TEST(DistributedEnv, RankAndRendezvousFromTheEnvironment) {
  // torchrun style, TCP.
  DistributedEnv d = resolve_distributed_env(
      enabled(), fake_env({{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"MASTER_ADDR", "10.0.0.7"}, {"MASTER_PORT", "29611"}}));
  EXPECT_EQ(d.rank, 1);
  EXPECT_EQ(d.world_size, 4);
  EXPECT_EQ(d.master_addr, "10.0.0.7");
  EXPECT_EQ(d.master_port, 29611);
  EXPECT_TRUE(d.store_file.empty());
  EXPECT_EQ(d.rank_source, "RANK/WORLD_SIZE");
  // srun: rank from Slurm, master from the step's first node, port from the job id.
  d = resolve_distributed_env(enabled(), fake_env({{"SLURM_PROCID", "2"},
                                                   {"SLURM_NTASKS", "3"},
                                                   {"SLURM_STEP_NODELIST", "gpu[07-09]"},
                                                   {"SLURM_LAUNCH_NODE_IPADDR", "192.168.1.1"},
                                                   {"SLURM_JOB_ID", "123456"}}));
  EXPECT_EQ(d.rank, 2);
  EXPECT_EQ(d.world_size, 3);
  EXPECT_EQ(d.master_addr, "gpu07");
  EXPECT_EQ(d.master_port, 29500 + 456);
  EXPECT_EQ(d.rank_source, "SLURM_PROCID/SLURM_NTASKS");
  // RANK wins over Slurm's variables; the launch node is the last resort for the address.
  d = resolve_distributed_env(enabled(), fake_env({{"RANK", "0"},
                                                   {"WORLD_SIZE", "2"},
                                                   {"SLURM_PROCID", "1"},
                                                   {"SLURM_NTASKS", "2"},
                                                   {"SLURM_LAUNCH_NODE_IPADDR", "192.168.1.1"},
                                                   {"MASTER_PORT", "1234"}}));
  EXPECT_EQ(d.rank, 0);
  EXPECT_EQ(d.master_addr, "192.168.1.1");
  // A store file (option, else NEPHROSEG_DIST_STORE) replaces TCP.
  d = resolve_distributed_env(enabled(),
                              fake_env({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"NEPHROSEG_DIST_STORE", "/shared/s"}}));
  EXPECT_EQ(d.store_file, "/shared/s");
  DistributedOptions o = enabled();
  o.store_file = "/mine";
  o.rank = 1;
  o.world_size = 2;
  d = resolve_distributed_env(o, fake_env({{"NEPHROSEG_DIST_STORE", "/shared/s"}}));
  EXPECT_EQ(d.store_file, "/mine");
  EXPECT_EQ(d.rank, 1);
  // World size 1 needs nothing else; disabled ignores the environment.
  d = resolve_distributed_env(enabled(), fake_env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}}));
  EXPECT_EQ(d.world_size, 1);
  d = resolve_distributed_env(DistributedOptions{}, fake_env({{"RANK", "3"}, {"WORLD_SIZE", "4"}}));
  EXPECT_EQ(d.rank, 0);
  EXPECT_EQ(d.world_size, 1);
}

TEST(DistributedEnv, MissingOrInconsistentVariablesAreNamed) {
  auto msg = [](std::map<std::string, std::string> vars) {
    return error_of([&] { resolve_distributed_env(enabled(), fake_env(vars)); });
  };
  EXPECT_NE(msg({}).find("set RANK and WORLD_SIZE"), std::string::npos) << msg({});
  EXPECT_NE(msg({{"RANK", "0"}}).find("RANK is set but WORLD_SIZE is not"), std::string::npos);
  EXPECT_NE(msg({{"SLURM_NTASKS", "2"}}).find("SLURM_NTASKS is set but SLURM_PROCID is not"), std::string::npos);
  EXPECT_NE(msg({{"RANK", "x1"}, {"WORLD_SIZE", "2"}}).find("RANK='x1' is not an integer"), std::string::npos);
  EXPECT_NE(msg({{"RANK", "2"}, {"WORLD_SIZE", "2"}}).find("rank 2 is outside 0..1"), std::string::npos);
  EXPECT_NE(msg({{"RANK", "0"}, {"WORLD_SIZE", "0"}}).find("world size must be >= 1"), std::string::npos);
  EXPECT_NE(msg({{"RANK", "0"}, {"WORLD_SIZE", "2"}}).find("set MASTER_ADDR and MASTER_PORT"), std::string::npos);
  EXPECT_NE(msg({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}).find("MASTER_PORT is not set"),
            std::string::npos);
  EXPECT_NE(msg({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}})
                .find("is not a TCP port"),
            std::string::npos);
  DistributedOptions half = enabled();
  half.rank = 0;
  EXPECT_NE(error_of([&] { resolve_distributed_env(half, fake_env({})); }).find("must be given together"),
            std::string::npos);
}

TEST(DistributedEnv, FirstSlurmHost) {
  EXPECT_EQ(first_slurm_host("node1"), "node1");
  EXPECT_EQ(first_slurm_host("node1,node2"), "node1");
  EXPECT_EQ(first_slurm_host("gpu[03-05,9],login1"), "gpu03");
  EXPECT_EQ(first_slurm_host("gpu[9,03-05]"), "gpu9");
  EXPECT_EQ(first_slurm_host("rack[2-3]-n"), "rack2-n");
}

// Two ranks as two threads of this process, each with its own process group.
TEST(Communicator, AllReduceAndBroadcastBetweenTwoRanks) {
  const std::string store = test::temp_dir("comm") + "/store";
  std::vector<std::map<std::string, at::Tensor>> out(2);
  std::vector<std::string> errors(2);
  auto rank_main = [&](int64_t rank) {
    try {
      DistributedOptions o = enabled();
      o.store_file = store;
      o.rank = rank;
      o.world_size = 2;
      o.timeout_seconds = 60;
      auto comm = Communicator::connect(o);
      const float r = static_cast<float>(rank);
      at::Tensor f = at::tensor({1.0f + r, 2.0f + 2 * r, -0.5f});
      at::Tensor d = at::full({2, 2}, 0.25 + r, at::kDouble);
      at::Tensor l = at::tensor({static_cast<int64_t>(10 + rank)}, at::kLong);
      at::Tensor g = at::tensor({1.0f + 2 * r, 3.0f + 2 * r});  // another float32 tensor: same buffer as f
      comm->all_reduce_sum({f, d, l, g});
      at::Tensor m = at::tensor({1.0f + 2 * r, 10.0f});
      comm->all_reduce_mean({m});
      at::Tensor b0 = at::tensor({7.0f + r, 8.0f + r});
      comm->broadcast({b0});
      at::Tensor b1 = at::tensor({static_cast<int64_t>(100 + rank)}, at::kLong);
      comm->broadcast({b1}, /*root=*/1);
      comm->barrier();
      out[static_cast<size_t>(rank)] = {{"f", f}, {"d", d}, {"l", l}, {"g", g}, {"m", m}, {"b0", b0}, {"b1", b1}};
      EXPECT_EQ(comm->describe(), "rank " + std::to_string(rank) + " of 2 (FileStore " + store + ")");
    } catch (const std::exception& e) {
      errors[static_cast<size_t>(rank)] = e.what();
    }
  };
  std::thread t1(rank_main, 1);
  rank_main(0);
  t1.join();
  ASSERT_EQ(errors[0], "");
  ASSERT_EQ(errors[1], "");
  for (size_t r = 0; r < 2; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    EXPECT_TRUE(at::equal(out[r]["f"], at::tensor({3.0f, 6.0f, -1.0f})));
    EXPECT_TRUE(at::equal(out[r]["d"], at::full({2, 2}, 1.5, at::kDouble)));
    EXPECT_TRUE(at::equal(out[r]["l"], at::tensor({int64_t{21}}, at::kLong)));
    EXPECT_TRUE(at::equal(out[r]["g"], at::tensor({4.0f, 8.0f})));
    EXPECT_TRUE(at::equal(out[r]["m"], at::tensor({2.0f, 10.0f})));
    EXPECT_TRUE(at::equal(out[r]["b0"], at::tensor({7.0f, 8.0f})));
    EXPECT_TRUE(at::equal(out[r]["b1"], at::tensor({int64_t{101}}, at::kLong)));
  }
}

TEST(Communicator, SingleProcessIsANoOp) {
  auto comm = Communicator::connect(DistributedOptions{});
  EXPECT_EQ(comm->world_size(), 1);
  EXPECT_TRUE(comm->is_main());
  at::Tensor t = at::tensor({1.5f, 2.5f});
  comm->all_reduce_mean({t});
  comm->broadcast({t});
  comm->barrier();
  EXPECT_TRUE(at::equal(t, at::tensor({1.5f, 2.5f})));
}

int free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

// A rank whose peer never comes up fails within the timeout, naming itself and the store.
TEST(Communicator, MissingPeerFailsWithinTheTimeout) {
  struct Case {
    std::string name;
    DistributedOptions o;
    std::string store_text;
  };
  std::vector<Case> cases;
  DistributedOptions file = enabled();
  file.store_file = test::temp_dir("lonely") + "/store";
  file.rank = 0;
  file.world_size = 2;
  file.timeout_seconds = 2;
  cases.push_back({"FileStore, rank 0 alone", file, "FileStore " + file.store_file});
  const int port = free_tcp_port();
  ::setenv("MASTER_ADDR", "127.0.0.1", 1);
  ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
  DistributedOptions server = enabled();
  server.rank = 0;
  server.world_size = 2;
  server.timeout_seconds = 2;
  cases.push_back({"TCPStore server, no client", server, "TCPStore 127.0.0.1:" + std::to_string(port)});
  DistributedOptions client = server;
  client.rank = 1;
  cases.push_back({"TCPStore client, no server", client, "TCPStore 127.0.0.1:" + std::to_string(port)});
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto t0 = Clock::now();
    const std::string msg = error_of([&] { Communicator::connect(c.o); });
    const double took = seconds_since(t0);
    std::printf("%s: failed after %.1f s: %s\n", c.name.c_str(), took, msg.c_str());
    EXPECT_NE(msg.find("distributed rendezvous failed for rank " + std::to_string(c.o.rank) + " of 2"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find(c.store_text), std::string::npos) << msg;
    EXPECT_NE(msg.find("timeout 2 s"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
    EXPECT_GE(took, 0.5);
    EXPECT_LT(took, 30.0);
  }
  ::unsetenv("MASTER_ADDR");
  ::unsetenv("MASTER_PORT");
}

// ---- the CLI on 2 ranks against 1 process --------------------------------------------

// Bright ellipses on a textured background, with their masks.
void make_blobs(const std::string& dir, int count, int size, uint32_t seed) {
  fs::create_directories(dir + "/images");
  fs::create_directories(dir + "/masks");
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int i = 0; i < count; ++i) {
    cv::Mat img(size, size, CV_8UC3), mask = cv::Mat::zeros(size, size, CV_8UC1);
    for (int y = 0; y < size; ++y) {
      for (int x = 0; x < size; ++x) {
        const int t = 50 + static_cast<int>(60 * u(rng));
        img.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uchar>(t), static_cast<uchar>(t + 10), static_cast<uchar>(t + 30));
      }
    }
    const cv::Point c(static_cast<int>(size * (0.3 + 0.4 * u(rng))), static_cast<int>(size * (0.3 + 0.4 * u(rng))));
    const cv::Size ax(static_cast<int>(size * (0.1 + 0.1 * u(rng))), static_cast<int>(size * (0.1 + 0.1 * u(rng))));
    cv::ellipse(mask, c, ax, 180 * u(rng), 0, 360, cv::Scalar(255), cv::FILLED);
    img.setTo(cv::Scalar(210, 170, 200), mask);
    char name[32];
    std::snprintf(name, sizeof(name), "b%02d.png", i);
    io::write_png(dir + "/images/" + name, img);
    io::write_png(dir + "/masks/" + name, mask);
  }
}

// Starts `env... nephroseg --threads 1 args` in the background; output to log.
pid_t start_cli(const std::string& env, const std::string& args, const std::string& log) {
  const std::string cmd = env + " exec " + test::binary_dir() + "/nephroseg --threads 1 " + args + " > " + log + " 2>&1";
  const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ), 0) << cmd;
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class DistributedTraining : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = new std::string(test::temp_dir("dist_data"));
    make_blobs(*data_ + "/train", 11, 160, 21);  // 11: the last global batch of 6 splits 3 + 2
    make_blobs(*data_ + "/val", 2, 160, 22);
  }
  static void TearDownTestSuite() { delete data_; }
  void SetUp() override {
    if (!test::have_cli()) GTEST_SKIP() << "needs the nephroseg CLI (build target nephroseg_cli)";
  }

  // Tiny GlomSAM from random init, ViT trained too, BatchNorm frozen.
  static std::string train_args(const std::string& out, int64_t batch, int64_t epochs) {
    const std::string& d = *data_;
    return "glomsam train --images " + d + "/train/images --masks " + d + "/train/masks --val-images " + d +
           "/val/images --val-masks " + d + "/val/masks --out " + out + " --config tiny --seed 5 --epochs " +
           std::to_string(epochs) + " --batch-size " + std::to_string(batch) +
           " --lr 2e-4 --box-jitter 6 --patience 0 --train-vit --freeze-bn";
  }

  // Runs `world` ranks of the same command, returns rank 0's log. FileStore with
  // RANK / WORLD_SIZE, or (tcp) TCPStore at MASTER_ADDR:MASTER_PORT with Slurm's
  // SLURM_PROCID / SLURM_NTASKS, as srun sets them.
  static std::string run_ranks(int world, const std::string& args, const std::string& out, bool tcp = false) {
    std::vector<pid_t> pids;
    const std::string port = std::to_string(free_tcp_port());
    for (int r = 0; r < world; ++r) {
      const std::string rank = std::to_string(r), size = std::to_string(world);
      const std::string env = tcp ? "SLURM_PROCID=" + rank + " SLURM_NTASKS=" + size +
                                        " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port
                                  : "RANK=" + rank + " WORLD_SIZE=" + size;
      const std::string store = tcp ? "" : " --dist-store " + out + ".store";
      pids.push_back(start_cli(env, args + " --distributed --dist-timeout 120" + store,
                               out + ".rank" + rank + ".log"));
    }
    for (int r = 0; r < world; ++r) {
      const std::string log = out + ".rank" + std::to_string(r) + ".log";
      EXPECT_EQ(wait_exit(pids[static_cast<size_t>(r)]), 0) << "rank " << r << ":\n" << read_text(log);
    }
    return read_text(out + ".rank0.log");
  }

  static std::string* data_;
};
std::string* DistributedTraining::data_ = nullptr;

// log.csv rows as numbers (header skipped).
std::vector<std::vector<double>> csv_rows(const std::string& path) {
  std::vector<std::vector<double>> rows;
  std::istringstream in(read_text(path));
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::vector<double> row;
    std::stringstream cells(line);
    std::string cell;
    while (std::getline(cells, cell, ',')) row.push_back(std::stod(cell));
    rows.push_back(row);
  }
  return rows;
}

struct Difference {
  double global_rel = 0;  // ||a - b|| / ||b|| over every tensor of the state dict
  double tensor_rel = 0;  // max over tensors of ||a - b|| / ||b||
  std::string worst;      // the tensor of tensor_rel
};

Difference compare(const std::string& a_path, const std::string& b_path) {
  const checkpoint::StateDict a = checkpoint::load_state_dict(a_path);
  const checkpoint::StateDict b = checkpoint::load_state_dict(b_path);
  EXPECT_EQ(a.keys(), b.keys());
  Difference d;
  double diff2 = 0, norm2 = 0;
  for (const auto& k : b.keys()) {
    if (!a.contains(k) || b.at(k).numel() == 0) continue;
    const at::Tensor x = a.at(k).to(at::kDouble), y = b.at(k).to(at::kDouble);
    const double dk = (x - y).pow(2).sum().item<double>(), nk = y.pow(2).sum().item<double>();
    diff2 += dk;
    norm2 += nk;
    const double rel = std::sqrt(dk / std::max(nk, 1e-30));
    if (rel > d.tensor_rel) {
      d.tensor_rel = rel;
      d.worst = k;
    }
  }
  d.global_rel = std::sqrt(diff2 / std::max(norm2, 1e-30));
  return d;
}

TEST_F(DistributedTraining, TwoRanksMatchOneProcessWithTheGlobalBatchAndResume) {
  // 11 images, 2 epochs: per epoch a global batch of 6 (ranks 3 + 3) and one of 5 (3 + 2).
  const std::string root = test::temp_dir("equiv");
  const auto t0 = Clock::now();
  std::vector<pid_t> single{start_cli("", train_args(root + "/one_b6", 6, 2), root + "/one_b6.log"),
                            start_cli("", train_args(root + "/one_b3", 3, 2), root + "/one_b3.log")};
  EXPECT_EQ(wait_exit(single[0]), 0) << read_text(root + "/one_b6.log");
  EXPECT_EQ(wait_exit(single[1]), 0) << read_text(root + "/one_b3.log");
  const double t_single = seconds_since(t0);
  const auto t1 = Clock::now();
  const std::string log = run_ranks(2, train_args(root + "/two_b3", 3, 2), root + "/two_b3");
  const double t_two = seconds_since(t1);
  std::printf("1 process (two runs in parallel) %.1f s, 2 ranks %.1f s\nrank 0 log:\n%s\n", t_single, t_two,
              log.c_str());
  ASSERT_TRUE(fs::exists(root + "/two_b3/last.pth"));
  ASSERT_TRUE(fs::exists(root + "/one_b6/last.pth"));
  EXPECT_NE(log.find("data-parallel: 2 ranks x batch 3 = global batch 6"), std::string::npos) << log;
  // Only rank 0 wrote the run folder; rank 1 printed nothing.
  EXPECT_EQ(read_text(root + "/two_b3.rank1.log"), "");
  EXPECT_TRUE(fs::exists(root + "/two_b3/log.csv"));
  EXPECT_TRUE(fs::exists(root + "/two_b3/split.txt"));

  const Difference same = compare(root + "/two_b3/last.pth", root + "/one_b6/last.pth");
  const Difference other = compare(root + "/two_b3/last.pth", root + "/one_b3/last.pth");
  std::printf("2 ranks x 3 vs 1 x 6: relative difference %.3g overall, %.3g in the worst tensor (%s)\n",
              same.global_rel, same.tensor_rel, same.worst.c_str());
  std::printf("2 ranks x 3 vs 1 x 3 (sensitivity): %.3g overall, %.3g in %s\n", other.global_rel, other.tensor_rel,
              other.worst.c_str());
  // Float32 summation order alone (1 thread vs 2 in one process) moves the parameters by
  // about as much: AdamW turns rounding noise in near-zero gradients (attention key
  // biases, whose gradient is zero in exact arithmetic) into lr-sized steps.
  EXPECT_LE(same.global_rel, 1e-6) << same.worst;
  EXPECT_LE(same.tensor_rel, 1e-4) << same.worst;
  EXPECT_GE(other.global_rel, 1e-3) << "the comparison must be able to tell batch 3 from batch 6";
  // The logged training losses are the global batch's.
  const auto two = csv_rows(root + "/two_b3/log.csv"), one = csv_rows(root + "/one_b6/log.csv");
  ASSERT_EQ(two.size(), 2u);
  ASSERT_EQ(one.size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    for (size_t col = 1; col <= 4; ++col) {  // train_loss, train_bce, train_dice_loss, train_bdou
      EXPECT_NEAR(two[e][col], one[e][col], 1e-5 * std::abs(one[e][col])) << "epoch " << e + 1 << " column " << col;
    }
  }

  // Distributed --resume: 1 epoch, then resume to 2 (over TCP, ranks from Slurm's
  // variables), on 2 ranks -> the uninterrupted run.
  run_ranks(2, train_args(root + "/resumed", 3, 1), root + "/resumed_a");
  const std::string resumed_log =
      run_ranks(2, train_args(root + "/resumed", 3, 2) + " --resume", root + "/resumed_b", /*tcp=*/true);
  EXPECT_NE(resumed_log.find("resuming from"), std::string::npos) << resumed_log;
  const Difference resumed = compare(root + "/resumed/last.pth", root + "/two_b3/last.pth");
  std::printf("distributed resume vs uninterrupted: %.3g (%s)\n", resumed.tensor_rel, resumed.worst.c_str());
  EXPECT_EQ(resumed.tensor_rel, 0.0) << resumed.worst;
  const auto res = csv_rows(root + "/resumed/log.csv");
  ASSERT_EQ(res.size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    for (size_t col = 0; col <= 9; ++col) {  // epoch .. val_accuracy (not the timings)
      EXPECT_EQ(res[e][col], two[e][col]) << "epoch " << e + 1 << " column " << col;
    }
  }
}

}  // namespace
}  // namespace nephroseg::train
