// nephroseg/core/file_hash.h: a fast content fingerprint of a file (not cryptographic),
// for recognising that a cached result was made from the same checkpoint or image.
//
//   std::string h = file_fingerprint("sam_vit_l.pth");  // "size:hex64", e.g. "1249524607:9f3c..."
//
// 64-bit multiply-rotate hash over the whole file in 1 MiB reads (several GB/s), prefixed
// with the byte size. Throws nephroseg::Error when the file cannot be read.
#pragma once

#include <string>

namespace nephroseg {

std::string file_fingerprint(const std::string& path);

/// The same hash of a string (e.g. a JSON config's text).
std::string text_fingerprint(const std::string& text);

}  // namespace nephroseg
