// Hostile checkpoints: pickles and zip archives built byte by byte (opcodes and
// headers written out here, never produced by the code under test) that used to hang,
// exhaust memory, leak or reach undefined behaviour. Each must give one clear error
// line (or a defined result) in well under a second and a bounded amount of memory.
#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ctime>
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <string>

#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/core/error.h"
#include "support/golden.h"

using namespace nephroseg;
using namespace nephroseg::checkpoint;

namespace {

constexpr double kMaxSeconds = 1.0;
constexpr long kMaxExtraRssKb = 100 * 1024;  // 100 MB

// Little-endian bytes of v.
std::string le(uint64_t v, int n) {
  std::string s;
  for (int k = 0; k < n; ++k) s += static_cast<char>((v >> (8 * k)) & 0xff);
  return s;
}

// A string literal with its embedded NUL bytes.
template <size_t N>
std::string B(const char (&s)[N]) {
  return std::string(s, N - 1);
}

const std::string kProto = B("\x80\x02");
const std::string kStop = ".";

struct Outcome {
  std::string error;  // empty when it parsed
  double seconds = 0;  // CPU time of this thread
};

// This thread's CPU time: the bound holds however loaded the machine is (the build
// machines run several builds at once), and a hang still shows.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

Outcome run(const std::function<void()>& fn) {
  Outcome o;
  const double t0 = thread_cpu_seconds();
  try {
    fn();
  } catch (const Error& e) {
    o.error = e.what();
  }
  o.seconds = thread_cpu_seconds() - t0;
  return o;
}

Outcome unpickle(const std::string& pickle, const std::map<std::string, std::string>& records = {}) {
  return run([&] { unpickle_memory(pickle.data(), pickle.size(), records, "test pickle"); });
}

// Peak resident memory added by fn, measured in a child process (fork + wait4), so
// that the test process's own high-water mark does not hide it.
long extra_rss_kb(const std::function<void()>& fn) {
  long base_kb = 0;
  {
    std::ifstream statm("/proc/self/statm");
    long pages_total = 0, pages_resident = 0;
    statm >> pages_total >> pages_resident;
    base_kb = pages_resident * (sysconf(_SC_PAGESIZE) / 1024);
  }
  const pid_t pid = fork();
  if (pid == 0) {
    try {
      fn();
    } catch (...) {
    }
    _exit(0);
  }
  int status = 0;
  struct rusage ru {};
  if (wait4(pid, &status, 0, &ru) != pid) return -1;
  return ru.ru_maxrss - base_kb;
}

void expect_one_line(const std::string& msg) {
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_EQ(msg.find("enforce fail"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("stoll"), std::string::npos) << msg;
}

// The persistent id ('storage', torch.FloatStorage, key, 'cpu', numel) and a
// _rebuild_tensor_v2(storage, offset, sizes, strides, False, OrderedDict()) call.
std::string tensor_pickle(int64_t numel, int64_t offset, const std::vector<int64_t>& sizes,
                          const std::vector<int64_t>& strides) {
  auto int64 = [](int64_t v) { return std::string("\x8a\x08", 2) + le(static_cast<uint64_t>(v), 8); };
  auto tuple = [&](const std::vector<int64_t>& v) {
    std::string s = "(";
    for (int64_t x : v) s += int64(x);
    return s + "t";
  };
  std::string p = kProto;
  p += "ctorch._utils\n_rebuild_tensor_v2\n";
  p += "(";                                       // args
  p += B("(X\x07\x00\x00\x00storage");               // pid tuple
  p += "ctorch\nFloatStorage\n";
  p += B("X\x01\x00\x00\x00") + "0" + B("X\x03\x00\x00\x00") + "cpu";
  p += int64(numel) + "tQ";
  p += int64(offset) + tuple(sizes) + tuple(strides);
  p += "\x89" "ccollections\nOrderedDict\n)R";
  p += "tR.";
  return p;
}

// CRC-32 (IEEE 802.3), bit by bit.
uint32_t crc32(const std::string& data) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

// A minimal zip archive written header by header (APPNOTE 4.3.7, 4.3.12, 4.3.16).
std::string make_zip(const std::vector<std::pair<std::string, std::string>>& entries,
                     uint16_t method = 0) {
  std::string out, cd;
  for (const auto& [name, data] : entries) {
    const uint32_t offset = static_cast<uint32_t>(out.size());
    const std::string common = le(20, 2) + le(0, 2) + le(method, 2) + le(0, 2) + le(0, 2) +
                               le(crc32(data), 4) + le(data.size(), 4) + le(data.size(), 4) +
                               le(name.size(), 2) + le(0, 2);
    out += le(0x04034b50, 4) + common + name + data;
    cd += le(0x02014b50, 4) + le(20, 2) + common + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 4) +
          le(offset, 4) + name;
  }
  const uint32_t cd_offset = static_cast<uint32_t>(out.size());
  out += cd;
  out += le(0x06054b50, 4) + le(0, 2) + le(0, 2) + le(entries.size(), 2) +
         le(entries.size(), 2) + le(cd.size(), 4) + le(cd_offset, 4) + le(0, 2);
  return out;
}

}  // namespace

TEST(Hostile, MemoSlotNearTwoToThe28IsHandledInMillisecondsAndKilobytes) {
  // EMPTY_LIST, LONG_BINPUT 2^28 - 1, STOP: a valid pickle that used to resize the memo
  // to 2^28 slots (17 s, 4.4 GB).
  const std::string p = kProto + "]r" + le((1u << 28) - 1, 4) + kStop;
  Outcome o = unpickle(p);
  EXPECT_EQ(o.error, "");
  EXPECT_LT(o.seconds, kMaxSeconds);
  EXPECT_LT(extra_rss_kb([&] { unpickle(p); }), kMaxExtraRssKb);
  // Padded to 247 bytes like the reported file, with more high slots.
  std::string padded = kProto + "]";
  for (uint32_t k = 0; padded.size() + 6 < 247; ++k) padded += "r" + le(0x0FFFFFFFu - k, 4);
  padded += kStop;
  EXPECT_EQ(unpickle(padded).error, "");
  // A GET of a slot never stored is an error naming it.
  Outcome get = unpickle(kProto + "j" + le(12345, 4) + kStop);
  EXPECT_NE(get.error.find("memo 12345 was never stored"), std::string::npos) << get.error;
}

TEST(Hostile, RepeatedlyDuplicatedTupleIsRefusedFastWithBoundedMemory) {
  // EMPTY_TUPLE, then 100 x (DUP, TUPLE2): t = (t, t), a DAG of 2^100 tree nodes.
  std::string p = kProto + ")";
  for (int k = 0; k < 100; ++k) p += "2\x86";
  p += kStop;
  ASSERT_LT(p.size(), 442u + 1);
  Outcome o = unpickle(p);
  EXPECT_NE(o.error.find("too many objects"), std::string::npos) << o.error;
  EXPECT_NE(o.error.find("test pickle"), std::string::npos) << o.error;
  expect_one_line(o.error);
  EXPECT_LT(o.seconds, kMaxSeconds);
  EXPECT_LT(extra_rss_kb([&] { unpickle(p); }), kMaxExtraRssKb);
  // A few levels of sharing are fine: ((), ()) twice shared -> 7 values.
  Outcome small = unpickle(kProto + ")2\x86" "2\x86" + kStop);
  EXPECT_EQ(small.error, "");
}

TEST(Hostile, TextNumbersThatAreNotNumbersGiveOurOwnError) {
  struct Case {
    std::string pickle, expect;
  };
  const std::vector<Case> cases = {
      {kProto + "Iabc\n.", "text integer 'abc' is not a 64-bit number"},
      {kProto + "I99999999999999999999\n.", "is not a 64-bit number"},
      {kProto + "L12x3L\n.", "text integer '12x3'"},
      {kProto + "I\n.", "text integer ''"},
      {kProto + "Fnot-a-float\n.", "text float 'not-a-float' is not a number"},
      {kProto + "F1.5e\n.", "text float"},
      {kProto + "]pzz\n.", "PUT index 'zz' is not a number"},
      {kProto + "]p-1\n.", "PUT index '-1'"},
      {kProto + "g1e3\n.", "GET index '1e3'"},
  };
  for (const auto& c : cases) {
    Outcome o = unpickle(c.pickle);
    EXPECT_NE(o.error.find(c.expect), std::string::npos) << c.pickle << " -> " << o.error;
    EXPECT_NE(o.error.find("corrupt pickle"), std::string::npos) << o.error;
    expect_one_line(o.error);
  }
  // Real text numbers still parse.
  Value v = unpickle_memory("I-42\n.", 6, {}, "t");
  EXPECT_EQ(v.i, -42);
  v = unpickle_memory("F0.25\n.", 7, {}, "t");
  EXPECT_DOUBLE_EQ(v.f, 0.25);
  v = unpickle_memory("I01\n.", 5, {}, "t");
  EXPECT_EQ(v.kind, Value::Kind::kBool);
  EXPECT_TRUE(v.b);
}

TEST(Hostile, CyclesAreRejected) {
  // A list that contains itself: EMPTY_LIST, DUP, APPEND.
  Outcome self = unpickle(kProto + "]2a" + kStop);
  EXPECT_NE(self.error.find("inside itself"), std::string::npos) << self.error;
  // Two lists that contain each other: l1 = [], l2 = [], l1.append(l2), l2.append(l1).
  Outcome two = unpickle(kProto + B("]q\x00]q\x01") + "a" + B("h\x01h\x00") + "a" + kStop);
  EXPECT_NE(two.error.find("already stored in another"), std::string::npos) << two.error;
  // A dict that holds itself as a value.
  Outcome dict = unpickle(kProto + B("}q\x00X\x01\x00\x00\x00kh\x00s") + kStop);
  EXPECT_NE(dict.error.find("inside itself"), std::string::npos) << dict.error;
  for (const auto* o : {&self, &two, &dict}) expect_one_line(o->error);
  // Sharing without a cycle is fine: [l, l] for one l = [1].
  const std::string shared = kProto + B("]q\x00K\x01") + "a" + "](" +
                             B("h\x00h\x00") + "e.";
  Value v = unpickle_memory(shared.data(), shared.size(), {}, "t");
  ASSERT_EQ(v.items.size(), 2u);
  EXPECT_EQ(v.items[1].items[0].i, 1);
}

TEST(Hostile, DeepNestingIsRefusedBeforeTheStackOverflows) {
  // 100000 empty lists, each appended into the one below it: nesting 100000.
  std::string p = kProto;
  for (int k = 0; k < 100000; ++k) p += "]";
  for (int k = 0; k < 99999; ++k) p += "a";
  p += kStop;
  Outcome o = unpickle(p);
  EXPECT_NE(o.error.find("nesting deeper than 200"), std::string::npos) << o.error;
  EXPECT_LT(o.seconds, kMaxSeconds);
  // 150 levels are fine.
  std::string ok = kProto;
  for (int k = 0; k < 150; ++k) ok += "]";
  for (int k = 0; k < 149; ++k) ok += "a";
  ok += kStop;
  EXPECT_EQ(unpickle(ok).error, "");
}

TEST(Hostile, ManyDictKeysStayLinear) {
  // 50000 distinct keys in one SETITEMS (the quadratic key search took 1.25e9 string
  // comparisons).
  std::string p = kProto + "}(";
  char key[16];
  for (int k = 0; k < 50000; ++k) {
    std::snprintf(key, sizeof key, "k%06d", k);
    p += std::string("U\x07", 2) + key + "N";
  }
  p += "u" + B("X\x07\x00\x00\x00k000007K\x05s") + kStop;  // and one replacement
  Value v;
  Outcome o = run([&] { v = unpickle_memory(p.data(), p.size(), {}, "t"); });
  ASSERT_EQ(o.error, "");
  EXPECT_LT(o.seconds, kMaxSeconds);
  ASSERT_EQ(v.entries.size(), 50000u);
  EXPECT_EQ(v.entries[7].second.i, 5);
}

TEST(Hostile, TensorViewsAreCheckedWithoutOverflow) {
  const std::map<std::string, std::string> records = {{"0", std::string(16, '\0')}};  // 4 floats
  // A valid 2x2 view.
  Value ok = unpickle_memory(tensor_pickle(4, 0, {2, 2}, {2, 1}).data(),
                             tensor_pickle(4, 0, {2, 2}, {2, 1}).size(), records, "t");
  ASSERT_EQ(ok.kind, Value::Kind::kTensor);
  EXPECT_EQ(ok.tensor.sizes(), (std::vector<int64_t>{2, 2}));
  // (size - 1) * stride overflows int64: used to wrap and pass the bounds check.
  Outcome span = unpickle(tensor_pickle(4, 0, {3, 2}, {int64_t(1) << 62, 1}), records);
  EXPECT_NE(span.error.find("overflows"), std::string::npos) << span.error;
  // The element count overflows int64 (strides 0 address only element 0).
  Outcome count = unpickle(tensor_pickle(4, 0, {int64_t(1) << 40, int64_t(1) << 40}, {0, 0}), records);
  EXPECT_NE(count.error.find("overflows"), std::string::npos) << count.error;
  // More elements than the storage holds (an expanded view) and out-of-range views.
  Outcome expanded = unpickle(tensor_pickle(4, 0, {1000, 4}, {0, 1}), records);
  EXPECT_NE(expanded.error.find("exceeds its storage"), std::string::npos) << expanded.error;
  Outcome past = unpickle(tensor_pickle(4, 3, {2}, {1}), records);
  EXPECT_NE(past.error.find("exceeds its storage"), std::string::npos) << past.error;
  Outcome negative = unpickle(tensor_pickle(4, -1, {1}, {1}), records);
  EXPECT_NE(negative.error.find("negative storage offset"), std::string::npos) << negative.error;
  // numel * element size overflows: used to wrap to a small byte count.
  Outcome numel = unpickle(tensor_pickle(int64_t(1) << 62, 0, {1}, {1}), records);
  EXPECT_NE(numel.error.find("impossible size"), std::string::npos) << numel.error;
  // The storage record is smaller than declared: refused before reading it.
  Outcome small = unpickle(tensor_pickle(5, 0, {5}, {1}), records);
  EXPECT_NE(small.error.find("holds 16 bytes, expected 20"), std::string::npos) << small.error;
  for (const auto* o : {&span, &count, &expanded, &past, &negative, &numel, &small}) {
    expect_one_line(o->error);
  }
}

TEST(Hostile, ArchiveStoragesAreCheckedAgainstTheirRecords) {
  const std::string dir = test::temp_dir("hostile_archive");
  const std::string path = dir + "/huge_numel.pth";
  {
    caffe2::serialize::PyTorchStreamWriter writer(path);
    const std::string p = tensor_pickle(int64_t(1) << 40, 0, {1}, {1});  // 4 TB declared
    writer.writeRecord("data.pkl", p.data(), p.size());
    writer.writeRecord("data/0", std::string(16, '\0').data(), 16);
    writer.writeEndOfFile();
  }
  Outcome o = run([&] { load_pickle_file(path); });
  EXPECT_NE(o.error.find("huge_numel.pth"), std::string::npos) << o.error;
  EXPECT_NE(o.error.find("holds 16 bytes, expected 4398046511104"), std::string::npos) << o.error;
  EXPECT_LT(o.seconds, kMaxSeconds);
  EXPECT_LT(extra_rss_kb([&] { load_pickle_file(path); }), kMaxExtraRssKb);
}

TEST(Hostile, ZipLayerErrorsAreOurOwnLines) {
  const std::string pickle = kProto + "}" + kStop;
  // No "version" record: refused before LibTorch's reader (whose constructor would
  // throw an enforce failure and leak its zip state).
  const std::string no_version = make_zip({{"archive/data.pkl", pickle}});
  Outcome a = run([&] { load_pickle_memory(no_version.data(), no_version.size(), "checkpoint 'nv.pth'"); });
  EXPECT_NE(a.error.find("checkpoint 'nv.pth'"), std::string::npos) << a.error;
  EXPECT_NE(a.error.find("no version record"), std::string::npos) << a.error;
  expect_one_line(a.error);
  const std::string version99 = make_zip({{"archive/data.pkl", pickle}, {"archive/version", "99\n"}});
  Outcome v99 = run([&] { load_pickle_memory(version99.data(), version99.size(), "checkpoint 'v.pth'"); });
  EXPECT_NE(v99.error.find("unsupported checkpoint format version"), std::string::npos) << v99.error;
  // A storage record whose local header is broken: LibTorch's reader throws a
  // c10::Error, which becomes our own line naming the file.
  std::string broken = make_zip({{"archive/data.pkl", tensor_pickle(1, 0, {1}, {1})},
                                 {"archive/data/0", std::string(4, '\0')},
                                 {"archive/version", "3\n"}});
  const size_t local = broken.find("archive/data/0") - 30;
  ASSERT_EQ(broken.compare(local, 4, B("PK\x03\x04")), 0);
  broken[local + 2] = 'X';
  Outcome c10 = run([&] { load_pickle_memory(broken.data(), broken.size(), "checkpoint 'c.pth'"); });
  EXPECT_NE(c10.error.find("checkpoint 'c.pth' is corrupt ("), std::string::npos) << c10.error;
  EXPECT_EQ(c10.error.find("inline_container"), std::string::npos) << c10.error;
  EXPECT_EQ(c10.error.find("enforce fail"), std::string::npos) << c10.error;
  expect_one_line(c10.error);
  // A compressed (deflate) record: could declare any size, refused by name.
  const std::string deflated =
      make_zip({{"archive/data.pkl", pickle}, {"archive/version", "3\n"}}, /*method=*/8);
  Outcome b = run([&] { load_pickle_memory(deflated.data(), deflated.size(), "checkpoint 'z.pth'"); });
  EXPECT_NE(b.error.find("zip record 'data.pkl' is compressed"), std::string::npos) << b.error;
  // A record claiming more bytes than the file has.
  std::string lying = make_zip({{"archive/data.pkl", pickle}, {"archive/version", "3\n"}});
  const size_t cd = lying.find(std::string("PK\x01\x02", 4));
  lying.replace(cd + 20, 8, le(1u << 30, 4) + le(1u << 30, 4));
  Outcome c = run([&] { load_pickle_memory(lying.data(), lying.size(), "checkpoint 'l.pth'"); });
  EXPECT_NE(c.error.find("does not fit"), std::string::npos) << c.error;
  // Truncated central directory, garbage after the magic, nothing at all.
  for (const std::string& bad : {no_version.substr(0, no_version.size() - 10),
                                 std::string("PK\x03\x04", 4) + std::string(100, 'x'),
                                 std::string()}) {
    Outcome d = run([&] { load_pickle_memory(bad.data(), bad.size(), "checkpoint 'b.pth'"); });
    EXPECT_NE(d.error.find("checkpoint 'b.pth'"), std::string::npos) << d.error;
    expect_one_line(d.error);
  }
  // A well-formed archive made here is read.
  const std::string good = make_zip({{"archive/data.pkl", kProto + "K\x07."}, {"archive/version", "3\n"}});
  Value v = load_pickle_memory(good.data(), good.size(), "checkpoint 'g.pth'");
  EXPECT_EQ(v.i, 7);
}

TEST(Hostile, MemoryEntryPointReadsWhatTheFileReaderReads) {
  const std::string dir = test::temp_dir("hostile_memory");
  StateDict sd;
  sd.insert("w", at::arange(6, at::kFloat).view({2, 3}));
  save_state_dict(dir + "/m.pth", sd);
  std::ifstream in(dir + "/m.pth", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Value v = load_pickle_memory(bytes.data(), bytes.size(), "checkpoint 'm.pth'");
  StateDict got = state_dict_from_value(v, "m");
  ASSERT_TRUE(got.contains("w"));
  EXPECT_TRUE(at::equal(got.at("w"), at::arange(6, at::kFloat).view({2, 3})));
}
