#include "bench_util.h"

#include <fstream>
#include <string>

namespace nephroseg::bench {

ProcessMemory process_memory() {
  std::ifstream in("/proc/self/status");
  std::string line;
  ProcessMemory m;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) m.rss = std::stoll(line.substr(6)) * 1024;
    if (line.rfind("VmHWM:", 0) == 0) m.peak = std::stoll(line.substr(6)) * 1024;
  }
  return m;
}

bool reset_peak_memory() {
  std::ofstream out("/proc/self/clear_refs");
  if (!out) return false;
  out << "5";
  out.close();
  return out.good();
}

}  // namespace nephroseg::bench
