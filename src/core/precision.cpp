#include "nephroseg/core/precision.h"

#include <ATen/Context.h>
#include <cpuid.h>
#include <nlohmann/json.hpp>

#include <cstdint>

#include "nephroseg/core/error.h"

namespace nephroseg {

const EnumNames<Precision>& precision_names() {
  static const EnumNames<Precision> names("precision", {{Precision::kFp32, "fp32", {"float32"}},
                                                         {Precision::kBf16, "bf16", {"bfloat16"}},
                                                         {Precision::kInt8, "int8", {}},
                                                         {Precision::kAuto, "auto", {}}});
  return names;
}

namespace {

uint64_t read_xcr0() {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
  if ((ecx & (1u << 27)) == 0) return 0;  // no OSXSAVE: XGETBV is not available
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

CpuFeatures probe_cpu() {
  CpuFeatures f;
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  const uint64_t xcr0 = read_xcr0();
  const bool os_avx = (xcr0 & 0x6) == 0x6;             // SSE + AVX state
  const bool os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask + ZMM state
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;     // XTILECFG + XTILEDATA
  __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx);
  const uint32_t max_subleaf = eax;
  f.avx512f = os_avx512 && (ebx & (1u << 16));
  f.avx512_vnni = f.avx512f && (ecx & (1u << 11));
  f.amx_bf16 = os_amx && (edx & (1u << 22));
  f.amx_tile = os_amx && (edx & (1u << 24));
  f.amx_int8 = os_amx && (edx & (1u << 25));
  if (max_subleaf >= 1) {
    __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx);
    f.avx_vnni = os_avx && (eax & (1u << 4));
    f.avx512_bf16 = f.avx512f && (eax & (1u << 5));
  }
  return f;
}

}  // namespace

std::vector<std::string> CpuFeatures::names() const {
  std::vector<std::string> out;
  const std::pair<bool, const char*> all[] = {
      {avx512f, "avx512f"},   {avx512_vnni, "avx512_vnni"}, {avx512_bf16, "avx512_bf16"},
      {avx_vnni, "avx_vnni"}, {amx_tile, "amx_tile"},       {amx_bf16, "amx_bf16"},
      {amx_int8, "amx_int8"}};
  for (const auto& [on, name] : all)
    if (on) out.emplace_back(name);
  return out;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = probe_cpu();
  return features;
}

void enable_int8_engine() {
  const auto& engines = at::globalContext().supportedQEngines();
  for (const auto e : engines) {
    if (e == at::QEngine::ONEDNN) {
      at::globalContext().setQEngine(at::QEngine::ONEDNN);
      return;
    }
  }
  std::string have;
  for (const auto e : engines) have += (have.empty() ? "" : ", ") + c10::toString(e);
  NEPHRO_FAIL("precision int8 needs LibTorch's onednn quantized engine; this build has ",
              have.empty() ? std::string("none") : have);
}

Precision resolve_precision(Precision requested, bool force, const CpuFeatures& cpu) {
  switch (requested) {
    case Precision::kFp32:
      return Precision::kFp32;
    case Precision::kAuto:
      return cpu.native_bf16() ? Precision::kBf16 : Precision::kFp32;
    case Precision::kBf16:
      NEPHRO_CHECK(cpu.native_bf16() || force,
                   "precision bf16: this CPU has no native bf16 (neither avx512_bf16 nor "
                   "amx_bf16), so bf16 would be emulated and slower than fp32; use fp32 or auto, "
                   "or force it (--force-precision)");
      return Precision::kBf16;
    case Precision::kInt8:
      NEPHRO_CHECK(cpu.native_int8() || force,
                   "precision int8: this CPU has no int8 dot products (neither avx512_vnni, "
                   "avx_vnni nor amx_int8), so int8 runs no faster than fp32 here and its "
                   "weights are held to 7 bits; use fp32 or auto, or force it (--force-precision)");
      enable_int8_engine();
      return Precision::kInt8;
  }
  NEPHRO_FAIL("internal: unknown precision value ", static_cast<int>(requested));
}

Precision resolve_precision(Precision requested, bool force) {
  return resolve_precision(requested, force, cpu_features());
}

nlohmann::json precision_json(Precision resolved, Precision requested) {
  const CpuFeatures& cpu = cpu_features();
  nlohmann::json j;
  j["precision"] = precision_names().name(resolved);
  j["requested"] = precision_names().name(requested);
  j["native_bf16"] = cpu.native_bf16();
  j["native_int8"] = cpu.native_int8();
  j["cpu_features"] = cpu.names();
  if (resolved == Precision::kInt8) {
    j["quantized_engine"] = "onednn";
    j["int8_weight_bits"] = int8_weight_bits();
  }
  return j;
}

int int8_weight_bits() { return cpu_features().full_range_int8() ? 8 : 7; }

}  // namespace nephroseg
