// SPDX-License-Identifier: MIT
// The tp x pp x dp grid and the shard plan, without MPI: placement of world ranks, layer ranges,
// the validation messages, and that a tp shard's slices tile the model exactly.
#include "dist/topology.h"
#include "model/llama.h"

#include <gtest/gtest.h>

namespace {

using pl::dist::Layout;

pl::ModelConfig config(int dim, int hidden, int layers, int heads, int kv_heads, int vocab) {
    pl::ModelConfig c;
    c.dim = dim;
    c.hidden_dim = hidden;
    c.n_layers = layers;
    c.n_heads = heads;
    c.n_kv_heads = kv_heads;
    c.head_dim = dim / heads;
    c.kv_dim = kv_heads * c.head_dim;
    c.vocab_size = vocab;
    return c;
}

TEST(Topology, PlacesRanksTpFastestThenPpThenDp) {
    Layout l;
    l.tp = 2;
    l.pp = 2;
    for (int r = 0; r < 8; ++r) {
        auto p = pl::dist::place(l, 8, r);
        ASSERT_TRUE(p) << p.error_message();
        EXPECT_EQ(p->layout.dp, 2);
        EXPECT_EQ(p->tp_rank, r % 2);
        EXPECT_EQ(p->pp_rank, r / 2 % 2);
        EXPECT_EQ(p->dp_rank, r / 4);
        EXPECT_EQ(p->world_rank_of(p->dp_rank, p->pp_rank, p->tp_rank), r);
        EXPECT_EQ(p->replica_root(), r % 4 == 0);
    }
}

TEST(Topology, RankCountMismatchesAreNamed) {
    Layout l;
    l.tp = 2;
    l.pp = 2;
    l.dp = 2;
    auto p = pl::dist::place(l, 4, 0);
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error_message(), "--tp 2 x --pp 2 x --dp 2 needs 8 MPI ranks, this job has 4");
    l.dp = 0;
    EXPECT_NE(pl::dist::place(l, 6, 0).error_message().find("does not divide the job's 6 MPI ranks"), std::string::npos);
    l.tp = 0;
    EXPECT_FALSE(pl::dist::place(l, 4, 0));
}

TEST(Topology, ValidatesHeadsFfnAndLayers) {
    Layout l;
    l.tp = 3;
    // Uneven splits are allowed (whole KV groups, whole blocks); too few of them are not.
    EXPECT_TRUE(pl::dist::validate_layout(l, config(96, 192, 4, 12, 4, 100)));
    EXPECT_TRUE(pl::dist::validate_layout(l, config(96, 200, 4, 12, 12, 100)));
    l.tp = 8;
    EXPECT_EQ(pl::dist::validate_layout(l, config(96, 192, 4, 12, 4, 100)).message(),
              "n_kv_heads=4 is smaller than tp=8 (every rank needs a whole KV head; replicating KV heads is not implemented)");
    EXPECT_EQ(pl::dist::validate_layout(l, config(64, 4, 4, 8, 8, 100)).message(), "FFN size hidden_dim=4 is smaller than tp=8");
    // q3.5 at LLaMA-7B's 11008 = 43 groups of 256: 43 ranks at most; heads of 128 pair up.
    const auto l7 = config(4096, 11008, 32, 32, 32, 32000);
    const pl::SplitUnits q35{256, 256};
    l.tp = 2;
    EXPECT_TRUE(pl::dist::validate_layout(l, l7, q35));
    l.tp = 32;
    EXPECT_EQ(pl::dist::validate_layout(l, l7, q35).message(),
              "n_kv_heads=32 in units of 2 KV heads (256 attn_output columns, whole 256-weight blocks) makes 16 unit(s), "
              "fewer than tp=32");
    l.tp = 44;
    pl::ModelConfig wide = l7;
    wide.n_heads = wide.n_kv_heads = 64;
    wide.head_dim = 64;
    EXPECT_EQ(pl::dist::validate_layout(l, wide, pl::SplitUnits{1, 256}).message(),
              "FFN size hidden_dim=11008 is 43 blocks of 256 weights (ffn_down), fewer than tp=44");
    l.tp = 1;
    l.pp = 5;
    EXPECT_EQ(pl::dist::validate_layout(l, config(64, 128, 4, 8, 8, 100)).message(),
              "n_layers=4 is smaller than pp=5 (every stage needs a layer)");
    l.pp = 4;
    EXPECT_TRUE(pl::dist::validate_layout(l, config(64, 128, 4, 8, 8, 100)));
}

// Uneven tp splits: q3.5 LLaMA-7B over 2 ranks cuts ffn_down's 43 groups 22 + 21 and the heads
// 16 + 16; over 3 ranks the heads go in pairs of 128-column heads (16 pairs: 6, 5, 5 = 12, 10,
// 10 heads). Every cut is a multiple of 256 columns, and the slices tile the model.
TEST(Topology, UnevenSplitsKeepWholeBlocks) {
    const auto l7 = config(4096, 11008, 32, 32, 32, 32000);
    const pl::SplitUnits q35{256, 256};
    for (int tp : {2, 3, 4, 5, 16}) {
        int hidden_next = 0, head_next = 0;
        for (int r = 0; r < tp; ++r) {
            pl::ShardSpec s;
            s.tp_size = tp;
            s.tp_rank = r;
            auto d = pl::shard_dims(l7, s, q35);
            ASSERT_TRUE(d) << tp << ": " << d.error_message();
            EXPECT_EQ(d->hidden_begin, hidden_next);
            EXPECT_EQ(d->hidden_begin % 256, 0);
            EXPECT_TRUE(d->hidden_dim % 256 == 0 || d->hidden_begin + d->hidden_dim == 11008);
            EXPECT_EQ(d->head_begin, head_next);
            EXPECT_EQ(d->q_dim % 256, 0);
            EXPECT_EQ(d->n_heads, d->n_kv_heads);
            hidden_next += d->hidden_dim;
            head_next += d->n_heads;
        }
        EXPECT_EQ(hidden_next, 11008) << tp;
        EXPECT_EQ(head_next, 32) << tp;
    }
    pl::ShardSpec s;
    s.tp_size = 2;
    EXPECT_EQ(pl::shard_dims(l7, s, q35)->hidden_dim, 22 * 256);
    s.tp_rank = 1;
    EXPECT_EQ(pl::shard_dims(l7, s, q35)->hidden_dim, 21 * 256);
    s.tp_size = 3;
    s.tp_rank = 0;
    EXPECT_EQ(pl::shard_dims(l7, s, q35)->n_heads, 12);
    s.tp_rank = 2;
    EXPECT_EQ(pl::shard_dims(l7, s, q35)->n_heads, 10);
    // GQA 8/4 over 3 ranks, float weights: KV groups 2, 1, 1 carry query heads 4, 2, 2.
    const auto gqa = config(256, 768, 4, 8, 4, 512);
    s.tp_rank = 0;
    EXPECT_EQ(pl::shard_dims(gqa, s)->n_heads, 4);
    EXPECT_EQ(pl::shard_dims(gqa, s)->n_kv_heads, 2);
    s.tp_rank = 2;
    EXPECT_EQ(pl::shard_dims(gqa, s)->head_begin, 6);
    EXPECT_EQ(pl::shard_dims(gqa, s)->kv_head_begin, 3);
}

TEST(Topology, ShardsTileTheModel) {
    const auto c = config(256, 768, 5, 8, 4, 513);  // an odd vocabulary splits unevenly
    Layout l;
    l.tp = 4;
    l.pp = 2;
    int vocab_next = 0, hidden_next = 0, head_next = 0, kv_next = 0;
    int layer_next = 0;
    for (int r = 0; r < 8; ++r) {
        auto p = pl::dist::place(l, 8, r);
        ASSERT_TRUE(p);
        const pl::ShardSpec s = pl::dist::shard_of(*p, c.n_layers);
        auto d = pl::shard_dims(c, s);
        ASSERT_TRUE(d) << d.error_message();
        if (p->pp_rank == 0) {  // tp slices of one stage
            EXPECT_EQ(d->vocab_begin, vocab_next);
            EXPECT_EQ(d->hidden_begin, hidden_next);
            EXPECT_EQ(d->head_begin, head_next);
            EXPECT_EQ(d->kv_head_begin, kv_next);
            vocab_next = d->vocab_end;
            hidden_next += d->hidden_dim;
            head_next += d->n_heads;
            kv_next += d->n_kv_heads;
            EXPECT_EQ(d->q_dim, 2 * 32);
            EXPECT_EQ(d->kv_dim, 32);
        }
        if (p->tp_rank == 0) {  // stages
            EXPECT_EQ(d->layer_begin, layer_next);
            layer_next = d->layer_end;
        }
    }
    EXPECT_EQ(vocab_next, 513);
    EXPECT_EQ(hidden_next, 768);
    EXPECT_EQ(head_next, 8);
    EXPECT_EQ(kv_next, 4);
    EXPECT_EQ(layer_next, 5);
}

}  // namespace
