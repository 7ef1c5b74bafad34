// SPDX-License-Identifier: MIT
#include "serve/scheduler.h"

#include <algorithm>

namespace pl {

const char* finish_reason_name(FinishReason r) {
    switch (r) {
        case FinishReason::Length: return "length";
        case FinishReason::Stop: return "stop";
        case FinishReason::Cancelled: return "cancelled";
        case FinishReason::Error: return "error";
    }
    return "?";
}

Scheduler::Scheduler(Session& session, SchedulerOptions o) : session_(session), o_(o) {
    o_.step_tokens = std::clamp(o_.step_tokens, 1, 1 << 16);
    o_.prefill_chunk = std::clamp(o_.prefill_chunk, 1, o_.step_tokens);
    seqs_.resize(static_cast<size_t>(session.n_seq()));
}

int Scheduler::running() const {
    int n = 0;
    for (const Seq& s : seqs_) n += s.active;
    return n;
}

Status Scheduler::check(const SchedRequest& r) const {
    const ModelConfig& c = session_.config();
    if (r.prompt.empty()) return err("the prompt is empty");
    if (r.max_tokens < 1) return err("max_tokens must be at least 1 (got {})", r.max_tokens);
    for (size_t i = 0; i < r.prompt.size(); ++i)
        if (r.prompt[i] < 0 || r.prompt[i] >= c.vocab_size)
            return err("prompt token id {} at index {} is out of range [0, {})", r.prompt[i], i, c.vocab_size);
    const int64_t total = static_cast<int64_t>(r.prompt.size()) + r.max_tokens;
    if (total > session_.n_ctx())
        return err("the prompt ({} tokens) + max_tokens {} exceeds the context size {}", r.prompt.size(), r.max_tokens,
                   session_.n_ctx());
    if (blocks_for(static_cast<int>(total)) > session_.kv_blocks_total())
        return err("the prompt + max_tokens ({} tokens) is more than the whole KV cache ({} tokens)", total,
                   session_.kv_blocks_total() * Session::kKvBlock);
    return r.sampling.validate();
}

Result<int64_t> Scheduler::submit(SchedRequest r) {
    PL_TRY(check(r));
    if (static_cast<int>(queue_.size()) >= o_.max_queue) return err("too many queued requests ({}); try again later", queue_.size());
    const int64_t id = next_id_++;
    queue_.emplace_back(id, std::move(r));
    return id;
}

void Scheduler::cancel(int64_t id) {
    for (Seq& s : seqs_)
        if (s.active && s.id == id) s.cancelled = true;
    for (const auto& q : queue_)
        if (q.first == id) cancel_queued_.push_back(id);
}

void Scheduler::finish(Seq& s, FinishReason why) {
    const int slot = static_cast<int>(&s - seqs_.data());
    if (group_)
        group_->seq_free(slot);
    else
        session_.seq_free(slot);
    promised_ -= s.reserved_blocks;
    s.active = false;
    if (s.req.on_done) s.req.on_done(why, s.generated);
    s.req = SchedRequest{};
}

Result<bool> Scheduler::step() {
    // Cancellations first: queued ones never start, running ones give their slot back.
    for (int64_t id : cancel_queued_) {
        auto it = std::find_if(queue_.begin(), queue_.end(), [&](const auto& q) { return q.first == id; });
        if (it == queue_.end()) continue;
        SchedRequest r = std::move(it->second);
        queue_.erase(it);
        if (r.on_done) r.on_done(FinishReason::Cancelled, 0);
    }
    cancel_queued_.clear();
    for (Seq& s : seqs_)
        if (s.active && s.cancelled) finish(s, FinishReason::Cancelled);

    // Admission: a free slot and KV blocks for the whole request (prompt + max_tokens), so a
    // running sequence can never run out of cache; first come, first served.
    const int32_t vocab = session_.config().vocab_size;
    for (Seq& s : seqs_) {
        if (s.active || queue_.empty()) continue;
        const SchedRequest& r = queue_.front().second;
        const int need = blocks_for(static_cast<int>(r.prompt.size()) + r.max_tokens);
        if (promised_ + need > session_.kv_blocks_total()) break;
        s = Seq{};
        s.active = true;
        s.id = queue_.front().first;
        s.req = std::move(queue_.front().second);
        queue_.pop_front();
        s.sampler = Sampler(s.req.sampling, vocab);
        for (int32_t t : s.req.prompt) s.sampler.accept(t);
        s.reserved_blocks = need;
        promised_ += need;
    }

    // Entries: one decode token per generating sequence first, then prompt chunks in the budget left.
    std::vector<BatchEntry> entries;
    std::vector<int> owners;  // sequence slot of each logits row, in entry order
    int budget = o_.step_tokens;
    for (size_t i = 0; i < seqs_.size() && budget > 0; ++i) {
        Seq& s = seqs_[i];
        if (!s.active || s.fed < static_cast<int>(s.req.prompt.size())) continue;
        entries.push_back({static_cast<int>(i), s.len, s.next, true});
        owners.push_back(static_cast<int>(i));
        --budget;
    }
    std::vector<std::pair<int, int>> chunks;  // (slot, tokens fed this step)
    for (size_t i = 0; i < seqs_.size() && budget > 0; ++i) {
        Seq& s = seqs_[i];
        const int plen = static_cast<int>(s.req.prompt.size());
        if (!s.active || s.fed >= plen) continue;
        const int n = std::min({o_.prefill_chunk, plen - s.fed, budget});
        for (int j = 0; j < n; ++j) {
            const int p = s.fed + j;
            entries.push_back({static_cast<int>(i), p, s.req.prompt[static_cast<size_t>(p)], p == plen - 1});
            if (p == plen - 1) owners.push_back(static_cast<int>(i));
        }
        chunks.emplace_back(static_cast<int>(i), n);
        budget -= n;
    }
    if (entries.empty()) return false;
    // decode() lists logits in entry order, which is the order `owners` was built in.
    logits_.resize(owners.size() * static_cast<size_t>(vocab));
    if (Status st = group_ ? group_->decode(entries, logits_.data()) : session_.decode(entries, logits_.data()); !st) {
        for (Seq& s : seqs_)
            if (s.active) finish(s, FinishReason::Error);
        return st;
    }
    ++steps_;
    last_batch_ = static_cast<int>(entries.size());
    for (const auto& [slot, n] : chunks) {
        Seq& s = seqs_[static_cast<size_t>(slot)];
        s.fed += n;
        s.len = s.fed;
    }
    for (size_t j = 0; j < owners.size(); ++j) {
        Seq& s = seqs_[static_cast<size_t>(owners[j])];
        if (!s.active) continue;
        if (s.fed == static_cast<int>(s.req.prompt.size()) && s.generated > 0) ++s.len;  // the decode token just fed
        std::span<float> row(logits_.data() + j * static_cast<size_t>(vocab), static_cast<size_t>(vocab));
        const int32_t tok = s.sampler.sample(row);
        s.sampler.accept(tok);
        ++s.generated;
        if (std::find(s.req.stop_tokens.begin(), s.req.stop_tokens.end(), tok) != s.req.stop_tokens.end()) {
            finish(s, FinishReason::Stop);
            continue;
        }
        if (s.req.on_token && !s.req.on_token(tok)) {
            finish(s, FinishReason::Cancelled);
            continue;
        }
        if (s.generated >= s.req.max_tokens) {
            finish(s, FinishReason::Length);
            continue;
        }
        s.next = tok;
    }
    return true;
}

}  // namespace pl
