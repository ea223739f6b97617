#include "nephroseg/io/csv.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "nephroseg/core/error.h"
#include "nephroseg/core/atomic_file.h"

namespace nephroseg::io {

std::string csv_escape(const std::string& field) {
  const bool needs = field.find_first_of(",\"\r\n") != std::string::npos ||
                     (!field.empty() && (field.front() == ' ' || field.back() == ' '));
  if (!needs) return field;
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string to_csv(const CsvRow& header, const std::vector<CsvRow>& rows) {
  std::string out;
  auto append = [&](const CsvRow& row) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (i) out += ',';
      out += csv_escape(row[i]);
    }
    out += '\n';
  };
  append(header);
  for (const auto& r : rows) append(r);
  return out;
}

void write_csv(const std::string& path, const CsvRow& header, const std::vector<CsvRow>& rows) {
  for (size_t i = 0; i < rows.size(); ++i)
    NEPHRO_CHECK(rows[i].size() == header.size(), "CSV '", path, "': row ", i, " has ",
                 rows[i].size(), " fields, header has ", header.size());
  write_file_atomically(path, to_csv(header, rows));
}

std::vector<CsvRow> parse_csv(const std::string& text) {
  std::vector<CsvRow> rows;
  CsvRow row;
  std::string field;
  bool quoted = false, field_started = false, at_start = true;
  size_t i = 0;
  auto end_field = [&] {
    row.push_back(field);
    field.clear();
    field_started = false;
    at_start = true;
  };
  while (i < text.size()) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else {
        field += c;
      }
      ++i;
      continue;
    }
    if (c == '"' && at_start) {
      quoted = true;
      field_started = true;
      at_start = false;
    } else if (c == ',') {
      end_field();
      field_started = true;  // a following empty field still counts
    } else if (c == '\n' || c == '\r') {
      end_field();
      rows.push_back(std::move(row));
      row.clear();
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      field += c;
      field_started = true;
      at_start = false;
    }
    ++i;
  }
  NEPHRO_CHECK(!quoted, "CSV: unterminated quoted field");
  if (field_started || !field.empty() || !row.empty()) {
    end_field();
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<CsvRow> read_csv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  NEPHRO_CHECK(in.good(), "cannot open CSV '", path, "'");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return parse_csv(ss.str());
  } catch (const Error& e) {
    NEPHRO_FAIL("'", path, "': ", e.what());
  }
}

std::string format_number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[40];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  return buf;
}

std::string format_fixed(double value, int decimals) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

}  // namespace nephroseg::io
