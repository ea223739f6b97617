// nephroseg/core/enum_names.h: one name table per enum, used by the CLI, the JSON
// writers and the config readers alike, so an enum value is spelt the same way
// everywhere.
//
// Usage:
//   inline const EnumNames<Order>& order_names() {
//     static const EnumNames<Order> t("point order", {{Order::kRef, "reference"},
//                                                     {Order::kSet, "cpython_set", {"cpython-set"}}});
//     return t;
//   }
//   order_names().name(Order::kSet)         -> "cpython_set"  (canonical, written to files)
//   order_names().parse("cpython-set")      -> Order::kSet    (aliases accepted on input)
//   order_names().parse("bogus")            -> throws Error: unknown point order 'bogus'
//                                              (expected one of: reference, cpython_set)
//
// Thread safety: immutable after construction.
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "nephroseg/core/error.h"

namespace nephroseg {

template <typename E>
class EnumNames {
 public:
  struct Entry {
    E value;
    std::string name;                  // canonical spelling (files, JSON, --help)
    std::vector<std::string> aliases;  // also accepted on input (older CLI spellings)
  };

  EnumNames(std::string what, std::initializer_list<Entry> entries)
      : what_(std::move(what)), entries_(entries) {}

  /// The canonical name of a value; throws for a value missing from the table.
  const std::string& name(E value) const {
    for (const auto& e : entries_)
      if (e.value == value) return e.name;
    throw Error(detail::concat("internal: ", what_, " value ", static_cast<long long>(value),
                               " has no name"));
  }

  /// The value named by a canonical name or an alias; an error naming the choices
  /// otherwise. `field` (e.g. "--order" or "config.token_order") prefixes the message.
  E parse(const std::string& text, const std::string& field = {}) const {
    for (const auto& e : entries_) {
      if (e.name == text) return e.value;
      for (const auto& a : e.aliases)
        if (a == text) return e.value;
    }
    throw Error(detail::concat(field.empty() ? "" : field + ": ", "unknown ", what_, " '", text,
                               "' (expected one of: ", choices(), ")"));
  }

  bool contains(const std::string& text) const {
    for (const auto& e : entries_) {
      if (e.name == text) return true;
      for (const auto& a : e.aliases)
        if (a == text) return true;
    }
    return false;
  }

  /// Canonical names, comma separated, in table order (for --help and messages).
  std::string choices() const {
    std::string out;
    for (const auto& e : entries_) out += (out.empty() ? "" : ", ") + e.name;
    return out;
  }

  /// Canonical names and aliases (for CLI11's IsMember check).
  std::vector<std::string> all_spellings() const {
    std::vector<std::string> out;
    for (const auto& e : entries_) {
      out.push_back(e.name);
      out.insert(out.end(), e.aliases.begin(), e.aliases.end());
    }
    return out;
  }

  const std::string& what() const { return what_; }
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::string what_;
  std::vector<Entry> entries_;
};

}  // namespace nephroseg
