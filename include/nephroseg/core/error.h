// nephroseg/core/error.h: the one exception type of the library and its CHECK macro.
//
// Every function of the library reports bad input (missing file, wrong checkpoint,
// mismatched sizes, empty mask, bad prompt) by throwing nephroseg::Error with a
// message that names the offending file, key or argument. Only the CLI's main()
// catches, and maps the error to a non-zero exit code and one line on stderr.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace nephroseg {

/// The library's error: a message meant for the user, naming what is wrong.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

}  // namespace nephroseg

/// NEPHRO_CHECK(cond, "message ", value, ...): throws nephroseg::Error with the
/// concatenated parts when cond is false (in the style of TORCH_CHECK).
#define NEPHRO_CHECK(cond, ...)                                            \
  do {                                                                     \
    if (!(cond)) {                                                         \
      throw ::nephroseg::Error(::nephroseg::detail::concat(__VA_ARGS__)); \
    }                                                                      \
  } while (false)

/// NEPHRO_FAIL("message ", value, ...): throws nephroseg::Error unconditionally.
#define NEPHRO_FAIL(...) \
  throw ::nephroseg::Error(::nephroseg::detail::concat(__VA_ARGS__))
