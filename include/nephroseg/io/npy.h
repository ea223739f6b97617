// nephroseg/io/npy.h: NumPy .npy files (format version 1.0/2.0/3.0, C order).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace nephroseg::io {

/// Reads a .npy file into a CPU tensor. Supported dtypes: f4, f8, f2, i1, i2, i4, i8,
/// u1, b1 (little-endian or byte-order-free). Fortran order and other dtypes are
/// refused with an error naming the file.
at::Tensor read_npy(const std::string& path);

/// Writes a tensor (any supported dtype, made contiguous) as a version 1.0 .npy file,
/// atomically (temporary file, then rename).
void write_npy(const std::string& path, const at::Tensor& tensor);

}  // namespace nephroseg::io
