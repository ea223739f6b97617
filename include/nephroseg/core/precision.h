// nephroseg/core/precision.h: the numeric precision a model runs its inference in, and
// what this CPU can do natively.
//
//   fp32  the default: every op in float32 (the parity reference).
//   bf16  Linear layers and the attention matmuls in bfloat16 (weights converted once at
//         load); LayerNorm, the residual stream and the small heads stay float32.
//   int8  Linear layers through dynamic quantization (per-channel int8 weights, 7-bit
//         where the CPU has no VNNI; per-batch int8 activations) on LibTorch's `onednn`
//         quantized engine; attention in bf16 where the CPU has native bf16, else
//         float32; norms stay float32.
//   auto  bf16 when the CPU has native bf16 dot products (avx512_bf16 or AMX-BF16),
//         else fp32.
// docs/precision.md lists per model which layers run in which precision.
//
//   const Precision p = resolve_precision(precision_names().parse("auto"));
//   auto model = sam::SamModel::load(path, config, p);
//   record["precision"] = precision_json(p, Precision::kAuto);
//
// Thread safety: cpu_features() is computed once (thread-safe static); the rest are
// pure functions except enable_int8_engine(), which sets LibTorch's global quantized
// engine (call it before inference threads start; resolve_precision does).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

#include "nephroseg/core/enum_names.h"

namespace nephroseg {

enum class Precision { kFp32, kBf16, kInt8, kAuto };

/// The one name table of Precision: "fp32" | "bf16" | "int8" | "auto" (CLI, JSON,
/// Python; "float32", "bfloat16" accepted on input).
const EnumNames<Precision>& precision_names();

/// What CPUID (leaf 7, subleaves 0 and 1) and XGETBV say about this CPU. A feature
/// counts only when the OS also saves its register state (XCR0).
struct CpuFeatures {
  bool avx512f = false;
  bool avx512_vnni = false;
  bool avx512_bf16 = false;
  bool avx_vnni = false;
  bool amx_tile = false;
  bool amx_bf16 = false;
  bool amx_int8 = false;

  /// bf16 dot products in hardware (else oneDNN emulates them, slower than fp32).
  bool native_bf16() const { return avx512_bf16 || amx_bf16; }
  /// int8 dot products in hardware (VNNI or AMX-INT8). Without them oneDNN multiplies
  /// u8 x s8 pairs with a 16-bit saturating add (vpmaddubsw): measured on an AVX2-only
  /// EPYC, int8 ran at 1.03x fp32 and, with 8-bit weights, lost masks (GlomSAM Dice 0.65).
  bool native_int8() const { return avx512_vnni || avx_vnni || amx_int8; }
  /// Whether int8 weights may use their full 8 bits: only where LibTorch 1.13's oneDNN
  /// 2.6 is known to take 32-bit VNNI / AMX dot products (avx512_vnni, amx_int8).
  /// Elsewhere (no VNNI, or AVX-VNNI alone) weights are held to 7 bits (|q| <= 63), so
  /// that 2 x 255 x 63 < 2^15 and no pair can saturate.
  bool full_range_int8() const { return avx512_vnni || amx_int8; }
  /// The names of the features present, in the order above ("avx512_bf16", ...).
  std::vector<std::string> names() const;
};

/// This CPU's features (probed once).
const CpuFeatures& cpu_features();

/// The precision to run: kAuto -> kBf16 when `cpu` has native bf16, else kFp32;
/// kBf16 on a CPU without native bf16 is an Error (the emulation is slower than fp32)
/// unless `force`; kInt8 on a CPU without native int8 (no VNNI / AMX-INT8: no faster
/// than fp32, and 7-bit weights) is an Error unless `force`, and it selects the onednn
/// quantized engine (enable_int8_engine), an Error where LibTorch has none. Never
/// returns kAuto.
Precision resolve_precision(Precision requested, bool force, const CpuFeatures& cpu);
/// Same, for this CPU.
Precision resolve_precision(Precision requested, bool force = false);

/// Selects LibTorch's `onednn` quantized engine (never qnnpack: 4x slower than fp32 on
/// x86), or throws Error naming the engines this build has.
void enable_int8_engine();

/// {"precision": "int8", "requested": "int8", "native_bf16": true, "native_int8": true,
///  "cpu_features": ["avx512f", ...], "quantized_engine": "onednn", "int8_weight_bits": 8}
/// (the last two only for int8; 7 where !full_range_int8()): what run.json /
/// result.json record.
nlohmann::json precision_json(Precision resolved, Precision requested);

/// The bits an int8 weight may use on this CPU: 8 where full_range_int8(), else 7.
int int8_weight_bits();

}  // namespace nephroseg
