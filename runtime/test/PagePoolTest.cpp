//===- PagePoolTest.cpp - Free list and reference counts ------------------===//

#include "PagePool.h"

#include "gtest/gtest.h"

#include <set>

using kvc::rt::PagePool;

TEST(RuntimePagePool, HandsOutEveryPageOnce) {
  PagePool pool;
  ASSERT_TRUE(pool.init(100).isOk());
  std::set<int32_t> seen;
  for (int i = 0; i < 100; ++i) {
    const int32_t p = pool.allocate();
    EXPECT_EQ(p, i) << "a fresh pool hands out pages in order";
    EXPECT_TRUE(seen.insert(p).second);
    EXPECT_EQ(pool.refCount(p), 1u);
  }
  EXPECT_EQ(pool.freeCount(), 0u);
  EXPECT_EQ(pool.usedCount(), 100u);
}

TEST(RuntimePagePool, ReferenceCountsAndLifoReuse) {
  PagePool pool;
  ASSERT_TRUE(pool.init(8).isOk());
  const int32_t a = pool.allocate(), b = pool.allocate();
  pool.retain(a);
  pool.retain(a);
  EXPECT_EQ(pool.refCount(a), 3u);
  EXPECT_EQ(pool.sharedCount(), 1u);
  EXPECT_FALSE(pool.release(a));
  EXPECT_FALSE(pool.release(a));
  EXPECT_EQ(pool.sharedCount(), 0u);
  EXPECT_TRUE(pool.release(a));
  EXPECT_EQ(pool.freeCount(), 7u);
  EXPECT_EQ(pool.allocate(), a) << "the page released last is reused first";
  EXPECT_TRUE(pool.release(b));
  EXPECT_EQ(pool.freeStack()[pool.freeCount() - 1], b);
}

TEST(RuntimePagePool, LargePoolsInitialize) {
  PagePool pool;
  ASSERT_TRUE(pool.init(1u << 20).isOk());
  EXPECT_EQ(pool.freeCount(), 1u << 20);
  EXPECT_EQ(pool.allocate(), 0);
}

TEST(RuntimePagePoolDeath, MisuseAborts) {
  PagePool pool;
  ASSERT_TRUE(pool.init(1).isOk());
  pool.allocate();
  EXPECT_DEATH(pool.allocate(), "exhausted page pool");
  EXPECT_TRUE(pool.release(0));
  EXPECT_DEATH(pool.release(0), "release of a free page");
  EXPECT_DEATH(pool.retain(0), "retain of a free page");
}
