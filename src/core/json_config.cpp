#include "nephroseg/core/json_config.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <fstream>

#include "nephroseg/core/error.h"

namespace nephroseg {

namespace {

nlohmann::json unwrap_config(nlohmann::json j, const std::string& what) {
  NEPHRO_CHECK(j.is_object(), what, " must hold a JSON object");
  if (j.contains("config") && j["config"].is_object()) {
    nlohmann::json inner = std::move(j["config"]);
    return inner;
  }
  return j;
}

const char* type_name(const nlohmann::json& v) { return v.type_name(); }

}  // namespace

std::string json_error_text(const std::exception& e) {
  std::string s = e.what();
  if (s.rfind("[json.exception.", 0) == 0) {
    const size_t close = s.find("] ");
    if (close != std::string::npos) s = s.substr(close + 2);
  }
  if (s.rfind("parse error at ", 0) == 0) s = s.substr(15);
  return s;
}

nlohmann::json read_json_config_file(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  NEPHRO_CHECK(in.good(), what, " ", path, ": cannot open");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    NEPHRO_FAIL(what, " ", path, " is not valid JSON (", json_error_text(e), ")");
  }
  return unwrap_config(std::move(j), what + " " + path);
}

nlohmann::json read_json_config_text(const std::string& text, const std::string& what) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    NEPHRO_FAIL(what, " is not valid JSON (", json_error_text(e), ")");
  }
  return unwrap_config(std::move(j), what);
}

JsonConfigReader::JsonConfigReader(const nlohmann::json& object, std::string source,
                                   std::string path)
    : object_(&object), source_(std::move(source)), path_(std::move(path)) {
  NEPHRO_CHECK(object.is_object(), source_, ": ", path_, " must be a JSON object, got ",
               type_name(object));
}

std::string JsonConfigReader::where(const std::string& key) const {
  return source_ + ": " + path_ + "." + key;
}

bool JsonConfigReader::contains(const char* key) const { return object_->contains(key); }

void JsonConfigReader::ignore(const char* key) { used_.insert(key); }

const nlohmann::json* JsonConfigReader::find(const char* key,
                                             std::initializer_list<const char*> aliases,
                                             const char*& found) {
  // Every spelling counts as read, so a file may carry a key and its alias (the
  // golden GlomSAM files hold both out_chans and prompt_embed_dim); the key wins.
  used_.insert(key);
  for (const char* a : aliases) used_.insert(a);
  found = nullptr;
  auto it = object_->find(key);
  if (it != object_->end()) {
    found = key;
    return &*it;
  }
  for (const char* a : aliases) {
    it = object_->find(a);
    if (it != object_->end()) {
      found = a;
      return &*it;
    }
  }
  return nullptr;
}

const nlohmann::json* JsonConfigReader::take(const char* key,
                                             std::initializer_list<const char*> aliases) {
  const char* found = nullptr;
  return find(key, aliases, found);
}

bool JsonConfigReader::read(const char* key, int64_t& field,
                            std::initializer_list<const char*> aliases) {
  const char* found = nullptr;
  const nlohmann::json* v = find(key, aliases, found);
  if (!v) return false;
  // 2^63: doubles at or beyond it do not convert to int64_t (undefined behaviour, found
  // by fuzz_config_json with 1.7e49), nor do unsigned values above INT64_MAX.
  constexpr double kTwo63 = 9223372036854775808.0;
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    NEPHRO_FAIL(where(found), ": integer ", v->dump(), " is out of range");
  } else if (v->is_number_integer()) {
    field = v->get<int64_t>();
  } else if (v->is_number_float() && std::isfinite(v->get<double>()) &&
             std::floor(v->get<double>()) == v->get<double>()) {
    const double d = v->get<double>();
    NEPHRO_CHECK(d >= -kTwo63 && d < kTwo63, where(found), ": integer ", v->dump(), " is out of range");
    field = static_cast<int64_t>(d);
  } else {
    NEPHRO_FAIL(where(found), ": expected an integer, got ", type_name(*v), " ", v->dump());
  }
  return true;
}

bool JsonConfigReader::read(const char* key, double& field,
                            std::initializer_list<const char*> aliases) {
  const char* found = nullptr;
  const nlohmann::json* v = find(key, aliases, found);
  if (!v) return false;
  NEPHRO_CHECK(v->is_number(), where(found), ": expected a number, got ", type_name(*v), " ",
               v->dump());
  field = v->get<double>();
  return true;
}

bool JsonConfigReader::read(const char* key, bool& field,
                            std::initializer_list<const char*> aliases) {
  const char* found = nullptr;
  const nlohmann::json* v = find(key, aliases, found);
  if (!v) return false;
  NEPHRO_CHECK(v->is_boolean(), where(found), ": expected true or false, got ", type_name(*v),
               " ", v->dump());
  field = v->get<bool>();
  return true;
}

bool JsonConfigReader::read_string_from(const char* key,
                                        std::initializer_list<const char*> aliases,
                                        std::string& out, const char*& found) {
  const nlohmann::json* v = find(key, aliases, found);
  if (!v) return false;
  NEPHRO_CHECK(v->is_string(), where(found), ": expected a string, got ", type_name(*v), " ",
               v->dump());
  out = v->get<std::string>();
  return true;
}

bool JsonConfigReader::read(const char* key, std::string& field,
                            std::initializer_list<const char*> aliases) {
  const char* found = nullptr;
  return read_string_from(key, aliases, field, found);
}

bool JsonConfigReader::read(const char* key, std::vector<int64_t>& field,
                            std::initializer_list<const char*> aliases) {
  const char* found = nullptr;
  const nlohmann::json* v = find(key, aliases, found);
  if (!v) return false;
  NEPHRO_CHECK(v->is_array(), where(found), ": expected an array of integers, got ",
               type_name(*v), " ", v->dump());
  std::vector<int64_t> out;
  for (size_t i = 0; i < v->size(); ++i) {
    const nlohmann::json& e = (*v)[i];
    NEPHRO_CHECK(e.is_number_integer(), where(found), "[", i, "]: expected an integer, got ",
                 type_name(e), " ", e.dump());
    NEPHRO_CHECK(!e.is_number_unsigned() || e.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX), where(found),
                 "[", i, "]: integer ", e.dump(), " is out of range");
    out.push_back(e.get<int64_t>());
  }
  field = std::move(out);
  return true;
}

bool JsonConfigReader::read(const char* key, std::array<double, 3>& field,
                            std::initializer_list<const char*> aliases) {
  const char* found = nullptr;
  const nlohmann::json* v = find(key, aliases, found);
  if (!v) return false;
  NEPHRO_CHECK(v->is_array() && v->size() == 3, where(found),
               ": expected an array of 3 numbers, got ", v->dump());
  std::array<double, 3> out{};
  for (size_t i = 0; i < 3; ++i) {
    const nlohmann::json& e = (*v)[i];
    NEPHRO_CHECK(e.is_number(), where(found), "[", i, "]: expected a number, got ", e.dump());
    out[i] = e.get<double>();
  }
  field = out;
  return true;
}

void JsonConfigReader::finish() const {
  for (const auto& item : object_->items()) {
    NEPHRO_CHECK(used_.count(item.key()) != 0, source_, ": unknown field ", path_, ".",
                 item.key());
  }
}

}  // namespace nephroseg
