// SPDX-License-Identifier: MIT
#include "dist/plan.h"

#include "model/llama.h"

#include <algorithm>
#include <cmath>

namespace pl::dist {

double PlanModel::layer_params() const {
    const double d = dim, kv = kv_dim();
    return d * d * 2 + d * kv * 2 + 3.0 * d * hidden_dim;  // q, o; k, v; gate, up, down
}

double ring_allreduce_s(double bytes, int ranks, const PlanLink& link) {
    if (ranks <= 1) return 0;
    const double steps = 2.0 * (ranks - 1);
    return steps * link.latency_s + steps / ranks * bytes / (link.gbps * 1e9);
}

Result<PlanResult> plan(const PlanModel& m, const PlanMachine& hw, const PlanLayout& l) {
    if (l.tp < 1 || l.pp < 1 || l.dp < 1 || l.batch < 1) return err("tp, pp, dp and batch must be at least 1");
    if (m.n_layers < 1 || m.dim < 1 || m.n_heads < 1 || m.n_kv_heads < 1 || m.bytes_per_weight <= 0)
        return err("model shape '{}' is incomplete", m.name);
    if (m.dim % m.n_heads != 0 || m.n_heads % m.n_kv_heads != 0)
        return err("model shape '{}': dim={}, n_heads={} and n_kv_heads={} do not divide", m.name, m.dim, m.n_heads, m.n_kv_heads);
    if (l.pp > m.n_layers) return err("pp={} exceeds n_layers={}", l.pp, m.n_layers);
    if (hw.mem_gbps <= 0 || hw.efficiency <= 0 || hw.int8_gops <= 0) return err("device bandwidth, efficiency and int8 rate must be positive");
    const int T = l.tp, P = l.pp;
    // The KV heads of each rank (replicated ones once per rank that holds them), as the loader cuts
    // the model (which also checks that there are enough query heads, FFN blocks and vocabulary
    // rows for T ranks).
    ModelConfig c;
    c.dim = m.dim;
    c.hidden_dim = m.hidden_dim;
    c.n_layers = m.n_layers;
    c.n_heads = m.n_heads;
    c.n_kv_heads = m.n_kv_heads;
    c.head_dim = m.dim / m.n_heads;
    c.kv_dim = c.head_dim * m.n_kv_heads;
    c.vocab_size = m.vocab_size;
    int kv_copies = 0;
    bool kv_replicated = false;
    for (int r = 0; r < T; ++r) {
        ShardSpec s;
        s.tp_size = T;
        s.tp_rank = r;
        PL_ASSIGN_OR_RETURN(const ShardDims d, shard_dims(c, s, m.units));
        kv_copies += d.n_kv_heads;
        kv_replicated = kv_replicated || d.kv_replicated;
    }
    // One layer's weights summed over the tp group, and the KV width summed over it: the replicas'
    // attn_k and attn_v rows and KV cache counted on every rank that holds them (the whole
    // model's figures without replication).
    const double layer_params_group = m.layer_params() + 2.0 * m.dim * m.head_dim() * (kv_copies - m.n_kv_heads);
    const double kv_dim_group = m.head_dim() * kv_copies;
    const int M = l.micro_batches > 0 ? std::min(l.micro_batches, l.batch) : std::min(l.batch, P);
    const double b = std::ceil(static_cast<double>(l.batch) / M);  // tokens of one micro-batch step
    const double layers = std::ceil(static_cast<double>(m.n_layers) / P);  // the largest stage
    const int per_node = std::max(1, hw.devices_per_node);
    PlanResult r;
    r.tp_within_node = T <= per_node;
    r.kv_heads_rank = static_cast<double>(kv_copies) / T;
    r.kv_head_copies = kv_copies;
    r.kv_replicated = kv_replicated;
    const PlanLink& tp_link = r.tp_within_node ? hw.intra : hw.inter;
    // A replica of T*P ranks spans nodes when it is larger than one; stage hops then cross nodes
    // (placement: tp fastest, so consecutive stages are T ranks apart).
    const PlanLink& pp_link = T * P <= per_node ? hw.intra : hw.inter;
    if (T > 1 && (tp_link.gbps <= 0)) return err("tp={} needs a link bandwidth", T);
    if (P > 1 && (pp_link.gbps <= 0)) return err("pp={} needs a link bandwidth", P);

    // The last stage carries the output head; it is the slowest when the head outweighs the
    // rounding of layers, so take the larger of (layers) and (layers of the last + head).
    const double last_layers = std::floor(static_cast<double>(m.n_layers) / P);  // split_range: the first stages get the extra
    const double stage_params = std::max(layers * layer_params_group, last_layers * layer_params_group + m.head_params()) / T;
    r.weight_bytes_rank = stage_params * m.bytes_per_weight;
    const double kv_read = b * l.ctx * layers * 2.0 * kv_dim_group / T * l.kv_bytes;
    r.t_mem_s = (r.weight_bytes_rank + kv_read) / (hw.mem_gbps * hw.efficiency * 1e9);
    r.t_compute_s = 2.0 * stage_params * b / (hw.int8_gops * 1e9);
    const double t_dev = std::max(r.t_mem_s, r.t_compute_s);
    const double vec = b * m.dim * 4.0;  // one hidden-state vector per token, float
    if (T > 1) {
        const double logits = b * m.vocab_size * 4.0;
        r.t_tp_s = 2.0 * layers * ring_allreduce_s(vec, T, tp_link) +
                   // logits gather to tp rank 0 and the broadcast of the step's entries
                   tp_link.latency_s + (T - 1.0) / T * logits / (tp_link.gbps * 1e9) + tp_link.latency_s;
        r.tp_bytes_rank = 2.0 * layers * vec + logits / T;  // payload contributed (as the report counts it)
    }
    r.t_stage_s = t_dev + r.t_tp_s;
    if (P > 1) r.t_p2p_s = pp_link.latency_s + vec / (pp_link.gbps * 1e9);

    // Decode: a token's path crosses P stages and P-1 hops (and one logits hop back, counted as a
    // hop); M micro-batches keep the stages busy when M >= P.
    const double path = P * r.t_stage_s + (P > 1 ? P : 0) * r.t_p2p_s;
    r.round_s = std::max(M * r.t_stage_s, path);
    r.tokens_per_s = M * b * l.dp / r.round_s;
    r.tokens_per_s_seq = 1.0 / r.round_s;
    r.bubble = 1.0 - M * r.t_stage_s / r.round_s;
    r.comm_share = (P * r.t_tp_s + (P > 1 ? P : 0) * r.t_p2p_s) / path;
    if (l.prompt > 0) {
        // GPipe: the prompt in M micro-batches of n/M tokens; each step is compute- or
        // bandwidth-bound at n/M tokens.
        const int Mp = std::max(1, l.micro_batches > 0 ? l.micro_batches : P);
        const double n = std::ceil(static_cast<double>(l.prompt) / Mp);
        const double t_mem = r.weight_bytes_rank / (hw.mem_gbps * hw.efficiency * 1e9);
        const double t_comp = 2.0 * stage_params * n / (hw.int8_gops * 1e9);
        double t_tp = 0;
        if (T > 1) t_tp = 2.0 * layers * ring_allreduce_s(n * m.dim * 4.0, T, tp_link);
        const double t_hop = P > 1 ? pp_link.latency_s + n * m.dim * 4.0 / (pp_link.gbps * 1e9) : 0;
        const double step = std::max(t_mem, t_comp) + t_tp + t_hop;
        r.prefill_bubble = (P - 1.0) / (Mp + P - 1.0);
        r.prefill_tokens_per_s = l.prompt * l.dp / ((Mp + P - 1.0) * step);
    }
    // Memory of the largest rank: its layers' weights, the embedding table (stage 0; mapped but read a
    // row a token, counted in full / T as a device would hold it) and the output head (last stage;
    // one matrix with the embedding when tied), and its KV cache.
    const double lay = layer_params_group / T * m.bytes_per_weight, head = m.head_params() / T * m.bytes_per_weight;
    const double first = layers * lay + head + (P == 1 && !m.tied_embeddings ? head : 0);
    const double last = last_layers * lay + (m.tied_embeddings ? 0 : head);
    r.mem_weights_bytes = P == 1 ? first : std::max(first, last);
    r.mem_kv_bytes = static_cast<double>(l.batch) * l.ctx * layers * 2.0 * kv_dim_group / T * l.kv_bytes;
    r.fits = hw.mem_bytes <= 0 || r.mem_weights_bytes + r.mem_kv_bytes <= hw.mem_bytes;
    return r;
}

}  // namespace pl::dist
