// nephroseg/io/csv.h: RFC 4180 CSV (comma separator, CRLF-free "\n" rows).
//
// A field is quoted when it contains a comma, a double quote, a line break, or
// leading/trailing spaces; quotes inside are doubled. Numbers are written with
// format_number(): shortest round-trip text, "NaN" for not-a-number, "inf"/"-inf".
#pragma once

#include <string>
#include <vector>

namespace nephroseg::io {

using CsvRow = std::vector<std::string>;

/// One field, quoted when needed.
std::string csv_escape(const std::string& field);
/// Header + rows as CSV text (every row ends with "\n").
std::string to_csv(const CsvRow& header, const std::vector<CsvRow>& rows);
/// Writes to_csv() atomically.
void write_csv(const std::string& path, const CsvRow& header, const std::vector<CsvRow>& rows);
/// Parses CSV text (quoted fields may hold commas, quotes and line breaks; "\r\n" ok).
std::vector<CsvRow> parse_csv(const std::string& text);
/// Reads and parses a CSV file (first row = header). Throws naming the file.
std::vector<CsvRow> read_csv(const std::string& path);
/// Shortest text that reads back to the same double ("%.17g" trimmed); NaN -> "NaN".
std::string format_number(double value);
/// Fixed decimals (for human-facing tables); NaN -> "NaN".
std::string format_fixed(double value, int decimals);

}  // namespace nephroseg::io
