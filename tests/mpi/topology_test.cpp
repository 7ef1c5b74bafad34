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
    EXPECT_EQ(pl::dist::validate_layout(l, config(96, 192, 4, 12, 4, 100)).message(), "n_kv_heads=4 is not divisible by tp=3");
    EXPECT_EQ(pl::dist::validate_layout(l, config(64, 192, 4, 8, 8, 100)).message(), "n_heads=8 is not divisible by tp=3");
    EXPECT_EQ(pl::dist::validate_layout(l, config(96, 200, 4, 12, 12, 100)).message(), "FFN size hidden_dim=200 is not divisible by tp=3");
    l.tp = 1;
    l.pp = 5;
    EXPECT_EQ(pl::dist::validate_layout(l, config(64, 128, 4, 8, 8, 100)).message(),
              "n_layers=4 is smaller than pp=5 (every stage needs a layer)");
    l.pp = 4;
    EXPECT_TRUE(pl::dist::validate_layout(l, config(64, 128, 4, 8, 8, 100)));
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
