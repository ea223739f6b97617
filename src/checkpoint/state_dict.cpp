#include "nephroseg/checkpoint/state_dict.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <sstream>
#include <unordered_set>

#include "nephroseg/core/error.h"

namespace nephroseg::checkpoint {

void StateDict::insert(const std::string& key, at::Tensor tensor) {
  NEPHRO_CHECK(!map_.count(key), "duplicate state-dict key '", key, "'");
  keys_.push_back(key);
  map_.emplace(key, std::move(tensor));
}

void StateDict::set(const std::string& key, at::Tensor tensor) {
  auto it = map_.find(key);
  if (it == map_.end()) {
    insert(key, std::move(tensor));
  } else {
    it->second = std::move(tensor);
  }
}

bool StateDict::contains(const std::string& key) const { return map_.count(key) != 0; }

const at::Tensor& StateDict::at(const std::string& key) const {
  auto it = map_.find(key);
  NEPHRO_CHECK(it != map_.end(), "state dict has no key '", key, "'");
  return it->second;
}

void StateDict::erase(const std::string& key) {
  if (map_.erase(key)) keys_.erase(std::find(keys_.begin(), keys_.end(), key));
}

StateDict StateDict::sub(const std::string& prefix) const {
  StateDict out;
  for (const auto& k : keys_) {
    if (k.compare(0, prefix.size(), prefix) == 0) out.insert(k.substr(prefix.size()), map_.at(k));
  }
  return out;
}

StateDict StateDict::prefixed(const std::string& prefix) const {
  StateDict out;
  for (const auto& k : keys_) out.insert(prefix + k, map_.at(k));
  return out;
}

int64_t StateDict::nbytes() const {
  int64_t n = 0;
  for (const auto& [k, t] : map_) n += t.numel() * static_cast<int64_t>(t.element_size());
  return n;
}

namespace {

// Python's Module.state_dict order: a module's own parameters, then its own buffers,
// then each child in registration order, recursively.
void collect_state(const torch::nn::Module& module, const std::string& prefix, StateDict& out) {
  for (const auto& p : module.named_parameters(/*recurse=*/false)) {
    if (!out.contains(prefix + p.key())) out.insert(prefix + p.key(), p.value());
  }
  for (const auto& b : module.named_buffers(/*recurse=*/false)) {
    if (!out.contains(prefix + b.key())) out.insert(prefix + b.key(), b.value());
  }
  for (const auto& child : module.named_children()) {
    collect_state(*child.value(), prefix + child.key() + ".", out);
  }
}

}  // namespace

StateDict state_dict_of(const torch::nn::Module& module) {
  StateDict out;
  collect_state(module, "", out);
  return out;
}

namespace {

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << "[";
  for (size_t k = 0; k < s.size(); ++k) o << (k ? ", " : "") << s[k];
  o << "]";
  return o.str();
}

bool is_float(at::ScalarType t) {
  return t == at::kFloat || t == at::kHalf || t == at::kBFloat16 || t == at::kDouble;
}

}  // namespace

BindError::BindError(const std::string& message, std::string checkpoint,
                     std::vector<std::string> missing, std::vector<std::string> unexpected,
                     std::vector<Mismatch> mismatched, size_t expected_count, size_t found_count)
    : Error(message),
      checkpoint_(std::move(checkpoint)),
      missing_(std::move(missing)),
      unexpected_(std::move(unexpected)),
      mismatched_(std::move(mismatched)),
      expected_count_(expected_count),
      found_count_(found_count) {}

void bind_state_dict(torch::nn::Module& module, const StateDict& sd, const std::string& what,
                     const BindOptions& options) {
  const StateDict expected = state_dict_of(module);
  const std::unordered_set<std::string> allow_missing(options.allow_missing.begin(),
                                                      options.allow_missing.end());
  const std::unordered_set<std::string> allow_unexpected(options.allow_unexpected.begin(),
                                                         options.allow_unexpected.end());
  std::vector<std::string> missing, unexpected, mismatched;
  std::vector<BindError::Mismatch> mismatches;
  for (const auto& key : expected.keys()) {
    if (!sd.contains(key)) {
      if (!allow_missing.count(key)) missing.push_back(key);
      continue;
    }
    const at::Tensor& want = expected.at(key);
    const at::Tensor& got = sd.at(key);
    if (want.sizes() != got.sizes()) {
      mismatched.push_back(key + ": expected " + shape_str(want.sizes()) + ", found " +
                           shape_str(got.sizes()));
      mismatches.push_back({key, want.sizes().vec(), got.sizes().vec(), {}, {}});
    } else if (is_float(want.scalar_type()) != is_float(got.scalar_type())) {
      std::ostringstream o;
      o << key << ": expected dtype " << want.scalar_type() << ", found " << got.scalar_type();
      mismatched.push_back(o.str());
      mismatches.push_back({key, want.sizes().vec(), got.sizes().vec(),
                            c10::toString(want.scalar_type()), c10::toString(got.scalar_type())});
    }
  }
  for (const auto& key : sd.keys()) {
    if (!expected.contains(key) && !allow_unexpected.count(key)) unexpected.push_back(key);
  }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::ostringstream msg;
    msg << "checkpoint " << what << " does not fit the model (" << expected.size()
        << " keys expected, " << sd.size() << " in the file):";
    auto list = [&](const char* title, const std::vector<std::string>& items) {
      if (items.empty()) return;
      msg << "\n  " << items.size() << " " << title << ":";
      for (const auto& it : items) msg << "\n    " << it;
    };
    list("missing keys", missing);
    list("unexpected keys", unexpected);
    list("shape/dtype mismatches", mismatched);
    throw BindError(msg.str(), what, std::move(missing), std::move(unexpected),
                    std::move(mismatches), expected.size(), sd.size());
  }

  at::NoGradGuard no_grad;
  for (const auto& key : expected.keys()) {
    if (!sd.contains(key)) continue;
    at::Tensor target = expected.at(key);
    const at::Tensor& src = sd.at(key);
    if (options.share_storage && src.scalar_type() == target.scalar_type() &&
        src.is_contiguous() && src.device() == target.device()) {
      target.set_data(src);
    } else {
      target.copy_(src);
    }
  }
}

}  // namespace nephroseg::checkpoint
