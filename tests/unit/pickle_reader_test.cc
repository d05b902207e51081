// The strict data-only pickle parser: every builtin the snapshot schema uses,
// in protocols 2 to 5, the memo, and every kind of malformed or hostile input.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "hbmalloc/error.hpp"
#include "trace/pickle_reader.h"

namespace hbmalloc::trace {
namespace {

using namespace std::string_literals;

// pickle.dumps(obj, protocol=p) by CPython 3.11, obj = {'s': 'h\u00e9llo',
// 'i': [0, 1, 255, 256, 65535, 65536, -1, -2**31, 2**31, 2**62, -2**63, 2**64-1],
// 'f': 1.5, 't1': (1,), 't2': (1, 2), 't3': (1, 2, 3), 't4': (1, 2, 3, 4),
// 'e': (), 'n': None, 'T': True, 'F': False, 'shared': [x, x]} with x = ['rep'],
// plus 'b': b'\x00\x01' from protocol 3 and 'set': {7}, 'fs': frozenset({8})
// from protocol 4 (earlier protocols pickle those through GLOBAL + REDUCE).
const std::string kProto2 = "\x80\x02\x7d\x71\x00\x28\x58\x01\x00\x00\x00\x73\x71\x01\x58\x06\x00\x00\x00\x68\xc3\xa9\x6c\x6c\x6f\x71\x02\x58\x01\x00\x00\x00\x69\x71\x03\x5d\x71\x04\x28\x4b\x00\x4b\x01\x4b\xff\x4d\x00\x01\x4d\xff\xff\x4a\x00\x00\x01\x00\x4a\xff\xff\xff\xff\x4a\x00\x00\x00\x80\x8a\x05\x00\x00\x00\x80\x00\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\x00\x65\x58\x01\x00\x00\x00\x66\x71\x05\x47\x3f\xf8\x00\x00\x00\x00\x00\x00\x58\x02\x00\x00\x00\x74\x31\x71\x06\x4b\x01\x85\x71\x07\x58\x02\x00\x00\x00\x74\x32\x71\x08\x4b\x01\x4b\x02\x86\x71\x09\x58\x02\x00\x00\x00\x74\x33\x71\x0a\x4b\x01\x4b\x02\x4b\x03\x87\x71\x0b\x58\x02\x00\x00\x00\x74\x34\x71\x0c\x28\x4b\x01\x4b\x02\x4b\x03\x4b\x04\x74\x71\x0d\x58\x01\x00\x00\x00\x65\x71\x0e\x29\x58\x01\x00\x00\x00\x6e\x71\x0f\x4e\x58\x01\x00\x00\x00\x54\x71\x10\x88\x58\x01\x00\x00\x00\x46\x71\x11\x89\x58\x06\x00\x00\x00\x73\x68\x61\x72\x65\x64\x71\x12\x5d\x71\x13\x28\x5d\x71\x14\x58\x03\x00\x00\x00\x72\x65\x70\x71\x15\x61\x68\x14\x65\x75\x2e"s;
const std::string kProto3 = "\x80\x03\x7d\x71\x00\x28\x58\x01\x00\x00\x00\x73\x71\x01\x58\x06\x00\x00\x00\x68\xc3\xa9\x6c\x6c\x6f\x71\x02\x58\x01\x00\x00\x00\x69\x71\x03\x5d\x71\x04\x28\x4b\x00\x4b\x01\x4b\xff\x4d\x00\x01\x4d\xff\xff\x4a\x00\x00\x01\x00\x4a\xff\xff\xff\xff\x4a\x00\x00\x00\x80\x8a\x05\x00\x00\x00\x80\x00\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\x00\x65\x58\x01\x00\x00\x00\x66\x71\x05\x47\x3f\xf8\x00\x00\x00\x00\x00\x00\x58\x02\x00\x00\x00\x74\x31\x71\x06\x4b\x01\x85\x71\x07\x58\x02\x00\x00\x00\x74\x32\x71\x08\x4b\x01\x4b\x02\x86\x71\x09\x58\x02\x00\x00\x00\x74\x33\x71\x0a\x4b\x01\x4b\x02\x4b\x03\x87\x71\x0b\x58\x02\x00\x00\x00\x74\x34\x71\x0c\x28\x4b\x01\x4b\x02\x4b\x03\x4b\x04\x74\x71\x0d\x58\x01\x00\x00\x00\x65\x71\x0e\x29\x58\x01\x00\x00\x00\x6e\x71\x0f\x4e\x58\x01\x00\x00\x00\x54\x71\x10\x88\x58\x01\x00\x00\x00\x46\x71\x11\x89\x58\x06\x00\x00\x00\x73\x68\x61\x72\x65\x64\x71\x12\x5d\x71\x13\x28\x5d\x71\x14\x58\x03\x00\x00\x00\x72\x65\x70\x71\x15\x61\x68\x14\x65\x58\x01\x00\x00\x00\x62\x71\x16\x43\x02\x00\x01\x71\x17\x75\x2e"s;
const std::string kProto4 = "\x80\x04\x95\xe4\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x8c\x01\x73\x94\x8c\x06\x68\xc3\xa9\x6c\x6c\x6f\x94\x8c\x01\x69\x94\x5d\x94\x28\x4b\x00\x4b\x01\x4b\xff\x4d\x00\x01\x4d\xff\xff\x4a\x00\x00\x01\x00\x4a\xff\xff\xff\xff\x4a\x00\x00\x00\x80\x8a\x05\x00\x00\x00\x80\x00\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\x00\x65\x8c\x01\x66\x94\x47\x3f\xf8\x00\x00\x00\x00\x00\x00\x8c\x02\x74\x31\x94\x4b\x01\x85\x94\x8c\x02\x74\x32\x94\x4b\x01\x4b\x02\x86\x94\x8c\x02\x74\x33\x94\x4b\x01\x4b\x02\x4b\x03\x87\x94\x8c\x02\x74\x34\x94\x28\x4b\x01\x4b\x02\x4b\x03\x4b\x04\x74\x94\x8c\x01\x65\x94\x29\x8c\x01\x6e\x94\x4e\x8c\x01\x54\x94\x88\x8c\x01\x46\x94\x89\x8c\x06\x73\x68\x61\x72\x65\x64\x94\x5d\x94\x28\x5d\x94\x8c\x03\x72\x65\x70\x94\x61\x68\x14\x65\x8c\x01\x62\x94\x43\x02\x00\x01\x94\x8c\x03\x73\x65\x74\x94\x8f\x94\x28\x4b\x07\x90\x8c\x02\x66\x73\x94\x28\x4b\x08\x91\x94\x75\x2e"s;
const std::string kProto5 = "\x80\x05\x95\xe4\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x8c\x01\x73\x94\x8c\x06\x68\xc3\xa9\x6c\x6c\x6f\x94\x8c\x01\x69\x94\x5d\x94\x28\x4b\x00\x4b\x01\x4b\xff\x4d\x00\x01\x4d\xff\xff\x4a\x00\x00\x01\x00\x4a\xff\xff\xff\xff\x4a\x00\x00\x00\x80\x8a\x05\x00\x00\x00\x80\x00\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\x00\x65\x8c\x01\x66\x94\x47\x3f\xf8\x00\x00\x00\x00\x00\x00\x8c\x02\x74\x31\x94\x4b\x01\x85\x94\x8c\x02\x74\x32\x94\x4b\x01\x4b\x02\x86\x94\x8c\x02\x74\x33\x94\x4b\x01\x4b\x02\x4b\x03\x87\x94\x8c\x02\x74\x34\x94\x28\x4b\x01\x4b\x02\x4b\x03\x4b\x04\x74\x94\x8c\x01\x65\x94\x29\x8c\x01\x6e\x94\x4e\x8c\x01\x54\x94\x88\x8c\x01\x46\x94\x89\x8c\x06\x73\x68\x61\x72\x65\x64\x94\x5d\x94\x28\x5d\x94\x8c\x03\x72\x65\x70\x94\x61\x68\x14\x65\x8c\x01\x62\x94\x43\x02\x00\x01\x94\x8c\x03\x73\x65\x74\x94\x8f\x94\x28\x4b\x07\x90\x8c\x02\x66\x73\x94\x28\x4b\x08\x91\x94\x75\x2e"s;

std::string error_of(const std::string& bytes) {
  try {
    parse_pickle(bytes, "test.pickle");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::string& bytes, const std::string& needle) {
  const std::string what = error_of(bytes);
  EXPECT_NE(what.find(needle), std::string::npos) << "error was: '" << what << "'";
  EXPECT_NE(what.find("test.pickle: "), std::string::npos) << what;
}

PickleNode at(const PickleTree& t, PickleNode dict, const char* key) {
  auto v = t.find(dict, key);
  EXPECT_TRUE(v.has_value()) << key;
  return v.value_or(0);
}

std::vector<PickleNode> items(const PickleTree& t, PickleNode n) {
  std::vector<PickleNode> out;
  for (PickleNode i : t.items(n)) out.push_back(i);
  return out;
}

std::vector<int64_t> ints(const PickleTree& t, PickleNode n) {
  std::vector<int64_t> out;
  for (PickleNode i : t.items(n)) {
    EXPECT_EQ(t.kind(i), PickleKind::kInt);
    out.push_back(t.as_int(i));
  }
  return out;
}

class EveryProtocol : public ::testing::TestWithParam<int> {};

TEST_P(EveryProtocol, BuiltinValues) {
  const int proto = GetParam();
  const std::string& bytes = proto == 2 ? kProto2 : proto == 3 ? kProto3 : proto == 4 ? kProto4 : kProto5;
  const PickleTree t = parse_pickle(bytes, "test.pickle");
  const PickleNode root = t.root();
  ASSERT_EQ(t.kind(root), PickleKind::kDict);
  EXPECT_EQ(t.as_str(at(t, root, "s")), "h\xc3\xa9llo");

  const PickleNode i = at(t, root, "i");
  ASSERT_EQ(t.kind(i), PickleKind::kList);
  const std::vector<int64_t> want = {0, 1, 255, 256, 65535, 65536, -1, INT32_MIN, 1ll << 31, 1ll << 62, INT64_MIN, -1};
  EXPECT_EQ(ints(t, i), want);
  const PickleNode big = items(t, i).back();
  EXPECT_TRUE(t.is_big_uint(big));
  EXPECT_EQ(t.as_uint(big), UINT64_MAX);
  EXPECT_FALSE(t.is_big_uint(items(t, i)[6]));

  EXPECT_EQ(t.kind(at(t, root, "f")), PickleKind::kFloat);
  EXPECT_EQ(t.as_float(at(t, root, "f")), 1.5);
  EXPECT_EQ(t.size(at(t, root, "s")), 0u);  // a scalar has no items, whatever its payload
  EXPECT_TRUE(items(t, at(t, root, "s")).empty());
  EXPECT_EQ(ints(t, at(t, root, "t1")), (std::vector<int64_t>{1}));
  EXPECT_EQ(ints(t, at(t, root, "t2")), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(ints(t, at(t, root, "t3")), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(ints(t, at(t, root, "t4")), (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(t.kind(at(t, root, "t4")), PickleKind::kTuple);
  EXPECT_EQ(t.size(at(t, root, "e")), 0u);
  EXPECT_EQ(t.kind(at(t, root, "n")), PickleKind::kNone);
  EXPECT_EQ(t.kind(at(t, root, "T")), PickleKind::kBool);
  EXPECT_TRUE(t.as_bool(at(t, root, "T")));
  EXPECT_FALSE(t.as_bool(at(t, root, "F")));

  // The memo makes both elements one node, as Python makes them one object.
  const auto shared = items(t, at(t, root, "shared"));
  ASSERT_EQ(shared.size(), 2u);
  EXPECT_EQ(shared[0], shared[1]);
  EXPECT_EQ(t.as_str(items(t, shared[0]).at(0)), "rep");

  if (proto >= 3) {
    EXPECT_EQ(t.kind(at(t, root, "b")), PickleKind::kBytes);
    EXPECT_EQ(t.as_str(at(t, root, "b")), "\x00\x01"s);
  }
  if (proto >= 4) {
    EXPECT_EQ(t.kind(at(t, root, "set")), PickleKind::kSet);
    EXPECT_EQ(ints(t, at(t, root, "set")), (std::vector<int64_t>{7}));
    EXPECT_EQ(t.kind(at(t, root, "fs")), PickleKind::kFrozenSet);
    EXPECT_EQ(ints(t, at(t, root, "fs")), (std::vector<int64_t>{8}));
  }
  // Dict keys keep their order.
  std::vector<std::string> keys;
  t.for_each_pair(root, [&](PickleNode k, PickleNode) { keys.emplace_back(t.as_str(k)); });
  EXPECT_EQ(keys.at(0), "s");
  EXPECT_EQ(keys.at(1), "i");
  EXPECT_FALSE(t.find(root, "missing").has_value());
}

TEST_P(EveryProtocol, EveryTruncationIsAnError) {
  const int proto = GetParam();
  const std::string& bytes = proto == 2 ? kProto2 : proto == 3 ? kProto3 : proto == 4 ? kProto4 : kProto5;
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_NE(error_of(bytes.substr(0, n)), "") << "prefix " << n;
}

INSTANTIATE_TEST_SUITE_P(Protocols, EveryProtocol, ::testing::Values(2, 3, 4, 5));

TEST(PickleReader, ItemsInSeveralRuns) {
  // [1, 2] then APPENDS 3 then APPEND 4: one list, items in order.
  const PickleTree t = parse_pickle("\x80\x02](K\x01K\x02" "e(K\x03" "eK\x04" "a."s, "test.pickle");
  EXPECT_EQ(ints(t, t.root()), (std::vector<int64_t>{1, 2, 3, 4}));
  EXPECT_EQ(t.size(t.root()), 4u);
  // SETITEM and SETITEMS on one dict; DICT and LIST built from a MARK.
  const PickleTree d = parse_pickle("\x80\x02(}K\x01K\x02s(K\x03K\x04u(K\x05K\x06" "d(K\x07lt."s, "test.pickle");
  const auto parts = items(d, d.root());
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(d.kind(parts[0]), PickleKind::kDict);
  EXPECT_EQ(ints(d, parts[0]), (std::vector<int64_t>{1, 2, 3, 4}));  // keys and values in order
  EXPECT_EQ(d.size(parts[0]), 2u);
  EXPECT_EQ(ints(d, parts[1]), (std::vector<int64_t>{5, 6}));
  EXPECT_EQ(d.kind(parts[2]), PickleKind::kList);
  EXPECT_EQ(ints(d, parts[2]), (std::vector<int64_t>{7}));
}

TEST(PickleReader, StackOps) {
  // DUP, POP, POP_MARK, BINPUT / LONG_BINPUT / BINGET / LONG_BINGET.
  const PickleTree t =
      parse_pickle("\x80\x02K\x05\x32\x86q\x01(K\x01K\x02\x31Nr\x03\x00\x00\x00\x30h\x01\x30j\x03\x00\x00\x00\x86."s, "t");
  const auto top = items(t, t.root());
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(ints(t, top[0]), (std::vector<int64_t>{5, 5}));
  EXPECT_EQ(t.kind(top[1]), PickleKind::kNone);
}

TEST(PickleReader, StringsAndBytesOpcodes) {
  const std::string bytes =  // the tree points into it: it must outlive the tree
      "\x80\x04(\x8c\x01" "a" "X\x01\x00\x00\x00" "b" "\x8d\x01\x00\x00\x00\x00\x00\x00\x00" "c" "U\x01" "d" "T\x01\x00\x00\x00" "e"
      "C\x01" "f" "B\x01\x00\x00\x00g" "\x8e\x01\x00\x00\x00\x00\x00\x00\x00h" "\x96\x01\x00\x00\x00\x00\x00\x00\x00i" "l."s;
  const PickleTree t = parse_pickle(bytes, "t");
  std::string joined;
  std::vector<PickleKind> kinds;
  for (PickleNode n : t.items(t.root())) {
    joined += t.as_str(n);
    kinds.push_back(t.kind(n));
  }
  EXPECT_EQ(joined, "abcdefghi");
  EXPECT_EQ(kinds[0], PickleKind::kStr);
  EXPECT_EQ(kinds[2], PickleKind::kStr);
  EXPECT_EQ(kinds[3], PickleKind::kBytes);
  EXPECT_EQ(kinds[8], PickleKind::kBytes);
}

TEST(PickleReader, LongIntegers) {
  EXPECT_EQ(parse_pickle("\x80\x02\x8a\x00."s, "t").as_int(0 + 3), 0);  // LONG1 of no bytes is 0
  const PickleTree neg = parse_pickle("\x80\x02\x8b\x02\x00\x00\x00\x00\xff."s, "t");  // LONG4, 2 bytes
  EXPECT_EQ(neg.as_int(neg.root()), -256);
  const PickleTree nonminimal = parse_pickle("\x80\x02\x8a\x0a\xfe\xff\xff\xff\xff\xff\xff\xff\xff\xff."s, "t");
  EXPECT_EQ(nonminimal.as_int(nonminimal.root()), -2);
  expect_error("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01."s, "integer wider than 64 bits at offset 2");
  expect_error("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\xff."s, "integer wider than 64 bits");
  expect_error("\x80\x02\x8b\xff\xff\xff\xff."s, "negative LONG4 length");
}

TEST(PickleReader, SelfContainingListDoesNotHang) {
  // l = []; l.append(l): the memo lets a list hold itself.
  const PickleTree t = parse_pickle("\x80\x04]\x94h\x00" "a."s, "t");
  const auto inner = items(t, t.root());
  ASSERT_EQ(inner.size(), 1u);
  EXPECT_EQ(inner[0], t.root());
}

TEST(PickleReader, DeepNestingWithoutMarksCostsNoStack) {
  std::string deep = "\x80\x02N"s + std::string(1'000'000, '\x85') + ".";  // ((((None,),),)...)
  const PickleTree t = parse_pickle(deep, "t");
  PickleNode n = t.root();
  for (int i = 0; i < 1'000'000; ++i) n = *t.items(n).begin();  // an iterative walk to the bottom
  EXPECT_EQ(t.kind(n), PickleKind::kNone);
}

TEST(PickleReader, TooManyMarks) {
  expect_error("\x80\x02"s + std::string(20'000, '(') + ".", "nesting deeper than 10000");
}

TEST(PickleReader, RefusedOpcodesNameThemselves) {
  // The classic: os.system('ls') in protocol 2 ...
  expect_error("\x80\x02\x63os\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03."s,
               "unsupported opcode 0x63 GLOBAL at offset 2");
  // ... and in protocol 4, STACK_GLOBAL then REDUCE.
  expect_error("\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c\x02ls\x94\x85\x94R\x94."s,
               "unsupported opcode 0x93 STACK_GLOBAL at offset 25");
  expect_error("\x80\x04(tR."s, "unsupported opcode 0x52 REDUCE at offset 4");
  const std::vector<std::pair<char, std::string>> refused = {
      {'b', "BUILD"},        {'i', "INST"},        {'o', "OBJ"},         {'\x81', "NEWOBJ"},
      {'\x92', "NEWOBJ_EX"}, {'P', "PERSID"},      {'Q', "BINPERSID"},   {'\x82', "EXT1"},
      {'\x83', "EXT2"},      {'\x84', "EXT4"},     {'\x97', "NEXT_BUFFER"}, {'\x98', "READONLY_BUFFER"}};
  for (const auto& [op, name] : refused) expect_error("\x80\x05"s + op + ".", name + " at offset 2");
}

TEST(PickleReader, TextOpcodesAndUnknownBytesAreUnsupported) {
  for (char op : {'I', 'F', 'S', 'V', 'L', 'g', 'p'}) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", op);
    expect_error("\x80\x02"s + op + "1\n.", std::string("unsupported opcode ") + hex + " at offset 2");
  }
  expect_error("\x80\x02\xff."s, "unsupported opcode 0xff at offset 2");
}

TEST(PickleReader, ProtocolsOutsideTwoToFive) {
  expect_error("\x80\x01N."s, "protocol 1 is not supported");
  expect_error("\x80\x06N."s, "protocol 6 is not supported");
  expect_error("N."s, "not a pickle of protocol 2 to 5");
  expect_error(""s, "not a pickle of protocol 2 to 5");
}

TEST(PickleReader, MalformedStacks) {
  expect_error("\x80\x02" "a."s, "stack underflow");
  expect_error("\x80\x02]K\x01(a."s, "stack underflow");  // APPEND cannot reach below a MARK
  expect_error("\x80\x02" "e."s, "no MARK");
  expect_error("\x80\x02(."s, "STOP at offset 3 leaves 0 items and 1 marks");
  expect_error("\x80\x02NN."s, "leaves 2 items");
  expect_error("\x80\x02."s, "leaves 0 items");
  expect_error("\x80\x02\x30."s, "stack underflow");
  expect_error("\x80\x02\x32."s, "stack underflow");
  expect_error("\x80\x02\x86."s, "stack underflow");
  expect_error("\x80\x02(K\x01K\x02u."s, "stack underflow");  // SETITEMS needs a dict below the MARK
  expect_error("\x80\x02}(K\x01u."s, "odd number of items");
  expect_error("\x80\x02(K\x01" "d."s, "odd number of items");
  expect_error("\x80\x02N"s, "no STOP opcode");
}

TEST(PickleReader, WrongContainers) {
  expect_error("\x80\x02NNa."s, "APPEND into a None, not a list");
  expect_error("\x80\x02]NNs."s, "SETITEM into a list, not a dict");
  expect_error("\x80\x02)(K\x01" "e."s, "APPENDS into a tuple, not a list");
  expect_error("\x80\x04}(K\x01\x90."s, "ADDITEMS into a dict, not a set");
}

TEST(PickleReader, MemoOutOfRange) {
  expect_error("\x80\x02h\x05."s, "memo index 5 was never stored");
  expect_error("\x80\x02j\xff\xff\xff\xff."s, "memo index 4294967295 was never stored");
  expect_error("\x80\x02Nr\xff\xff\xff\xff."s, "memo index 4294967295 out of range");
  expect_error("\x80\x02q\x00."s, "stack underflow");
}

TEST(PickleReader, LengthsBeyondTheBuffer) {
  expect_error("\x80\x02X\xff\xff\xff\x7f" "ab."s, "truncated pickle");
  expect_error("\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xff" "ab."s, "truncated pickle");
  expect_error("\x80\x04\x8e\x00\x00\x00\x00\x00\x00\x00\x80" "ab."s, "truncated pickle");
  expect_error("\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\xff" "N."s, "truncated pickle");
  expect_error("\x80\x02T\xff\xff\xff\xff" "ab."s, "negative BINSTRING length");
  expect_error("\x80\x02\x8b\x00\x00\x00\x40."s, "truncated pickle");
}

TEST(PickleReader, TrailingBytesAfterStopAreIgnored) {
  const PickleTree t = parse_pickle("\x80\x02K\x07.garbage"s, "t");
  EXPECT_EQ(t.as_int(t.root()), 7);
}

TEST(PickleReader, RandomBytesGiveAValueOrAnError) {
  std::mt19937_64 rng(42);
  size_t parsed = 0;
  for (int round = 0; round < 20'000; ++round) {
    std::string bytes = "\x80\x04"s;
    const size_t n = rng() % 64;
    for (size_t i = 0; i < n; ++i) {
      // Mostly opcodes this reader knows, so runs get past the first byte.
      static const char kOps[] = "(.012JKMNGTUXBCae}]dlt)suhjqr\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8f\x90\x91\x94\x95";
      bytes += (rng() % 4 == 0) ? static_cast<char>(rng()) : kOps[rng() % (sizeof kOps - 1)];
    }
    try {
      parse_pickle(bytes, "t");
      ++parsed;
    } catch (const Error&) {
    }
  }
  // The generator must reach both outcomes, or it tests only one path.
  EXPECT_GT(parsed, 0u);
  EXPECT_LT(parsed, 20'000u);
}

}  // namespace
}  // namespace hbmalloc::trace
