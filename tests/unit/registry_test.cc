// Unit tests for include/hbmalloc/registry.hpp: the process's per-device
// allocators, and which device owns a pointer (asked instead of trying a free
// or record_stream on each device and catching its refusal).
#include "hbmalloc/registry.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

namespace hbmalloc {
namespace {

class Registry : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { setenv("HBMALLOC_CONF", "backend:sim,capacity:1GiB", 1); }
};

TEST_F(Registry, TheDeviceOwningAPointerIsTheOneThatHandedItOut) {
  Allocator& a0 = device_allocator(0);
  Allocator& a1 = device_allocator(1);
  void* p = a0.malloc(1 << 20);
  void* q = a1.malloc(3 << 20, 7);
  void* small = a1.malloc(512);
  EXPECT_EQ(device_owning(p), 0);
  EXPECT_EQ(device_owning(q), 1);
  EXPECT_EQ(device_owning(small), 1);
  EXPECT_TRUE(a0.owns(p));
  EXPECT_FALSE(a1.owns(p));
  EXPECT_FALSE(a0.owns(q));
  int local = 0;
  EXPECT_EQ(device_owning(&local), -1);
  EXPECT_EQ(device_owning(nullptr), -1);
  // Inside a block is not the block: only what malloc returned is owned.
  EXPECT_EQ(device_owning(static_cast<char*>(q) + 512), -1);
  a0.free(p);
  EXPECT_EQ(device_owning(p), -1) << "freed: nobody owns it";
  a1.free(q);
  a1.free(small);
  EXPECT_EQ(device_owning(q), -1);
  EXPECT_EQ(existing_allocator(2), nullptr) << "asking creates no allocator";
}

}  // namespace
}  // namespace hbmalloc
