// SPDX-License-Identifier: MIT
// serve --dp's choice of replica (serve/dist_serve.h): the fewest unfinished requests, ties
// broken round robin after the last replica chosen.
#include "serve/dist_serve.h"

#include <gtest/gtest.h>

namespace {

std::vector<pl::ReplicaLoad> loads(std::vector<int> outstanding) {
    std::vector<pl::ReplicaLoad> v;
    for (int n : outstanding) v.push_back({0, n});
    return v;
}

TEST(ReplicaPick, FewestOutstandingWins) {
    EXPECT_EQ(pl::ReplicaDispatcher::pick(loads({3, 1, 2}), -1), 1);
    EXPECT_EQ(pl::ReplicaDispatcher::pick(loads({3, 1, 2}), 1), 1);  // still the least loaded
    EXPECT_EQ(pl::ReplicaDispatcher::pick(loads({0, 5}), 0), 0);
}

TEST(ReplicaPick, TiesGoRoundRobin) {
    EXPECT_EQ(pl::ReplicaDispatcher::pick(loads({0, 0}), -1), 0);
    EXPECT_EQ(pl::ReplicaDispatcher::pick(loads({0, 0}), 0), 1);
    EXPECT_EQ(pl::ReplicaDispatcher::pick(loads({0, 0}), 1), 0);
    EXPECT_EQ(pl::ReplicaDispatcher::pick(loads({2, 1, 1, 1}), 2), 3);
    EXPECT_EQ(pl::ReplicaDispatcher::pick(loads({2, 1, 1, 1}), 3), 1);
    // One request at a time (each finished before the next) visits every replica in turn.
    std::vector<int> seen;
    for (int last = -1, k = 0; k < 6; ++k) seen.push_back(last = pl::ReplicaDispatcher::pick(loads({0, 0, 0}), last));
    EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 0, 1, 2}));
}

TEST(ReplicaPick, OneReplica) { EXPECT_EQ(pl::ReplicaDispatcher::pick(loads({7}), 0), 0); }

}  // namespace
