#include "cluster_support.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "nephroseg/core/atomic_file.h"
#include "nephroseg/io/csv.h"
#include "support/golden.h"

namespace fs = std::filesystem;

namespace nephroseg::test::cluster {

int sh(const std::string& command, std::string* output) {
  const std::string log = temp_dir("sh") + "/out.txt";
  const int status = std::system(("(" + command + ") > '" + log + "' 2>&1").c_str());
  if (output) {
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    *output = ss.str();
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string make_workload(const std::string& dir, int targets) {
  const std::string exe = binary_dir() + "/nephroseg";
  std::string out;
  if (sh(exe + " --quiet phantom --out '" + dir + "/ph' --count " + std::to_string(targets + 1) + " --size 224", &out))
    return "";
  // The last phantom becomes the reference.
  const std::string last = "phantom_" + std::to_string(targets);
  fs::create_directories(dir + "/ref");
  fs::rename(dir + "/ph/images/" + last + ".png", dir + "/ref/image.png");
  fs::rename(dir + "/ph/masks/" + last + ".png", dir + "/ref/mask.png");
  return " --dinov2 " + shared_path("golden/models/dinov2_tiny.pth") + " --dinov2-config " +
         shared_path("golden/models/dinov2_tiny.json") + " --sam " + shared_path("golden/models/sam_tiny.pth") +
         " --sam-config " + shared_path("golden/models/sam_tiny.json") + " --reference-image " + dir +
         "/ref/image.png --reference-mask " + dir + "/ref/mask.png --target " + dir + "/ph/images --ground-truth " +
         dir + "/ph/masks";
}

std::string slurm_unavailable_reason() {
  const char* conf = std::getenv("SLURM_CONF");
  if (!conf || !*conf)
    return "no Slurm cluster here: SLURM_CONF is not set (scripts/test.sh starts a single-node cluster with "
           "scripts/slurm/local_cluster.sh; it could not, or the tests were run without it)";
  std::string out;
  if (sh("timeout 20 sinfo -h -o %T", &out) != 0) return "Slurm does not answer (sinfo failed: " + out + ")";
  if (out.find("idle") == std::string::npos && out.find("mix") == std::string::npos &&
      out.find("alloc") == std::string::npos)
    return "the Slurm node is not up (sinfo: " + out + ")";
  return "";
}

std::vector<std::string> temporaries_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (nephroseg::is_temporary_name(n)) out.push_back(n);
  }
  return out;
}

std::string compare_outputs(const std::string& a, const std::string& b, bool ignore_status) {
  int masks = 0;
  for (const auto& e : fs::directory_iterator(a)) {
    const std::string n = e.path().filename().string();
    if (n.size() < 4 || n.substr(n.size() - 4) != ".png" || n.find(".overlay.") != std::string::npos) continue;
    ++masks;
    std::ifstream fa(e.path(), std::ios::binary), fb(fs::path(b) / n, std::ios::binary);
    if (!fb.good()) return "mask " + n + " is missing in " + b;
    std::stringstream sa, sb;
    sa << fa.rdbuf();
    sb << fb.rdbuf();
    if (sa.str() != sb.str()) return "mask " + n + " differs";
  }
  if (masks == 0) return "no mask in " + a;
  const auto ra = io::read_csv(a + "/summary.csv"), rb = io::read_csv(b + "/summary.csv");
  if (ra.size() != rb.size()) return "summary.csv row counts differ";
  for (size_t i = 0; i < ra.size(); ++i) {
    if (ra[i].size() != rb[i].size()) return "summary.csv row " + std::to_string(i) + " has another width";
    for (size_t c = 0; c < ra[i].size(); ++c) {
      const std::string& col = ra[0][c];
      if (col.size() > 2 && col.substr(col.size() - 2) == "_s") continue;  // timings
      if (ignore_status && (col == "status" || col == "message") && ra[i][0] != "mean") continue;
      if (ra[i][c] != rb[i][c])
        return "summary.csv row " + std::to_string(i) + " column " + col + ": '" + ra[i][c] + "' vs '" + rb[i][c] + "'";
    }
  }
  return "";
}

}  // namespace nephroseg::test::cluster
