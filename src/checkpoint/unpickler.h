// src/checkpoint/unpickler.h: a restricted pickle virtual machine for the subset of
// protocol 2-5 that torch.save emits for state dicts and training checkpoints.
// Internal header: the public entry points are in nephroseg/checkpoint/pth.h.
#pragma once

#include <functional>
#include <string>

#include "nephroseg/checkpoint/pth.h"

namespace c10 {
struct Storage;
}

namespace nephroseg::checkpoint::detail {

/// Returns the storage for a persistent id ('storage', type, key, location, numel):
/// `key` names the record data/<key>; nbytes is numel * element size.
using StorageLoader =
    std::function<at::Tensor(const std::string& key, at::ScalarType dtype, int64_t numel)>;

/// Runs the pickle program in `bytes`. `what` names the file in error messages.
/// Storages are returned by `load_storage` as 1-d tensors of `numel` elements.
Value unpickle(const char* bytes, size_t size, const StorageLoader& load_storage,
               const std::string& what);

}  // namespace nephroseg::checkpoint::detail
