// `nephroseg serve` request bodies -> parameters (serve/request.h): the JSON text
// through parse_body, then samapi's prompt fields (bbox, point_coords, point_labels,
// b64mask: base64 -> PNG/JPEG header -> decode, multimask_output) for a 16 x 16
// low-res mask, and the automask fields into sam::AutomaskOptions (validated). A
// RequestError (the server's 4xx answer) or nephroseg::Error is the expected outcome
// of bad input; anything else aborts.
#include "fuzz_util.h"
#include "serve/request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  nephroseg::fuzz::expect_only_our_errors([&] {
    try {
      const nlohmann::json body = nephroseg::serve::parse_body(text);
      try {
        (void)nephroseg::serve::parse_prompt(body, 16);
      } catch (const nephroseg::serve::RequestError&) {
      }
      (void)nephroseg::serve::parse_automask_options(body);
    } catch (const nephroseg::serve::RequestError& e) {
      if (e.status < 400 || e.status > 499 || e.detail.empty()) std::abort();  // only 4xx with our words
    }
  });
  return 0;
}
