// nephroseg/core/atomic_file.h: every output file is written to a temporary file in
// the destination folder and renamed into place, so a failure never leaves a
// half-written output.
#pragma once

#include <functional>
#include <string>

namespace nephroseg {

/// Calls write(tmp_path), then renames tmp_path to path. If write throws, the
/// temporary file is removed and the exception propagates. Creates parent folders.
void write_atomically(const std::string& path,
                      const std::function<void(const std::string& tmp_path)>& write);

/// Writes bytes to path atomically.
void write_file_atomically(const std::string& path, const std::string& bytes);

}  // namespace nephroseg
