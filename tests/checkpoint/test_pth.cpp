// Tests for the .pth reader/writer and strict binding.
#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/core/error.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using namespace nephroseg;
using namespace nephroseg::checkpoint;

namespace {

using nephroseg::test::error_of;  // tests/support/golden.h

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A zip archive in torch.save layout holding the given pickle program and records.
void write_raw_archive(const std::string& path, const std::string& pickle,
                       const std::vector<std::pair<std::string, std::string>>& records = {}) {
  caffe2::serialize::PyTorchStreamWriter writer(path);
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  for (const auto& [name, data] : records) writer.writeRecord(name, data.data(), data.size());
  writer.writeEndOfFile();
}

struct Tiny : torch::nn::Module {
  Tiny() {
    fc = register_module("fc", torch::nn::Linear(3, 2));
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 2, 3)));
  }
  torch::nn::Linear fc{nullptr};
  torch::nn::Conv2d conv{nullptr};
};

}  // namespace

TEST(Pth, RoundTripKeepsDtypesOrderValuesAndNesting) {
  const std::string dir = test::temp_dir("pth");
  at::Tensor base = at::arange(24, at::kFloat).reshape({4, 6});
  StateDict sd;
  sd.insert("z.first", at::randn({2, 3}));
  sd.insert("a.transposed", base.t());           // non-contiguous view
  sd.insert("m.slice", base.slice(0, 1, 3));     // view with an offset
  sd.insert("half", base.to(at::kHalf));
  sd.insert("bf16", base.to(at::kBFloat16));
  sd.insert("long", at::arange(5, at::kLong) * static_cast<int64_t>(1000000000000));
  sd.insert("bool", at::arange(3) % 2 == 0);
  sd.insert("scalar", at::scalar_tensor(3.5));
  Value root = make_dict({{"model", make_state_dict_value(sd)},
                          {"epoch", make_int(7)},
                          {"big", make_int(int64_t(1) << 40)},
                          {"negative", make_int(-3)},
                          {"best_dice", make_float(0.875)},
                          {"name", make_string("glomsam")}});
  const std::string path = dir + "/ckpt.pth";
  save_pickle_file(path, root);

  StateDict back = load_state_dict(path);
  ASSERT_EQ(back.keys(), sd.keys());
  for (const auto& k : sd.keys()) {
    EXPECT_EQ(back.at(k).scalar_type(), sd.at(k).scalar_type()) << k;
    EXPECT_TRUE(back.at(k).equal(sd.at(k))) << k;
  }
  Value tree = load_pickle_file(path);
  ASSERT_NE(tree.find("epoch"), nullptr);
  EXPECT_EQ(tree.find("epoch")->i, 7);
  EXPECT_EQ(tree.find("big")->i, int64_t(1) << 40);
  EXPECT_EQ(tree.find("negative")->i, -3);
  EXPECT_DOUBLE_EQ(tree.find("best_dice")->f, 0.875);
  EXPECT_EQ(tree.find("name")->s, "glomsam");
  EXPECT_EQ(tree.find("nothing"), nullptr);

  // A bare state dict round-trips too, and an explicit entry name is honoured.
  save_state_dict(dir + "/bare.pth", sd);
  EXPECT_EQ(load_state_dict(dir + "/bare.pth").keys(), sd.keys());
  LoadOptions options;
  options.entry = "model";
  EXPECT_EQ(load_state_dict(path, options).size(), sd.size());
  options.entry = "optimizer";
  EXPECT_NE(error_of([&] { load_state_dict(path, options); }).find("'optimizer'"),
            std::string::npos);
  // No temporary files are left behind.
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_EQ(e.path().filename().string().rfind(".tmp", 0), std::string::npos) << e.path();
  }
}

TEST(Pth, StoragesSavedOnCudaLoadToCpu) {
  // Write a normal file, then rewrite its pickle so the storage location is cuda:0,
  // as it is in checkpoints saved from a GPU.
  const std::string dir = test::temp_dir("pth_cuda");
  StateDict sd;
  sd.insert("w", at::arange(6, at::kFloat));
  save_state_dict(dir + "/cpu.pth", sd);
  caffe2::serialize::PyTorchStreamReader reader(dir + "/cpu.pth");
  auto [pkl, pkl_size] = reader.getRecord("data.pkl");
  std::string pickle(static_cast<const char*>(pkl.get()), pkl_size);
  const std::string cpu = std::string("X\x03\x00\x00\x00", 5) + "cpu";
  const std::string cuda = std::string("X\x06\x00\x00\x00", 5) + "cuda:0";
  const auto at_pos = pickle.find(cpu);
  ASSERT_NE(at_pos, std::string::npos);
  pickle.replace(at_pos, cpu.size(), cuda);
  auto [data, data_size] = reader.getRecord("data/0");
  write_raw_archive(dir + "/cuda.pth", pickle,
                    {{"data/0", std::string(static_cast<const char*>(data.get()), data_size)}});
  StateDict back = load_state_dict(dir + "/cuda.pth");
  EXPECT_TRUE(back.at("w").device().is_cpu());
  EXPECT_TRUE(back.at("w").equal(sd.at("w")));
}

TEST(Pth, BadFilesGiveClearErrorsNamingTheFile) {
  const std::string dir = test::temp_dir("pth_bad");
  EXPECT_NE(error_of([&] { load_state_dict(dir + "/missing.pth"); }).find("does not exist"),
            std::string::npos);
  write_bytes(dir + "/empty.pth", "");
  EXPECT_NE(error_of([&] { load_state_dict(dir + "/empty.pth"); }).find("empty.pth"),
            std::string::npos);
  write_bytes(dir + "/legacy.pth", std::string("\x80\x02\x8a\x0a", 4) + "legacy junk");
  EXPECT_NE(error_of([&] { load_state_dict(dir + "/legacy.pth"); }).find("legacy"),
            std::string::npos);
  write_bytes(dir + "/image.pth", "\x89PNG\r\n\x1a\n not a checkpoint");
  EXPECT_NE(error_of([&] { load_state_dict(dir + "/image.pth"); }).find("not a PyTorch checkpoint"),
            std::string::npos);

  StateDict sd;
  sd.insert("w", at::randn({64, 64}));
  save_state_dict(dir + "/good.pth", sd);
  const std::string good = read_bytes(dir + "/good.pth");
  write_bytes(dir + "/truncated.pth", good.substr(0, good.size() / 2));
  const std::string truncated = error_of([&] { load_state_dict(dir + "/truncated.pth"); });
  EXPECT_NE(truncated.find("truncated.pth"), std::string::npos) << truncated;
  EXPECT_NE(truncated.find("corrupt"), std::string::npos) << truncated;

  // A zip without data.pkl (e.g. some other archive).
  {
    caffe2::serialize::PyTorchStreamWriter writer(dir + "/nodata.pth");
    writer.writeRecord("something", "x", 1);
    writer.writeEndOfFile();
  }
  EXPECT_NE(error_of([&] { load_state_dict(dir + "/nodata.pth"); }).find("data.pkl"),
            std::string::npos);

  // A pickle that would run code in Python is refused, naming the global.
  write_raw_archive(dir + "/evil.pth",
                    std::string("\x80\x02") + "cos\nsystem\n(X\x02\x00\x00\x00lstR.");
  const std::string evil = error_of([&] { load_state_dict(dir + "/evil.pth"); });
  EXPECT_NE(evil.find("os.system"), std::string::npos) << evil;

  // A checkpoint whose top level holds no tensors at all.
  save_pickle_file(dir + "/notensors.pth", make_dict({{"epoch", make_int(1)}}));
  EXPECT_NE(error_of([&] { load_state_dict(dir + "/notensors.pth"); }).find("no state dict"),
            std::string::npos);
}

TEST(Bind, StrictBindingListsEveryProblemAtOnce) {
  Tiny m;
  StateDict sd;
  sd.insert("fc.weight", at::ones({2, 3}));
  sd.insert("fc.bias", at::ones({5}));             // wrong shape
  sd.insert("conv.weight", at::ones({2, 1, 3, 3}));
  // conv.bias missing
  sd.insert("decoder.extra", at::ones({1}));       // unexpected
  const std::string msg = error_of([&] { bind_state_dict(m, sd, "'x.pth'"); });
  EXPECT_NE(msg.find("'x.pth'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing keys:\n    conv.bias"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected keys:\n    decoder.extra"), std::string::npos) << msg;
  EXPECT_NE(msg.find("fc.bias: expected [2], found [5]"), std::string::npos) << msg;

  BindOptions lenient;
  lenient.allow_missing = {"conv.bias"};
  lenient.allow_unexpected = {"decoder.extra"};
  sd.set("fc.bias", at::full({2}, 2.0).to(at::kHalf));  // half is cast
  bind_state_dict(m, sd, "'x.pth'", lenient);
  EXPECT_TRUE(m.fc->weight.equal(at::ones({2, 3})));
  EXPECT_TRUE(m.fc->bias.equal(at::full({2}, 2.0)));
  EXPECT_EQ(m.fc->bias.scalar_type(), at::kFloat);
  EXPECT_TRUE(m.fc->weight.requires_grad());
}

TEST(Pth, ReadsGoldenOrderedDictCheckpoints) {
  NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth");
  StateDict sd = load_state_dict(test::shared_path("golden/models/sam_tiny.pth"));
  std::ifstream in(test::shared_path("golden/models/sam_tiny.json"));
  auto spec = nlohmann::ordered_json::parse(in);
  const auto& expected = spec["state_dict"];
  ASSERT_EQ(sd.size(), expected.size());
  size_t i = 0;
  for (const auto& [key, shape] : expected.items()) {
    ASSERT_EQ(sd.keys()[i++], key) << "key order differs from the file";
    EXPECT_EQ(sd.at(key).sizes().vec(), shape.get<std::vector<int64_t>>()) << key;
    EXPECT_EQ(sd.at(key).scalar_type(), at::kFloat) << key;
  }
  for (const char* name : {"golden/models/dinov2_tiny_reg4.pth", "golden/glomsam/full_model.pth",
                           "golden/glomsam/unet.pth"}) {
    if (test::shared_path(name).empty()) continue;
    EXPECT_GT(load_state_dict(test::shared_path(name)).size(), 10u) << name;
  }
}

// An independent check of the reader against files written by Python's torch.save
// (views sharing one storage, float16/bfloat16, a {"model": ...} wrapper). Runs
// when Debian's python3-torch is installed, and is skipped otherwise.
TEST(Pth, ReadsFilesWrittenByPythonTorch) {
  if (std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "python3-torch is not installed (apt-get install python3-torch)";
  }
  const std::string dir = test::temp_dir("pth_py");
  const std::string script = dir + "/make.py";
  {
    std::ofstream py(script);
    py << "import collections, sys, torch\n"
          "base = torch.arange(24, dtype=torch.float32).reshape(4, 6)\n"
          "sd = collections.OrderedDict()\n"
          "sd['base'] = base\n"
          "sd['row'] = base[2]\n"
          "sd['t'] = base.t()\n"
          "sd['h'] = (base / 7).half()\n"
          "sd['bf'] = (base / 7).bfloat16()\n"
          "sd['p'] = torch.nn.Parameter(torch.ones(3))\n"
          "torch.save(sd, sys.argv[1] + '/plain.pth')\n"
          "torch.save({'model': sd, 'epoch': 4, 'lr': 1e-4, 'opt': {'state': {}, 'groups': [1, 2]}},"
          " sys.argv[1] + '/wrapped.pth')\n"
          "torch.save(sd, sys.argv[1] + '/legacy.pth', _use_new_zipfile_serialization=False)\n";
  }
  ASSERT_EQ(std::system(("/usr/bin/python3 " + script + " " + dir).c_str()), 0);
  for (const char* name : {"plain.pth", "wrapped.pth"}) {
    StateDict sd = load_state_dict(dir + "/" + name);
    ASSERT_EQ(sd.keys(), (std::vector<std::string>{"base", "row", "t", "h", "bf", "p"})) << name;
    at::Tensor base = at::arange(24, at::kFloat).reshape({4, 6});
    EXPECT_TRUE(sd.at("base").equal(base));
    EXPECT_TRUE(sd.at("row").equal(base[2]));
    EXPECT_TRUE(sd.at("t").equal(base.t()));
    EXPECT_EQ(sd.at("h").scalar_type(), at::kHalf);
    EXPECT_TRUE(sd.at("h").equal((base / 7).to(at::kHalf)));
    EXPECT_EQ(sd.at("bf").scalar_type(), at::kBFloat16);
    EXPECT_TRUE(sd.at("bf").equal((base / 7).to(at::kBFloat16)));
    EXPECT_TRUE(sd.at("p").equal(at::ones({3})));
    // Views keep sharing the saved storage, as in Python.
    EXPECT_TRUE(sd.at("row").is_alias_of(sd.at("base")));
    EXPECT_TRUE(sd.at("t").is_alias_of(sd.at("base")));
  }
  EXPECT_NE(error_of([&] { load_state_dict(dir + "/legacy.pth"); }).find("legacy"),
            std::string::npos);

  // And Python reads what we write.
  StateDict ours;
  ours.insert("w", at::arange(6, at::kFloat).reshape({2, 3}).t());
  ours.insert("h", at::ones({2}, at::kHalf));
  save_pickle_file(dir + "/ours.pth", make_dict({{"model", make_state_dict_value(ours)},
                                                  {"epoch", make_int(2)}}));
  const std::string check =
      "/usr/bin/python3 -c \"import torch, collections; d = torch.load('" + dir +
      "/ours.pth'); m = d['model']; "
      "assert isinstance(m, collections.OrderedDict); assert d['epoch'] == 2; "
      "assert torch.equal(m['w'], torch.arange(6.).reshape(2, 3).t()); "
      "assert m['h'].dtype == torch.float16\"";
  EXPECT_EQ(std::system(check.c_str()), 0);
}

TEST(Bind, StateDictOfFollowsPythonOrder) {
  struct Inner : torch::nn::Module {
    Inner() {
      register_parameter("w", at::ones({1}));
      register_buffer("running", at::zeros({1}));
    }
  };
  struct Outer : torch::nn::Module {
    Outer() {
      register_parameter("gamma", at::ones({1}));
      register_module("a", std::make_shared<Inner>());
      register_buffer("count", at::zeros({1}));
      register_module("b", std::make_shared<Inner>());
    }
  };
  Outer m;
  // Python: own parameters, own buffers, then children (each: params, buffers).
  EXPECT_EQ(state_dict_of(m).keys(),
            (std::vector<std::string>{"gamma", "count", "a.w", "a.running", "b.w", "b.running"}));
}
