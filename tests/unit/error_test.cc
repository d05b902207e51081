// Unit tests for include/hbmalloc/error.hpp (allocator/core/error.cc).
#include "hbmalloc/error.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace hbmalloc {
namespace {

const std::vector<ErrorCode> kAllCodes = {
    ErrorCode::kInvalidArgument, ErrorCode::kConfig,        ErrorCode::kOutOfMemory, ErrorCode::kDoubleFree,
    ErrorCode::kUnknownPointer,  ErrorCode::kSizeMismatch, ErrorCode::kBackend,     ErrorCode::kInvariant,
};

TEST(ErrorTest, EveryCodeHasADistinctNonEmptyName) {
  std::set<std::string> names;
  for (ErrorCode code : kAllCodes) {
    const char* name = error_code_name(code);
    ASSERT_NE(name, nullptr) << "code " << int(code);
    EXPECT_GT(std::strlen(name), 0u) << "code " << int(code);
    // The fallback for out-of-range values must not be any code's name.
    EXPECT_STRNE(name, "error") << "code " << int(code) << " has the fallback name";
    EXPECT_TRUE(names.insert(name).second) << "code " << int(code) << " repeats the name '" << name << "'";
  }
  EXPECT_EQ(names.size(), kAllCodes.size());
  // The enumerators are consecutive from 0, so this list is complete up to
  // the last one (a value past it gets the fallback).
  EXPECT_EQ(int(kAllCodes.back()), int(kAllCodes.size()) - 1);
  EXPECT_STREQ(error_code_name(static_cast<ErrorCode>(int(kAllCodes.size()))), "error");
}

TEST(ErrorTest, WhatStartsWithTheCodeName) {
  for (ErrorCode code : kAllCodes) {
    Error e(code, "something went wrong: 42");
    std::string what = e.what();
    std::string name = error_code_name(code);
    EXPECT_EQ(what.rfind(name, 0), 0u) << "'" << what << "' does not start with '" << name << "'";
    EXPECT_EQ(what, name + ": something went wrong: 42");
  }
}

TEST(ErrorTest, CodeRoundTrips) {
  for (ErrorCode code : kAllCodes) {
    Error e(code, "msg");
    EXPECT_EQ(e.code(), code);
    Error copy = e;  // copies keep the code and message
    EXPECT_EQ(copy.code(), code);
    EXPECT_STREQ(copy.what(), e.what());
  }
}

TEST(ErrorTest, CatchableAsRuntimeError) {
  try {
    throw Error(ErrorCode::kDoubleFree, "ptr 0x1000");
  } catch (const std::runtime_error& e) {
    const Error* err = dynamic_cast<const Error*>(&e);
    ASSERT_NE(err, nullptr);
    EXPECT_EQ(err->code(), ErrorCode::kDoubleFree);
    EXPECT_NE(std::string(e.what()).find("ptr 0x1000"), std::string::npos);
    return;
  }
  ADD_FAILURE() << "not caught as std::runtime_error";
}

}  // namespace
}  // namespace hbmalloc
