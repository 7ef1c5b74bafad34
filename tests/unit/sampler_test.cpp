// SPDX-License-Identifier: MIT
// Sampler: greedy/argmax ties, temperature distributions, top-k, top-p, min-p, repetition penalty,
// seeded reproducibility, parameter validation, and no allocation inside sample().
#include "sampling/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <map>
#include <new>
#include <numeric>
#include <random>
#include <set>
#include <vector>

// Counting global allocator: lets a test assert that sample() never allocates.
namespace {
std::atomic<long> g_allocs{0};
}
void* operator new(std::size_t n) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace pl {
namespace {

SamplingParams plain(float temperature, uint64_t seed = 1) {
    SamplingParams p;
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.seed = seed;
    return p;
}

std::vector<double> softmax(const std::vector<float>& l, double t) {
    const double mx = *std::max_element(l.begin(), l.end());
    std::vector<double> p(l.size());
    double z = 0;
    for (size_t i = 0; i < l.size(); ++i) z += p[i] = std::exp((l[i] - mx) / t);
    for (auto& v : p) v /= z;
    return p;
}

std::vector<double> frequencies(Sampler& s, const std::vector<float>& logits, int draws) {
    std::vector<double> f(logits.size(), 0.0);
    std::vector<float> work(logits.size());
    for (int i = 0; i < draws; ++i) {
        work = logits;
        f[static_cast<size_t>(s.sample(work))] += 1.0;
    }
    for (auto& v : f) v /= draws;
    return f;
}

// |freq - p| within 5 standard errors (plus a small floor): false-failure odds ~1e-6 per token.
void expect_matches(const std::vector<double>& freq, const std::vector<double>& p, int draws, const char* what) {
    ASSERT_EQ(freq.size(), p.size());
    for (size_t i = 0; i < p.size(); ++i) {
        const double se = std::sqrt(p[i] * (1 - p[i]) / draws);
        EXPECT_NEAR(freq[i], p[i], 5 * se + 1e-4) << what << ": token " << i;
    }
}

std::set<int32_t> candidate_ids(const Sampler& s) {
    std::set<int32_t> ids;
    for (const auto& c : s.last_candidates()) ids.insert(c.second);
    return ids;
}

TEST(Sampler, ArgmaxTiesToLowestId) {
    const std::vector<float> l = {1.0f, 3.0f, 3.0f, 2.0f};
    EXPECT_EQ(argmax(l), 1);
    EXPECT_EQ(argmax(std::vector<float>{-INFINITY, -INFINITY}), 0);
    EXPECT_EQ(argmax(std::vector<float>{-5.0f}), 0);
    EXPECT_EQ(argmax(std::vector<float>{0.0f, 0.0f, 1e-30f}), 2);
}

TEST(Sampler, GreedyIsArgmax) {
    std::mt19937 rng(3);
    std::normal_distribution<float> dist;
    Sampler s(plain(0.0f), 1000);
    for (int it = 0; it < 50; ++it) {
        std::vector<float> l(1000);
        for (auto& v : l) v = dist(rng);
        l[17] = l[900] = 100.0f;  // tie: lowest id wins
        EXPECT_EQ(s.sample(l), 17);
        EXPECT_TRUE(s.last_candidates().empty());
    }
}

TEST(Sampler, TopK1IsAlwaysArgmax) {
    std::mt19937 rng(5);
    std::normal_distribution<float> dist;
    SamplingParams p = plain(1.5f);
    p.top_k = 1;
    Sampler s(p, 5000);
    for (int it = 0; it < 200; ++it) {
        std::vector<float> l(5000);
        for (auto& v : l) v = dist(rng);
        const int32_t want = argmax(l);
        EXPECT_EQ(s.sample(l), want);
    }
}

TEST(Sampler, TemperatureMatchesSoftmax) {
    const std::vector<float> l = {1.0f, 2.0f, 0.5f, -1.0f, 3.0f, 2.0f};
    constexpr int kDraws = 20000;
    for (const float t : {0.5f, 1.0f, 2.0f}) {
        Sampler s(plain(t, 1234), static_cast<int32_t>(l.size()));
        expect_matches(frequencies(s, l, kDraws), softmax(l, t), kDraws, "temperature");
    }
}

TEST(Sampler, TopKRestrictsAndRenormalises) {
    const std::vector<float> l = {0.1f, 2.0f, -1.0f, 1.5f, 0.7f, 3.0f, -2.0f, 1.0f};
    SamplingParams p = plain(1.0f, 77);
    p.top_k = 3;  // keeps ids 5 (3.0), 1 (2.0), 3 (1.5)
    Sampler s(p, static_cast<int32_t>(l.size()));
    constexpr int kDraws = 20000;
    const auto f = frequencies(s, l, kDraws);
    EXPECT_EQ(candidate_ids(s), (std::set<int32_t>{1, 3, 5}));
    std::vector<double> want(l.size(), 0.0);
    const auto sub = softmax({3.0f, 2.0f, 1.5f}, 1.0);
    want[5] = sub[0];
    want[1] = sub[1];
    want[3] = sub[2];
    expect_matches(f, want, kDraws, "top_k=3");
}

TEST(Sampler, TopKTiesBrokenTowardsLowerId) {
    const std::vector<float> l = {1.0f, 5.0f, 5.0f, 5.0f, 0.0f};
    SamplingParams p = plain(1.0f);
    p.top_k = 2;
    Sampler s(p, 5);
    std::vector<float> w = l;
    (void)s.sample(w);
    EXPECT_EQ(candidate_ids(s), (std::set<int32_t>{1, 2}));
}

std::vector<float> log_probs(const std::vector<double>& p) {
    std::vector<float> l;
    for (double v : p) l.push_back(static_cast<float>(std::log(v)));
    return l;
}

TEST(Sampler, TopPExcludesTailExactly) {
    // Probabilities 0.05, 0.5, 0.15, 0.3 (ids 0..3). Sorted: 0.5 (1), 0.3 (3), 0.15 (2), 0.05 (0).
    // Cumulative: 0.5, 0.8, 0.95, 1.0. top_p = 0.79 keeps {1, 3}; 0.81 keeps {1, 3, 2};
    // 0.3 keeps only {1} (the first token already reaches it); 1.0 keeps all.
    const auto l = log_probs({0.05, 0.5, 0.15, 0.3});
    struct Case {
        float top_p;
        std::set<int32_t> kept;
    };
    const Case cases[] = {{0.79f, {1, 3}}, {0.81f, {1, 2, 3}}, {0.3f, {1}}, {0.96f, {0, 1, 2, 3}}, {1.0f, {0, 1, 2, 3}}};
    for (const auto& c : cases) {
        SamplingParams p = plain(1.0f, 9);
        p.top_p = c.top_p;
        Sampler s(p, 4);
        constexpr int kDraws = 20000;
        const auto f = frequencies(s, l, kDraws);
        EXPECT_EQ(candidate_ids(s), c.kept) << "top_p=" << c.top_p;
        // Drawn frequencies: renormalised over the kept set, exactly zero outside it.
        double z = 0;
        const double probs[] = {0.05, 0.5, 0.15, 0.3};
        for (int32_t id : c.kept) z += probs[id];
        std::vector<double> want(4, 0.0);
        for (int32_t id : c.kept) want[static_cast<size_t>(id)] = probs[id] / z;
        for (int id = 0; id < 4; ++id) {
            if (!c.kept.count(id)) {
                EXPECT_EQ(f[static_cast<size_t>(id)], 0.0) << "top_p=" << c.top_p << " id " << id;
            }
        }
        expect_matches(f, want, kDraws, "top_p");
    }
}

TEST(Sampler, TopPUsesTopKSurvivorsAndTemperatureOne) {
    // top-k=2 first: {0.5, 0.3} renormalised to {0.625, 0.375}; top_p = 0.6 then keeps only id 1.
    // Temperature (applied after) does not change which tokens survive.
    const auto l = log_probs({0.05, 0.5, 0.15, 0.3});
    SamplingParams p = plain(5.0f);
    p.top_k = 2;
    p.top_p = 0.6f;
    Sampler s(p, 4);
    std::vector<float> w = l;
    EXPECT_EQ(s.sample(w), 1);
    EXPECT_EQ(candidate_ids(s), (std::set<int32_t>{1}));
    p.top_p = 0.63f;  // needs both of the top-k survivors
    Sampler s2(p, 4);
    w = l;
    (void)s2.sample(w);
    EXPECT_EQ(candidate_ids(s2), (std::set<int32_t>{1, 3}));
}

TEST(Sampler, TopPLargeVocabMatchesFullSort) {
    // 128k vocabulary: the lazily sorted nucleus equals the one from a full sort.
    constexpr int32_t kVocab = 128 * 1024;
    std::mt19937 rng(11);
    std::normal_distribution<float> dist(0.0f, 3.0f);
    std::vector<float> l(kVocab);
    for (auto& v : l) v = dist(rng);
    for (const float top_p : {0.5f, 0.9f, 0.99f}) {
        SamplingParams p = plain(0.8f, 5);
        p.top_p = top_p;
        Sampler s(p, kVocab);
        std::vector<float> w = l;
        const int32_t tok = s.sample(w);

        std::vector<int32_t> order(kVocab);
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
        const float mx = l[static_cast<size_t>(order[0])];
        double z = 0;
        for (float v : l) z += std::exp(static_cast<double>(v - mx));
        std::set<int32_t> want;
        double cum = 0;
        for (int32_t id : order) {
            want.insert(id);
            cum += std::exp(static_cast<double>(l[static_cast<size_t>(id)] - mx)) / z;
            if (cum >= top_p) break;
        }
        EXPECT_GT(want.size(), 64u) << "test should cross the first sort chunk";
        EXPECT_EQ(candidate_ids(s), want) << "top_p=" << top_p;
        EXPECT_TRUE(want.count(tok));
    }
}

TEST(Sampler, MinPThreshold) {
    // p_i / p_max = exp(l_i - l_max). min_p = 0.1 keeps ratios >= 0.1.
    const std::vector<float> l = {0.0f, std::log(0.5f), std::log(0.1001f), std::log(0.0999f), -30.0f};
    SamplingParams p = plain(1.0f, 3);
    p.min_p = 0.1f;
    Sampler s(p, 5);
    constexpr int kDraws = 20000;
    const auto f = frequencies(s, l, kDraws);
    EXPECT_EQ(candidate_ids(s), (std::set<int32_t>{0, 1, 2}));
    EXPECT_EQ(f[3], 0.0);
    EXPECT_EQ(f[4], 0.0);
    const double z = 1.0 + 0.5 + 0.1001;
    expect_matches(f, {1.0 / z, 0.5 / z, 0.1001 / z, 0.0, 0.0}, kDraws, "min_p");

    // Exact boundary: min_p = 1 keeps exactly the tokens equal to the maximum (ratio exactly 1),
    // and drops one a single ulp below.
    const float top = 2.0f;
    const std::vector<float> l2 = {top, std::nextafter(top, 0.0f), top, 1.0f};
    p.min_p = 1.0f;
    Sampler s2(p, 4);
    std::vector<float> w = l2;
    (void)s2.sample(w);
    EXPECT_EQ(candidate_ids(s2), (std::set<int32_t>{0, 2}));
}

TEST(Sampler, MinPComposesWithTopP) {
    // Both keep prefixes; the result is the shorter one. Probabilities 0.5, 0.3, 0.15, 0.05.
    const auto l = log_probs({0.5, 0.3, 0.15, 0.05});
    SamplingParams p = plain(1.0f);
    p.top_p = 0.9f;   // alone: {0, 1, 2}
    p.min_p = 0.5f;   // alone: ratio >= 0.5 -> {0, 1} (0.3 / 0.5 = 0.6)
    Sampler s(p, 4);
    std::vector<float> w = l;
    (void)s.sample(w);
    EXPECT_EQ(candidate_ids(s), (std::set<int32_t>{0, 1}));
    p.top_p = 0.4f;   // now top-p is the shorter: {0}
    Sampler s2(p, 4);
    w = l;
    (void)s2.sample(w);
    EXPECT_EQ(candidate_ids(s2), (std::set<int32_t>{0}));
}

TEST(Sampler, RepetitionPenaltyLlamaCppSemantics) {
    SamplingParams p = plain(0.0f);
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 3;
    Sampler s(p, 5);
    for (int32_t id : {4, 0, 1, 1}) s.accept(id);  // window of 3: {0, 1, 1}; 4 fell out
    std::vector<float> l = {2.0f, -2.0f, 1.0f, 0.5f, 1.9f};
    // Positive logits are divided, negative multiplied, once per distinct id:
    //   id 0: 2 / 2 = 1;  id 1: -2 * 2 = -4 (not -8 although it occurs twice);  id 4 untouched.
    EXPECT_EQ(s.sample(l), 4);  // argmax of {1, -4, 1, 0.5, 1.9}
    EXPECT_EQ(l, (std::vector<float>{1.0f, -4.0f, 1.0f, 0.5f, 1.9f}));

    // Zero stays zero; penalty < 1 boosts.
    SamplingParams q = plain(0.0f);
    q.repeat_penalty = 0.5f;
    Sampler s2(q, 3);
    s2.accept(0);
    s2.accept(2);
    std::vector<float> l2 = {0.0f, 0.5f, 0.3f};
    EXPECT_EQ(s2.sample(l2), 2);  // 0.3 / 0.5 = 0.6 > 0.5
    EXPECT_EQ(l2, (std::vector<float>{0.0f, 0.5f, 0.6f}));

    // repeat_last_n = 0 disables it; reset() forgets history.
    SamplingParams r = plain(0.0f);
    r.repeat_penalty = 2.0f;
    r.repeat_last_n = 0;
    Sampler s3(r, 2);
    s3.accept(0);
    std::vector<float> l3 = {1.0f, 0.9f};
    EXPECT_EQ(s3.sample(l3), 0);
    s.reset();
    std::vector<float> l4 = {2.0f, -2.0f, 1.0f, 0.5f, 1.9f};
    EXPECT_EQ(s.sample(l4), 0);
    EXPECT_EQ(l4[0], 2.0f);
}

TEST(Sampler, SeededReproducibility) {
    std::mt19937 rng(21);
    std::normal_distribution<float> dist;
    std::vector<float> l(3000);
    for (auto& v : l) v = dist(rng);
    auto run = [&](uint64_t seed) {
        SamplingParams p;  // defaults: temp 0.8, top_k 40, top_p 0.95, min_p 0.05
        p.seed = seed;
        Sampler s(p, 3000);
        std::vector<int32_t> out;
        for (int i = 0; i < 300; ++i) {
            std::vector<float> w = l;
            out.push_back(s.sample(w));
        }
        return out;
    };
    const auto a = run(42), b = run(42), c = run(43);
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
    EXPECT_GT(std::set<int32_t>(a.begin(), a.end()).size(), 5u) << "should actually be sampling";

    // reset() restarts the random stream.
    SamplingParams p;
    p.seed = 42;
    Sampler s(p, 3000);
    std::vector<int32_t> first;
    for (int i = 0; i < 20; ++i) {
        std::vector<float> w = l;
        first.push_back(s.sample(w));
    }
    s.reset();
    for (int i = 0; i < 20; ++i) {
        std::vector<float> w = l;
        EXPECT_EQ(s.sample(w), first[static_cast<size_t>(i)]);
    }
}

TEST(Sampler, MaskedLogitsNeverDrawn) {
    std::vector<float> l = {-INFINITY, 0.0f, -INFINITY, 0.0f};
    SamplingParams p = plain(1.0f);
    Sampler s(p, 4);
    for (int i = 0; i < 2000; ++i) {
        std::vector<float> w = l;
        const int32_t t = s.sample(w);
        EXPECT_TRUE(t == 1 || t == 3);
    }
}

TEST(Sampler, ValidateNamesTheField) {
    EXPECT_TRUE(SamplingParams{}.validate().is_ok());
    struct Bad {
        SamplingParams p;
        const char* field;
    };
    std::vector<Bad> bad;
    auto with = [](auto f) {
        SamplingParams p;
        f(p);
        return p;
    };
    bad.push_back({with([](SamplingParams& p) { p.temperature = -0.1f; }), "temperature"});
    bad.push_back({with([](SamplingParams& p) { p.temperature = NAN; }), "temperature"});
    bad.push_back({with([](SamplingParams& p) { p.temperature = INFINITY; }), "temperature"});
    bad.push_back({with([](SamplingParams& p) { p.top_p = 0.0f; }), "top_p"});
    bad.push_back({with([](SamplingParams& p) { p.top_p = 1.5f; }), "top_p"});
    bad.push_back({with([](SamplingParams& p) { p.top_p = NAN; }), "top_p"});
    bad.push_back({with([](SamplingParams& p) { p.min_p = -0.01f; }), "min_p"});
    bad.push_back({with([](SamplingParams& p) { p.min_p = 1.01f; }), "min_p"});
    bad.push_back({with([](SamplingParams& p) { p.repeat_penalty = 0.0f; }), "repeat_penalty"});
    bad.push_back({with([](SamplingParams& p) { p.repeat_penalty = NAN; }), "repeat_penalty"});
    bad.push_back({with([](SamplingParams& p) { p.repeat_last_n = -1; }), "repeat_last_n"});
    for (const auto& b : bad) {
        const Status st = b.p.validate();
        EXPECT_FALSE(st.is_ok()) << b.field;
        EXPECT_NE(st.message().find(b.field), std::string::npos) << st.message();
    }
    // Boundary values that are valid.
    EXPECT_TRUE(with([](SamplingParams& p) { p.temperature = 0.0f; p.top_p = 1.0f; p.min_p = 0.0f; p.top_k = -1; })
                    .validate()
                    .is_ok());
    EXPECT_TRUE(with([](SamplingParams& p) { p.min_p = 1.0f; p.repeat_last_n = 0; }).validate().is_ok());
}

TEST(Sampler, SampleDoesNotAllocate) {
    constexpr int32_t kVocab = 32000;
    std::mt19937 rng(1);
    std::normal_distribution<float> dist(0.0f, 2.0f);
    std::vector<float> l(kVocab), w(kVocab);
    for (auto& v : l) v = dist(rng);
    for (const SamplingParams& p : {SamplingParams{}, plain(1.0f), plain(0.0f)}) {
        SamplingParams q = p;
        q.repeat_penalty = 1.1f;
        q.top_p = 0.99f;  // forces the lazy sort over many chunks
        const long at_start = g_allocs.load();
        Sampler s(q, kVocab);
        ASSERT_GT(g_allocs.load(), at_start) << "allocation counter is not live";
        for (int i = 0; i < 100; ++i) s.accept(i * 7);
        const long before = g_allocs.load();
        for (int i = 0; i < 20; ++i) {
            std::copy(l.begin(), l.end(), w.begin());
            (void)s.sample(w);
        }
        EXPECT_EQ(g_allocs.load() - before, 0) << "sample() allocated";
    }
}

}  // namespace
}  // namespace pl
