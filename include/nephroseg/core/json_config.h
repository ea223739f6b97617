// nephroseg/core/json_config.h: strict reading of JSON config objects.
//
// Every model config (SAM, DINOv2, GlomSAM) is read through one JsonConfigReader, so
// all of them behave alike: a field that is absent keeps its default, a field of the
// wrong type or an unknown enum name is an error naming the field path, and a field
// nobody read is an error naming it (typos never pass silently).
//
//   const nlohmann::json j = read_json_config_file(path, "SAM config file");
//   JsonConfigReader r(j, "SAM config file " + path);      // fields under "config."
//   r.read("img_size", c.img_size);                       // int64: integers only
//   r.read("preprocess", c.preprocess, sam_preprocess_names());
//   r.finish();   // Error: "SAM config file x.json: unknown field config.img_sise"
//
// Messages read "<source>: <path>.<key>: <problem>"; the path starts at "config"
// (the object itself, or the "config" member of a golden model description) and a
// nested reader extends it ("config.sam.img_size").
//
// Thread safety: a reader is a short-lived local object; do not share one.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <set>
#include <string>
#include <vector>

#include "nephroseg/core/enum_names.h"

namespace nephroseg {

/// nlohmann's message for an exception without its "[json.exception.<kind>.<id>] "
/// prefix (and "parse error at "), e.g. "line 1, column 16: syntax error while parsing
/// object - unexpected end of input; expected '}'": the part a user can act on.
std::string json_error_text(const std::exception& e);

/// Parses the JSON file at `path`. Errors name the file ("<what> <path>: cannot
/// open" / "is not valid JSON" / "must hold a JSON object"). When the object has an
/// object member "config" (a golden model description), that member is returned.
nlohmann::json read_json_config_file(const std::string& path, const std::string& what);

/// Same, from JSON text; `what` names the source in errors.
nlohmann::json read_json_config_text(const std::string& text, const std::string& what);

class JsonConfigReader {
 public:
  /// `object` must be a JSON object and outlive the reader. `source` names where it
  /// came from (e.g. "SAM config file x.json"); `path` is its field path.
  JsonConfigReader(const nlohmann::json& object, std::string source,
                   std::string path = "config");

  /// Each read() stores the value of `key` (or, when `key` is absent, of the first
  /// alias present) in `field` and returns true; an absent field keeps its value and
  /// returns false. A value of the wrong type throws Error naming the field path.
  /// Integers must be JSON integers (or floats with an integral value).
  bool read(const char* key, int64_t& field, std::initializer_list<const char*> aliases = {});
  bool read(const char* key, double& field, std::initializer_list<const char*> aliases = {});
  bool read(const char* key, bool& field, std::initializer_list<const char*> aliases = {});
  bool read(const char* key, std::string& field, std::initializer_list<const char*> aliases = {});
  bool read(const char* key, std::vector<int64_t>& field,
            std::initializer_list<const char*> aliases = {});
  bool read(const char* key, std::array<double, 3>& field,
            std::initializer_list<const char*> aliases = {});

  /// An enum field spelt as in its name table (canonical name or alias); an unknown
  /// name throws Error naming the field path and the valid names.
  template <typename E>
  bool read(const char* key, E& field, const EnumNames<E>& names,
            std::initializer_list<const char*> aliases = {}) {
    std::string text;
    const char* found = nullptr;
    if (!read_string_from(key, aliases, text, found)) return false;
    field = names.parse(text, where(found));
    return true;
  }

  /// The raw value of `key` (or an alias) for fields with their own rules, marked as
  /// read; nullptr when absent.
  const nlohmann::json* take(const char* key, std::initializer_list<const char*> aliases = {});
  /// Accepts `key` without reading it (informative or derived fields).
  void ignore(const char* key);
  bool contains(const char* key) const;

  /// "<source>: <path>.<key>", for messages about one field.
  std::string where(const std::string& key) const;
  const std::string& source() const { return source_; }
  const std::string& path() const { return path_; }

  /// Throws Error naming the first field (in key order) that no read(), take() or
  /// ignore() asked for: "<source>: unknown field <path>.<key>".
  void finish() const;

 private:
  const nlohmann::json* find(const char* key, std::initializer_list<const char*> aliases,
                             const char*& found);
  bool read_string_from(const char* key, std::initializer_list<const char*> aliases,
                        std::string& out, const char*& found);

  const nlohmann::json* object_;
  std::string source_;
  std::string path_;
  std::set<std::string> used_;
};

}  // namespace nephroseg
