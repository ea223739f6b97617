// core/precision.h (names, CPU probe, resolution, JSON) and core/linear.h (the Linear
// layer's bf16 / int8 conversion).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/nn/modules/container/sequential.h>

#include <fstream>
#include <set>
#include <sstream>

#include "core/linear.h"
#include "core/module_init.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/precision.h"

namespace nephroseg {
namespace {

TEST(Precision, NamesParseAndRefuse) {
  EXPECT_EQ(precision_names().parse("bf16"), Precision::kBf16);
  EXPECT_EQ(precision_names().parse("bfloat16"), Precision::kBf16);
  EXPECT_EQ(precision_names().parse("int8"), Precision::kInt8);
  EXPECT_EQ(precision_names().name(Precision::kFp32), "fp32");
  try {
    precision_names().parse("fp16", "--precision");
    FAIL() << "fp16 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--precision: unknown precision 'fp16'"), std::string::npos)
        << e.what();
  }
}

// The CPUID probe against an independent source: the kernel's flags line.
TEST(Precision, CpuFeaturesAgreeWithProcCpuinfo) {
  std::ifstream in("/proc/cpuinfo");
  std::string line, flags;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) {
      flags = line.substr(line.find(':') + 1);
      break;
    }
  }
  if (flags.empty()) GTEST_SKIP() << "no /proc/cpuinfo flags line on this system";
  std::set<std::string> have;
  std::istringstream ss(flags);
  for (std::string f; ss >> f;) have.insert(f);
  const CpuFeatures& cpu = cpu_features();
  EXPECT_EQ(cpu.avx512f, have.count("avx512f") == 1);
  EXPECT_EQ(cpu.avx512_vnni, have.count("avx512_vnni") == 1);
  EXPECT_EQ(cpu.avx512_bf16, have.count("avx512_bf16") == 1);
  EXPECT_EQ(cpu.amx_bf16, have.count("amx_bf16") == 1);
  EXPECT_EQ(cpu.amx_int8, have.count("amx_int8") == 1);
  EXPECT_EQ(cpu.native_bf16(), have.count("avx512_bf16") + have.count("amx_bf16") > 0);
}

TEST(Precision, ResolveAutoAndRefuseEmulatedBf16) {
  CpuFeatures none;
  CpuFeatures bf16;
  bf16.avx512f = bf16.avx512_bf16 = true;
  EXPECT_EQ(resolve_precision(Precision::kAuto, false, none), Precision::kFp32);
  EXPECT_EQ(resolve_precision(Precision::kAuto, false, bf16), Precision::kBf16);
  EXPECT_EQ(resolve_precision(Precision::kBf16, false, bf16), Precision::kBf16);
  EXPECT_EQ(resolve_precision(Precision::kBf16, /*force=*/true, none), Precision::kBf16);
  EXPECT_EQ(resolve_precision(Precision::kFp32, false, none), Precision::kFp32);
  try {
    resolve_precision(Precision::kBf16, false, none);
    FAIL() << "emulated bf16 accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("no native bf16"), std::string::npos) << m;
    EXPECT_NE(m.find("--force-precision"), std::string::npos) << m;
  }
  CpuFeatures amx;
  amx.amx_tile = amx.amx_bf16 = true;
  EXPECT_EQ(resolve_precision(Precision::kAuto, false, amx), Precision::kBf16);
}

TEST(Precision, Int8SelectsOnednn) {
  CpuFeatures vnni;
  vnni.avx512f = vnni.avx512_vnni = true;
  EXPECT_EQ(resolve_precision(Precision::kInt8, false, vnni), Precision::kInt8);
  EXPECT_EQ(at::globalContext().qEngine(), at::QEngine::ONEDNN);
}

// Without VNNI / AMX-INT8, int8 is no faster than fp32 and needs 7-bit weights:
// refused unless forced, as emulated bf16 is.
TEST(Precision, Int8WithoutVnniIsRefusedUnlessForced) {
  CpuFeatures none;
  try {
    resolve_precision(Precision::kInt8, false, none);
    FAIL() << "int8 without VNNI accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("no int8 dot products"), std::string::npos) << m;
    EXPECT_NE(m.find("--force-precision"), std::string::npos) << m;
  }
  EXPECT_EQ(resolve_precision(Precision::kInt8, /*force=*/true, none), Precision::kInt8);
  CpuFeatures avx_vnni;
  avx_vnni.avx_vnni = true;
  EXPECT_EQ(resolve_precision(Precision::kInt8, false, avx_vnni), Precision::kInt8);
  // Full 8-bit weights only where oneDNN 2.6 takes 32-bit VNNI / AMX dot products.
  EXPECT_FALSE(none.full_range_int8());
  EXPECT_FALSE(avx_vnni.full_range_int8());
  CpuFeatures amx;
  amx.amx_tile = amx.amx_int8 = true;
  EXPECT_TRUE(amx.full_range_int8());
  EXPECT_EQ(int8_weight_bits(), cpu_features().full_range_int8() ? 8 : 7);
}

TEST(Precision, JsonRecord) {
  const nlohmann::json j = precision_json(Precision::kInt8, Precision::kAuto);
  EXPECT_EQ(j.at("precision"), "int8");
  EXPECT_EQ(j.at("requested"), "auto");
  EXPECT_EQ(j.at("quantized_engine"), "onednn");
  EXPECT_EQ(j.at("int8_weight_bits").get<int>(), int8_weight_bits());
  EXPECT_EQ(j.at("native_bf16").get<bool>(), cpu_features().native_bf16());
  EXPECT_EQ(j.at("cpu_features").size(), cpu_features().names().size());
  EXPECT_FALSE(precision_json(Precision::kFp32, Precision::kFp32).contains("quantized_engine"));
}

double rel_err(const at::Tensor& a, const at::Tensor& b) {
  return ((a.to(at::kFloat) - b).norm() / b.norm()).item<double>();
}

TEST(PrecisionLinear, Fp32IsTorchLinear) {
  at::manual_seed(1);
  Linear lin = make_linear(64, 96);
  const at::Tensor x = at::randn({2, 5, 64});
  EXPECT_TRUE(at::equal(lin->forward(x), at::linear(x, lin->weight, lin->bias)));
  EXPECT_EQ(lin->precision(), Precision::kFp32);
}

TEST(PrecisionLinear, Bf16ConvertsOnceAndStaysBf16) {
  at::manual_seed(2);
  Linear lin = make_linear(64, 96);
  const at::Tensor x = at::randn({3, 4, 7, 64});  // 4-D, as SAM's [B, H, W, C]
  const at::Tensor ref = at::linear(x, lin->weight, lin->bias);
  lin->set_precision(Precision::kBf16);
  EXPECT_EQ(lin->weight.scalar_type(), at::kBFloat16);
  EXPECT_EQ(lin->bias.scalar_type(), at::kBFloat16);
  const at::Tensor y = lin->forward(x);
  EXPECT_EQ(y.scalar_type(), at::kBFloat16);
  EXPECT_EQ(y.sizes(), ref.sizes());
  const double e = rel_err(y, ref);
  EXPECT_GT(e, 0.0);   // really computed in bf16
  EXPECT_LT(e, 1e-2);  // bf16 rounding of inputs and outputs: ~3e-3
  // A bf16 input is taken as it is.
  EXPECT_TRUE(at::equal(lin->forward(x.to(at::kBFloat16)), y));
  EXPECT_THROW(lin->set_precision(Precision::kInt8), Error);
}

TEST(PrecisionLinear, Int8QuantizesPerChannel) {
  enable_int8_engine();
  at::manual_seed(3);
  Linear lin = make_linear(128, 80);
  // Rows of very different magnitude: per-tensor scales would lose the small rows.
  lin->weight.data().mul_(at::logspace(-3, 0, 80).unsqueeze(1));
  const at::Tensor x = at::randn({6, 9, 128});
  const at::Tensor ref = at::linear(x, lin->weight, lin->bias);
  const at::Tensor small_ref = ref.narrow(-1, 0, 10) - lin->bias.narrow(0, 0, 10);
  lin->set_precision(Precision::kInt8);
  EXPECT_EQ(lin->weight.numel(), 0);  // the float32 copy is freed
  const at::Tensor y = lin->forward(x);
  EXPECT_EQ(y.scalar_type(), at::kFloat);
  EXPECT_EQ(y.sizes(), ref.sizes());
  const double e = rel_err(y, ref);
  EXPECT_GT(e, 0.0);
  EXPECT_LT(e, 3e-2);
  const at::Tensor small = y.narrow(-1, 0, 10) - lin->bias.narrow(0, 0, 10);
  EXPECT_LT(rel_err(small, small_ref), 5e-2);
  // A bf16 input is widened first.
  EXPECT_EQ(lin->forward(x.to(at::kBFloat16)).scalar_type(), at::kFloat);
}

// The worst case for oneDNN's int8 GEMM without VNNI: every activation at the top of
// its u8 range times every weight at the top of its s8 range. Each u8 x s8 pair then
// sums to 2 x 255 x 127 = 64770 > 2^15 - 1, which a vpmaddubsw kernel saturates; with
// 7-bit weights (2 x 255 x 63 = 32130) no pair can. Hand-checked: 64 ones times a row
// of ones is 64, times a row of -0.5 is -32.
TEST(PrecisionLinear, Int8DoesNotSaturateAtTheTopOfTheRange) {
  enable_int8_engine();
  Linear lin = make_linear(64, 2, /*bias=*/false);
  {
    c10::NoGradGuard no_grad;
    lin->weight[0].fill_(1.0);
    lin->weight[1].fill_(-0.5);
  }
  lin->set_precision(Precision::kInt8);
  at::Tensor x = at::ones({3, 64});
  x[0][0] = 0.0;  // the activation range is [0, 1]: 1 quantizes to 255
  const at::Tensor y = lin->forward(x);
  EXPECT_NEAR(y[0][0].item<double>(), 63.0, 0.5);
  EXPECT_NEAR(y[0][1].item<double>(), -31.5, 0.5);
  EXPECT_NEAR(y[1][0].item<double>(), 64.0, 0.5);
  EXPECT_NEAR(y[2][1].item<double>(), -32.0, 0.5);
}

TEST(PrecisionLinear, TreeConversionCountsAndSkipsTorchLinear) {
  torch::nn::Sequential seq(make_linear(8, 8), torch::nn::Linear(8, 8), make_linear(8, 4));
  EXPECT_EQ(set_linear_precision(*seq, Precision::kBf16), 2);
  EXPECT_EQ(seq[1]->as<torch::nn::LinearImpl>()->weight.scalar_type(), at::kFloat);
  EXPECT_EQ(seq[2]->as<torch::nn::LinearImpl>()->weight.scalar_type(), at::kBFloat16);
  EXPECT_THROW(set_linear_precision(*seq, Precision::kAuto), Error);
}

}  // namespace
}  // namespace nephroseg
