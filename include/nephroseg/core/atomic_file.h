// nephroseg/core/atomic_file.h: every output file is written to a temporary file in
// the destination folder and renamed into place, so a failure never leaves a
// half-written output.
//
// Crash safety. The temporary is `<folder>/.tmp-<pid>-<n>-<file name>` (the extension
// stays last so that writers such as cv::imwrite pick the format from it). The steps
// are write -> fsync(file) -> rename -> fsync(folder): after a crash or power loss the
// destination holds either its old content or the complete new one, never a prefix.
// Every error path removes the temporary; a process killed with SIGKILL cannot, so
// batch commands call remove_stale_temporaries(out_folder) at start.
#pragma once

#include <functional>
#include <string>

namespace nephroseg {

/// Calls write(tmp_path), fsyncs tmp_path, renames it to path and fsyncs the folder.
/// If any step fails (write throws, fsync or rename fails), the temporary file is
/// removed and the error propagates (nephroseg::Error naming the file). Creates
/// parent folders.
void write_atomically(const std::string& path,
                      const std::function<void(const std::string& tmp_path)>& write);

/// Writes bytes to path atomically.
void write_file_atomically(const std::string& path, const std::string& bytes);

/// True when `file_name` (no folder) has the temporaries' pattern
/// `.tmp-<pid>-<n>-<anything>`; *pid receives the owner's process id.
bool is_temporary_name(const std::string& file_name, long* pid = nullptr);

/// Removes the stale temporaries left in `folder` (not recursive) by killed runs and
/// returns how many were removed. A file is removed only when its name has our
/// pattern, it is a regular file, its pid is not this process, and that pid is either
/// not running or names a process that started after the file was last modified (the
/// pid was reused, so the writer is gone). Temporaries of live writers, in this
/// process or another, are never touched. A missing folder removes nothing.
size_t remove_stale_temporaries(const std::string& folder);

}  // namespace nephroseg
