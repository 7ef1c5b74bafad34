// SPDX-License-Identifier: MIT
// The cost model of `parallama plan` (src/dist/plan.h) on hand-computed cases: a model of round
// numbers (dim 1000, FFN 2000, 10 layers, 10 heads, vocabulary 1000, 1 byte per weight: 1e7
// weights a layer, 1e6 in the head) on a device of 10 GB/s at 50 % efficiency and 1000 int8
// GOP/s, with links of 1 GB/s and 1 us.
#include "dist/plan.h"

#include <gtest/gtest.h>

namespace {

using pl::dist::PlanLayout;
using pl::dist::PlanLink;
using pl::dist::PlanMachine;
using pl::dist::PlanModel;

PlanModel round_model() { return {"round", 1000, 2000, 10, 10, 10, 1000, false, 1.0, "x", {}}; }

PlanMachine round_machine() {
    PlanMachine hw;
    hw.mem_gbps = 10;
    hw.efficiency = 0.5;
    hw.int8_gops = 1000;
    hw.devices_per_node = 8;
    hw.intra = {1, 1e-6};
    hw.inter = {0.1, 1e-4};
    return hw;
}

PlanLayout layout(int tp, int pp, int batch, int ctx = 0) {
    PlanLayout l;
    l.tp = tp;
    l.pp = pp;
    l.batch = batch;
    l.ctx = ctx;
    return l;
}

TEST(Plan, RingAllreduce) {
    // 2 (T-1) = 6 latencies + 2 (T-1)/T = 1.5 x 4000 bytes at 1 GB/s.
    EXPECT_NEAR(pl::dist::ring_allreduce_s(4000, 4, PlanLink{1, 1e-6}), 6e-6 + 6e-6, 1e-15);
    EXPECT_EQ(pl::dist::ring_allreduce_s(4000, 1, PlanLink{1, 1e-6}), 0);
}

TEST(Plan, OneDeviceIsBandwidthBound) {
    const PlanModel m = round_model();
    EXPECT_DOUBLE_EQ(m.layer_params(), 1e7);
    auto r = pl::dist::plan(m, round_machine(), layout(1, 1, 1));
    ASSERT_TRUE(r) << r.error_message();
    EXPECT_DOUBLE_EQ(r->weight_bytes_rank, 1.01e8);       // 10 layers + head
    EXPECT_NEAR(r->t_mem_s, 1.01e8 / 5e9, 1e-12);         // 0.0202 s
    EXPECT_NEAR(r->t_compute_s, 2 * 1.01e8 / 1e12, 1e-15);
    EXPECT_NEAR(r->tokens_per_s, 1 / 0.0202, 1e-9);
    EXPECT_EQ(r->comm_share, 0);
    EXPECT_DOUBLE_EQ(r->mem_weights_bytes, 1.02e8);       // + the embedding table
    // With 100 tokens of context: 100 x 10 layers x 2 x 1000 x 2 bytes = 4e6 more bytes a token.
    auto k = pl::dist::plan(m, round_machine(), layout(1, 1, 1, 100));
    ASSERT_TRUE(k);
    EXPECT_NEAR(k->t_mem_s, 1.05e8 / 5e9, 1e-12);
    EXPECT_DOUBLE_EQ(k->mem_kv_bytes, 4e6);
}

TEST(Plan, TensorParallelAddsTwoAllreducesALayer) {
    auto r = pl::dist::plan(round_model(), round_machine(), layout(2, 1, 1));
    ASSERT_TRUE(r) << r.error_message();
    EXPECT_NEAR(r->t_mem_s, 0.0101, 1e-12);
    // Ring of 4000 bytes over 2: 2 x 1 us + 4000 B / 1 GB/s = 6 us; 20 of them, the logits
    // gather (1 us + 2000 B / 1 GB/s) and the entry broadcast (1 us).
    EXPECT_NEAR(r->t_tp_s, 20 * 6e-6 + 3e-6 + 1e-6, 1e-12);
    EXPECT_NEAR(r->tokens_per_s, 1 / (0.0101 + 124e-6), 1e-6);
    EXPECT_NEAR(r->comm_share, 124e-6 / (0.0101 + 124e-6), 1e-9);
    EXPECT_DOUBLE_EQ(r->tp_bytes_rank, 20 * 4000 + 500 * 4);
    EXPECT_TRUE(r->tp_within_node);
    // 16 ranks over nodes of 8: the network's 100 us latency and 0.1 GB/s.
    auto far = pl::dist::plan(round_model(), round_machine(), layout(10, 1, 1));
    ASSERT_TRUE(far);
    EXPECT_FALSE(far->tp_within_node);
    EXPECT_NEAR(far->t_tp_s, 20 * pl::dist::ring_allreduce_s(4000, 10, PlanLink{0.1, 1e-4}) + 1e-4 + 0.9 * 4000 / 1e8 + 1e-4, 1e-12);
}

TEST(Plan, PipelineRoundsAndBubble) {
    // pp2, two sequences in two micro-batches: stages of 5 layers (the last + head: 5.1e7 bytes),
    // hops of 1 us + 4000 B / 1 GB/s = 5 us.
    auto r = pl::dist::plan(round_model(), round_machine(), layout(1, 2, 2));
    ASSERT_TRUE(r) << r.error_message();
    EXPECT_NEAR(r->t_stage_s, 0.0102, 1e-12);
    EXPECT_NEAR(r->t_p2p_s, 5e-6, 1e-15);
    EXPECT_NEAR(r->round_s, 2 * 0.0102 + 2 * 5e-6, 1e-12);
    EXPECT_NEAR(r->tokens_per_s, 2 / (0.0204 + 1e-5), 1e-6);
    EXPECT_NEAR(r->bubble, 1e-5 / (0.0204 + 1e-5), 1e-9);
    // One sequence: half the stages idle.
    auto one = pl::dist::plan(round_model(), round_machine(), layout(1, 2, 1));
    ASSERT_TRUE(one);
    EXPECT_NEAR(one->bubble, 1 - 0.0102 / (0.0204 + 1e-5), 1e-9);
    // Prefill of 64 tokens in 4 micro-batches over 2 stages: bubble 1/5.
    PlanLayout l = layout(1, 2, 1);
    l.prompt = 64;
    l.micro_batches = 4;
    auto pre = pl::dist::plan(round_model(), round_machine(), l);
    ASSERT_TRUE(pre);
    EXPECT_DOUBLE_EQ(pre->prefill_bubble, 0.2);
}

TEST(Plan, LargeBatchesBecomeComputeBound) {
    // 256 tokens a step: 2 x 1.01e8 x 256 / 1e12 = 51.7 ms > 20.2 ms of weights.
    auto r = pl::dist::plan(round_model(), round_machine(), layout(1, 1, 256));
    ASSERT_TRUE(r);
    EXPECT_NEAR(r->round_s, 2 * 1.01e8 * 256 / 1e12, 1e-12);
    EXPECT_NEAR(r->tokens_per_s, 256 / (2 * 1.01e8 * 256 / 1e12), 1e-6);
}

// GQA with fewer KV heads than ranks: the round model on 2 KV heads (5 query heads each, head_dim
// 100; 8.4e6 weights a layer). tp4 splits the query heads 3, 3, 2, 2: the ranks hold KV heads
// {0}, {0, 1}, {1}, {1}, 5 copies, so attn_k and attn_v carry 3 x 2 x 1000 x 100 more weights a
// layer over the group (9e6 in all) and the KV cache 5/4 heads a rank.
TEST(Plan, ReplicatedKvHeadsCountOnEveryRankThatHoldsThem) {
    PlanModel m = round_model();
    m.n_kv_heads = 2;
    EXPECT_DOUBLE_EQ(m.layer_params(), 8.4e6);
    auto r = pl::dist::plan(m, round_machine(), layout(4, 1, 1, 100));
    ASSERT_TRUE(r) << r.error_message();
    EXPECT_TRUE(r->kv_replicated);
    EXPECT_EQ(r->kv_head_copies, 5);
    EXPECT_DOUBLE_EQ(r->kv_heads_rank, 1.25);
    EXPECT_DOUBLE_EQ(r->weight_bytes_rank, (10 * 9e6 + 1e6) / 4);
    // 100 tokens x 10 layers x 2 x (5 x 100 / 4) x 2 bytes.
    EXPECT_DOUBLE_EQ(r->mem_kv_bytes, 5e5);
    EXPECT_NEAR(r->t_mem_s, (2.275e7 + 5e5) / 5e9, 1e-12);
    EXPECT_DOUBLE_EQ(r->mem_weights_bytes, (10 * 9e6 + 2e6) / 4);  // + the embedding table
    // tp2 splits whole KV groups: nothing replicated, one KV head a rank.
    auto two = pl::dist::plan(m, round_machine(), layout(2, 1, 1, 100));
    ASSERT_TRUE(two);
    EXPECT_FALSE(two->kv_replicated);
    EXPECT_EQ(two->kv_head_copies, 2);
    EXPECT_DOUBLE_EQ(two->weight_bytes_rank, (10 * 8.4e6 + 1e6) / 2);
    EXPECT_DOUBLE_EQ(two->mem_kv_bytes, 100 * 10 * 2 * 100 * 2.0);
    // tp10, one query head a rank: each rank one KV head, 10 copies (8 more than the model's 2).
    auto ten = pl::dist::plan(m, round_machine(), layout(10, 1, 1, 100));
    ASSERT_TRUE(ten);
    EXPECT_EQ(ten->kv_head_copies, 10);
    EXPECT_DOUBLE_EQ(ten->weight_bytes_rank, (10 * (8.4e6 + 8 * 2e5) + 1e6) / 10);
    auto eleven = pl::dist::plan(m, round_machine(), layout(11, 1, 1));
    ASSERT_FALSE(eleven);
    EXPECT_NE(eleven.error_message().find("n_heads=10 is smaller than tp=11"), std::string::npos) << eleven.error_message();
    // Block-quantized columns cut where the loader would: attn_output in 200-column units (two
    // heads of 100) gives 5 units, enough for tp5, not tp6.
    m.units = {200, 1};
    EXPECT_TRUE(pl::dist::plan(m, round_machine(), layout(5, 1, 1)));
    auto six = pl::dist::plan(m, round_machine(), layout(6, 1, 1));
    ASSERT_FALSE(six);
    EXPECT_NE(six.error_message().find("n_heads=10 in units of 2 query heads (200 attn_output columns"), std::string::npos)
        << six.error_message();
}

TEST(Plan, RefusesWhatItCannotModel) {
    EXPECT_FALSE(pl::dist::plan(round_model(), round_machine(), layout(11, 1, 1)));  // tp > query heads
    EXPECT_FALSE(pl::dist::plan(round_model(), round_machine(), layout(1, 11, 1)));  // pp > layers
    PlanMachine none = round_machine();
    none.mem_gbps = 0;
    EXPECT_FALSE(pl::dist::plan(round_model(), none, layout(1, 1, 1)));
}

}  // namespace
