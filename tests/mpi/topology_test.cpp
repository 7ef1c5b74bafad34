// SPDX-License-Identifier: MIT
// The tp x pp x dp grid and the shard plan, without MPI: placement of world ranks, layer ranges,
// the validation messages, that a tp shard's slices tile the model exactly, and the head split
// with KV heads replicated when they are fewer than the ranks.
#include "dist/topology.h"
#include "model/llama.h"
#include "model/synth.h"
#include "test_data.h"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <numeric>

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
    // Fewer KV heads than ranks: the query heads split, KV heads are replicated; fewer query
    // heads than ranks cannot work.
    l.tp = 8;
    EXPECT_TRUE(pl::dist::validate_layout(l, config(96, 192, 4, 12, 4, 100)));
    l.tp = 12;
    EXPECT_TRUE(pl::dist::validate_layout(l, config(96, 192, 4, 12, 4, 100)));
    l.tp = 13;
    EXPECT_EQ(pl::dist::validate_layout(l, config(96, 192, 4, 12, 4, 100)).message(),
              "n_heads=12 is smaller than tp=13 (every rank needs a whole query head; the n_kv_heads=4 KV heads are replicated, "
              "query heads are not split)");
    l.tp = 8;
    EXPECT_EQ(pl::dist::validate_layout(l, config(64, 4, 4, 8, 8, 100)).message(), "FFN size hidden_dim=4 is smaller than tp=8");
    // q3.5 at LLaMA-7B's 11008 = 43 groups of 256: 43 ranks at most; heads of 128 pair up.
    const auto l7 = config(4096, 11008, 32, 32, 32, 32000);
    const pl::SplitUnits q35{256, 256};
    l.tp = 2;
    EXPECT_TRUE(pl::dist::validate_layout(l, l7, q35));
    l.tp = 32;
    EXPECT_EQ(pl::dist::validate_layout(l, l7, q35).message(),
              "n_heads=32 in units of 2 query heads (256 attn_output columns, whole 256-weight blocks) makes 16 unit(s), "
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

// The heads of every rank of a split, in rank order.
std::vector<pl::HeadSplit> heads_of(int n_heads, int n_kv, int head_dim, int unit, int tp) {
    std::vector<pl::HeadSplit> out;
    for (int r = 0; r < tp; ++r) {
        auto h = pl::split_heads(n_heads, n_kv, head_dim, unit, tp, r);
        EXPECT_TRUE(h) << n_heads << "/" << n_kv << " tp" << tp << ": " << h.error_message();
        out.push_back(h ? *h : pl::HeadSplit{});
    }
    return out;
}

// (query heads begin, end, KV heads begin, end) of each rank, for the cases the issue names.
std::vector<std::array<int, 4>> ranges(const std::vector<pl::HeadSplit>& hs) {
    std::vector<std::array<int, 4>> out;
    for (const auto& h : hs) out.push_back({h.head_begin, h.head_end, h.kv_begin, h.kv_end});
    return out;
}

TEST(HeadSplit, ReplicatesKvHeadsWhenTheyAreFewerThanRanks) {
    using R = std::vector<std::array<int, 4>>;
    // 8 query heads on 2 KV heads over 4 ranks: each KV head on two ranks.
    auto hs = heads_of(8, 2, 32, 1, 4);
    EXPECT_EQ(ranges(hs), (R{{0, 2, 0, 1}, {2, 4, 0, 1}, {4, 6, 1, 2}, {6, 8, 1, 2}}));
    for (const auto& h : hs) EXPECT_TRUE(h.kv_replicated);
    // Over 3 ranks (query heads 3, 3, 2): the middle rank's heads 3..5 read both KV heads.
    EXPECT_EQ(ranges(heads_of(8, 2, 32, 1, 3)), (R{{0, 3, 0, 1}, {3, 6, 0, 2}, {6, 8, 1, 2}}));
    // SmolLM2's 9 heads on 3 KV heads over 4 ranks (3, 2, 2, 2): rank 2 reads KV heads 1 and 2.
    EXPECT_EQ(ranges(heads_of(9, 3, 64, 1, 4)), (R{{0, 3, 0, 1}, {3, 5, 1, 2}, {5, 7, 1, 3}, {7, 9, 2, 3}}));
    // ... and over 9 ranks one query head each.
    hs = heads_of(9, 3, 64, 1, 9);
    for (int r = 0; r < 9; ++r) EXPECT_EQ(ranges(hs)[static_cast<size_t>(r)], (std::array<int, 4>{r, r + 1, r / 3, r / 3 + 1}));
    // stories260K (8/4, head_dim 8) over 8 ranks.
    hs = heads_of(8, 4, 8, 1, 8);
    for (int r = 0; r < 8; ++r) EXPECT_EQ(ranges(hs)[static_cast<size_t>(r)], (std::array<int, 4>{r, r + 1, r / 2, r / 2 + 1}));
    // LLaMA-70B (64/8, head_dim 128) in q3.5 (256-column units: pairs of heads) over 16 ranks: 4
    // query heads and 1 KV head each; over 64 ranks the 32 pairs are too few.
    hs = heads_of(64, 8, 128, 256, 16);
    for (int r = 0; r < 16; ++r) EXPECT_EQ(ranges(hs)[static_cast<size_t>(r)], (std::array<int, 4>{4 * r, 4 * r + 4, r / 2, r / 2 + 1}));
    EXPECT_EQ(pl::split_heads(64, 8, 128, 256, 64, 0).error_message(),
              "n_heads=64 in units of 2 query heads (256 attn_output columns, whole 256-weight blocks) makes 32 unit(s), fewer than tp=64");
    EXPECT_TRUE(pl::split_heads(64, 8, 128, 1, 64, 63));  // f16: one query head a rank
    // The existing whole-group splits stay as they were: 8/4 over 2 and 3 ranks.
    EXPECT_EQ(ranges(heads_of(8, 4, 32, 1, 2)), (R{{0, 4, 0, 2}, {4, 8, 2, 4}}));
    EXPECT_EQ(ranges(heads_of(8, 4, 32, 1, 3)), (R{{0, 4, 0, 2}, {4, 6, 2, 3}, {6, 8, 3, 4}}));
    for (const auto& h : heads_of(8, 4, 32, 1, 3)) EXPECT_FALSE(h.kv_replicated);
    // Bad input.
    EXPECT_FALSE(pl::split_heads(8, 3, 32, 1, 2, 0));  // 8 is not a multiple of 3
    EXPECT_FALSE(pl::split_heads(8, 2, 32, 1, 2, 2));  // rank out of range
    EXPECT_FALSE(pl::split_heads(8, 2, 32, 0, 2, 0));  // unit 0
}

// Every split of a sweep of shapes, degrees and block units: the query heads tile [0, n_heads)
// with non-empty, block-aligned ranges; each rank's KV heads are exactly those its query heads
// read; without replication the KV heads tile [0, n_kv_heads) (with float weights:
// split_range(n_kv_heads, tp), the split before replication existed); replication happens exactly
// when whole groups are too few, and an error exactly when query heads are too few.
TEST(HeadSplit, EverySplitTilesTheHeads) {
    int n_ok = 0, n_rep = 0, n_err = 0;
    for (int n_kv : {1, 2, 3, 4, 8})
        for (int kv_mul : {1, 2, 3, 4, 8})
            for (int head_dim : {8, 32, 64, 128})
                for (int unit : {1, 32, 256})
                    for (int tp = 1; tp <= n_kv * kv_mul + 2; ++tp) {
                        const int n_heads = n_kv * kv_mul;
                        const int group_units = (n_kv * kv_mul * head_dim) / std::lcm(unit, kv_mul * head_dim) +
                                                ((n_kv * kv_mul * head_dim) % std::lcm(unit, kv_mul * head_dim) != 0);
                        const int head_units = (n_heads * head_dim) / std::lcm(unit, head_dim) +
                                               ((n_heads * head_dim) % std::lcm(unit, head_dim) != 0);
                        auto first = pl::split_heads(n_heads, n_kv, head_dim, unit, tp, 0);
                        SCOPED_TRACE(::testing::Message() << n_heads << "/" << n_kv << " hd" << head_dim << " unit" << unit << " tp" << tp);
                        if (head_units < tp) {
                            EXPECT_FALSE(first);
                            ++n_err;
                            continue;
                        }
                        ASSERT_TRUE(first) << first.error_message();
                        const bool want_rep = group_units < tp;
                        int next = 0, kv_next = 0;
                        for (int r = 0; r < tp; ++r) {
                            auto h = pl::split_heads(n_heads, n_kv, head_dim, unit, tp, r);
                            ASSERT_TRUE(h);
                            EXPECT_EQ(h->kv_replicated, want_rep);
                            EXPECT_EQ(h->head_begin, next);
                            EXPECT_LT(h->head_begin, h->head_end);
                            EXPECT_EQ(h->head_begin * head_dim % unit, 0);
                            EXPECT_EQ(h->kv_begin, h->head_begin / kv_mul);
                            EXPECT_EQ(h->kv_end, (h->head_end - 1) / kv_mul + 1);
                            if (!want_rep) {
                                EXPECT_EQ(h->kv_begin, kv_next);
                                EXPECT_EQ(h->head_begin, h->kv_begin * kv_mul);
                                EXPECT_EQ(h->head_end, h->kv_end * kv_mul);
                                if (unit == 1) {
                                    int b = 0, e = 0;
                                    pl::split_range(n_kv, tp, r, b, e);
                                    EXPECT_EQ(h->kv_begin, b);
                                    EXPECT_EQ(h->kv_end, e);
                                }
                            }
                            next = h->head_end;
                            kv_next = h->kv_end;
                        }
                        EXPECT_EQ(next, n_heads);
                        EXPECT_EQ(kv_next, n_kv);
                        ++n_ok;
                        n_rep += want_rep;
                    }
    // The sweep covers all three outcomes.
    EXPECT_GT(n_ok, 0);
    EXPECT_GT(n_rep, 0);
    EXPECT_GT(n_err, 0);
}

// A replicated shard as the loader builds it: each rank's attn_q/attn_k/attn_v views are its row
// ranges of the mapped file (nothing else is read), attn_output holds exactly its heads' columns,
// and its KV cache holds only its KV heads. tiny-gqa-8x2 (8 query heads on 2 KV heads, head_dim
// 32) over 4 and 3 ranks, f16 weights. The views are checked in the mapping (--mmap on); a copied
// shard copies exactly these views (Stories260K.CopiedWeightsGiveTheMappedLogits).
TEST(HeadSplit, ReplicatedShardsHoldTheirRowsAndKvHeads) {
    struct MappedWeights {
        pl::MmapMode saved = pl::default_mmap_mode();
        MappedWeights() { pl::set_default_mmap_mode(pl::MmapMode::On); }
        ~MappedWeights() { pl::set_default_mmap_mode(saved); }
    } mapped;
    const std::string dir = pl::test::make_temp_dir("head_split");
    pl::SynthOptions o;
    o.shape = "tiny-gqa-8x2";
    o.type = "f16";
    o.n_layers = 2;
    o.out_path = dir + "/m.gguf";
    ASSERT_TRUE(pl::synth_model(o));
    auto full = pl::Model::load(o.out_path);
    ASSERT_TRUE(full) << full.error_message();
    const pl::ModelConfig& c = (*full)->config();
    ASSERT_EQ(c.n_kv_heads, 2);
    ASSERT_EQ(c.head_dim, 32);
    auto full_session = pl::Session::create(**full, 64);
    ASSERT_TRUE(full_session);
    for (int tp : {4, 3}) {
        int heads_next = 0, kv_copies = 0;
        for (int r = 0; r < tp; ++r) {
            pl::ShardSpec s;
            s.tp_size = tp;
            s.tp_rank = r;
            auto m = pl::Model::load(o.out_path, s);
            ASSERT_TRUE(m) << m.error_message();
            const pl::ShardDims& d = (*m)->dims();
            SCOPED_TRACE(::testing::Message() << "tp" << tp << " rank " << r);
            EXPECT_TRUE(d.kv_replicated);
            EXPECT_EQ(d.head_begin, heads_next);
            EXPECT_EQ(d.kv_head_begin, d.head_begin / 4);
            EXPECT_EQ(d.kv_head_begin + d.n_kv_heads, (d.head_begin + d.n_heads - 1) / 4 + 1);
            heads_next += d.n_heads;
            kv_copies += d.n_kv_heads;
            for (int l = 0; l < 2; ++l) {
                const pl::LayerWeights& L = (*m)->layer(l);
                const pl::LayerWeights& F = (*full)->layer(l);
                // Row views into the rank's mapping of the file, at its first (KV) head.
                auto at = [&](const pl::WeightView& w) { return (*m)->file().find_tensor(w.name)->data; };
                EXPECT_EQ(L.wq.data, at(L.wq) + static_cast<size_t>(d.head_begin) * 32 * F.wq.row_bytes);
                EXPECT_EQ(L.wq.rows, d.n_heads * 32);
                EXPECT_EQ(L.wk.data, at(L.wk) + static_cast<size_t>(d.kv_head_begin) * 32 * F.wk.row_bytes);
                EXPECT_EQ(L.wv.data, at(L.wv) + static_cast<size_t>(d.kv_head_begin) * 32 * F.wv.row_bytes);
                EXPECT_EQ(L.wk.rows, d.n_kv_heads * 32);
                EXPECT_EQ(L.wv.rows, d.n_kv_heads * 32);
                // attn_output: the columns of the rank's query heads of every row, in its own memory.
                ASSERT_EQ(L.wo.cols, d.n_heads * 32);
                ASSERT_EQ(L.wo.rows, c.dim);
                const size_t off = static_cast<size_t>(d.head_begin) * 32 * 2;  // f16
                for (int64_t row = 0; row < L.wo.rows; ++row)
                    ASSERT_EQ(std::memcmp(L.wo.row(row), F.wo.row(row) + off, L.wo.row_bytes), 0) << "row " << row;
            }
            // The KV cache: only this rank's KV heads (of the whole model's 2).
            auto sess = pl::Session::create(**m, 64);
            ASSERT_TRUE(sess) << sess.error_message();
            EXPECT_EQ((*sess)->kv_cache_bytes() * 2, (*full_session)->kv_cache_bytes() * static_cast<size_t>(d.n_kv_heads));
        }
        EXPECT_EQ(heads_next, 8);
        EXPECT_EQ(kv_copies, 4);  // tp4: one KV head each; tp3: 1 + 2 + 1
    }
    std::filesystem::remove_all(dir);
}

}  // namespace
