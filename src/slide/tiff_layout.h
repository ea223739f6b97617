// slide/tiff_layout.h (internal): a TIFF's directory chain checked against the file
// before OpenSlide parses it.
//
// OpenSlide 3.4.1 reads TIFF-like files with its own parser, which allocates every tag
// value at the size the directory declares before reading it: a 5 KB file declaring a
// 3 GB ImageDescription makes it allocate 3 GB. check_tiff_layout walks the same chain
// with no allocation sized by the file and refuses what that parser would trip on.
#pragma once

#include <string>

namespace nephroseg::slide {

/// Throws nephroseg::Error naming `path` and the directory when the file (classic TIFF
/// or BigTIFF, either byte order; not a TIFF: returns at once) has a directory or an
/// out-of-line tag value that does not lie wholly inside the file, or a directory chain
/// that loops. Reads only the header and the directories, 12 or 20 bytes an entry,
/// never the values. Hamamatsu NDPI files (classic TIFF with tag 65420) of 4 GiB or
/// more store only the low 32 bits of each offset: only their first directory is
/// checked.
void check_tiff_layout(const std::string& path);

}  // namespace nephroseg::slide
