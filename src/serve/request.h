// serve/request.h (internal): request bodies -> library parameters. Every field is
// read by name into the library's own structs (sam::SamPrompt, sam::AutomaskOptions),
// whose defaults stand for absent fields; a wrong field is a RequestError (400) naming
// it. No HTTP and no model here, so the fuzzer (fuzz/fuzz_serve_request.cpp) reaches
// all of it.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "nephroseg/sam/automask.h"
#include "nephroseg/sam/sam.h"

namespace nephroseg::serve {

/// An answer other than 200, with our words for its "detail".
struct RequestError {
  int status;
  std::string detail;
};

/// Throws RequestError{status, detail}.
[[noreturn]] void fail(int status, std::string detail);

/// A request body: a JSON object (400 otherwise). Nesting deeper than 64 levels is
/// refused before the text is parsed (the parser recurses per level).
nlohmann::json parse_body(const std::string& text);

/// The field, or nullptr when it is absent or null.
const nlohmann::json* field(const nlohmann::json& body, const char* key);
/// A string field (fallback when absent).
std::string string_of(const nlohmann::json& body, const char* key, const std::string& fallback);
/// A boolean field into `out` (unchanged when absent).
void bind_bool(const nlohmann::json& body, const char* key, bool& out);

/// samapi's SAMBody prompts (bbox, point_coords + point_labels, b64mask,
/// multimask_output) for a model whose low-res mask side is `low_res_size`. At most
/// kMaxPoints points.
sam::SamPrompt parse_prompt(const nlohmann::json& body, int64_t low_res_size);
inline constexpr size_t kMaxPoints = 1024;

/// samapi's SAMAutoMaskBody fields into sam::AutomaskOptions (validated).
sam::AutomaskOptions parse_automask_options(const nlohmann::json& body);

/// The version GET /sam/version/ and GET /api/roots report (the project's).
std::string server_version();

}  // namespace nephroseg::serve
