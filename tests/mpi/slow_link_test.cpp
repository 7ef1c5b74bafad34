// SPDX-License-Identifier: MIT
// Distributed inference over a real, rate-limited TCP link (scripts/slow-link.sh: one network
// namespace per rank, veth pairs to a bridge, a tc token-bucket limit on each rank's side, Open
// MPI's TCP transport between them): the layouts still give the single process's greedy tokens,
// and a rank that dies across the link still ends the job in bounded time. Needs root for the
// namespaces; elsewhere the tests skip and say why.
#include "test_data.h"

#include <chrono>
#include <string>

namespace {

using pl::test::parallama_bin;
using pl::test::parse_ints;
using pl::test::run_cmd;

std::string q(const std::string& s) { return "'" + s + "'"; }

constexpr int kSkipped = 77;  // slow-link.sh: not root, or ip/tc/mpirun missing

// `parallama <args>` over `ranks` namespaces linked at `rate`; killed after 180 s.
pl::test::CmdResult over_link(int ranks, const std::string& rate, const std::string& args, const std::string& env = "") {
    return run_cmd("env OMP_NUM_THREADS=1 OMPI_MCA_mpi_yield_when_idle=1 " + env + " timeout 180 " + std::string(PL_SOURCE_DIR) +
                   "/scripts/slow-link.sh --ranks " + std::to_string(ranks) + " --rate " + rate + " -- " + parallama_bin() + " " + args);
}

#define PL_REQUIRE_LINK(r)                                                                             \
    do {                                                                                               \
        if (std::string(PL_MPIEXEC).empty()) GTEST_SKIP() << "built without MPI";                      \
        if ((r).rc == kSkipped) GTEST_SKIP() << "no network namespaces here: " << (r).err;             \
    } while (0)

std::string stories() { return pl::test::model_file("stories260K/stories260K-f32.gguf"); }

TEST(SlowLink, LayoutsOverRateLimitedTcpMatchSingleProcess) {
    PL_REQUIRE_DATA(stories(), "stories260K/stories260K-f32.gguf");
    const std::string gen = "generate -m " + q(stories()) + " --prompt-ids 1 -n 24 --temp 0 --ids";
    auto ref = run_cmd("env OMP_NUM_THREADS=1 " + parallama_bin() + " " + gen);
    ASSERT_EQ(ref.rc, 0) << ref.err;
    const auto want = parse_ints(ref.out);
    ASSERT_EQ(want.size(), 24u);
    struct Case {
        int ranks;
        const char* rate;
        const char* flags;
    };
    for (const Case& c : {Case{2, "10mbit", "--tp 2"}, Case{2, "100mbit", "--tp 2 --tp-reduce rma"}, Case{2, "10mbit", "--pp 2"},
                          Case{4, "100mbit", "--tp 2 --pp 2"}}) {
        auto r = over_link(c.ranks, c.rate, gen + " " + c.flags);
        PL_REQUIRE_LINK(r);
        ASSERT_EQ(r.rc, 0) << c.flags << " at " << c.rate << "\n" << r.err;
        EXPECT_EQ(parse_ints(r.out), want) << c.flags << " at " << c.rate << "\n" << r.err;
        // The job really ran in the namespaces, and every rank reported.
        EXPECT_NE(r.err.find("slow-link: " + std::to_string(c.ranks) + " ranks in namespaces"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find(std::to_string(c.ranks) + " MPI ranks"), std::string::npos) << r.err;
    }
}

// A rank that exits abruptly across the link (PARALLAMA_FAULT_RANK: after its first step) ends the
// whole job with an error, well before the test's own timeout.
TEST(SlowLink, DeadRankAcrossTheLinkEndsTheJob) {
    PL_REQUIRE_DATA(stories(), "stories260K/stories260K-f32.gguf");
    const auto t0 = std::chrono::steady_clock::now();
    auto r = over_link(2, "10mbit", "generate -m " + q(stories()) + " --prompt-ids 1 -n 200 --temp 0 --ids --tp 2",
                       "PARALLAMA_FAULT_RANK=1");
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    PL_REQUIRE_LINK(r);
    EXPECT_NE(r.rc, 0) << r.out;
    EXPECT_NE(r.rc, 124) << "the job hung until the timeout";
    EXPECT_LT(s, 60.0) << r.err;
}

}  // namespace
