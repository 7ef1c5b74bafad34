// SPDX-License-Identifier: MIT
// Collecting an importance matrix (quant/imatrix.h): the calibration text is chunked as for
// perplexity (perplexity.h) and every token of every chunk runs through the model with all logits
// requested, so every matrix, the output head included, sees every token. Session's activation
// observer hands over each product's float input x (W.cols values); per weight tensor we add
// x[j]^2 into a double accumulator per column and count the calls. Matrices that share an input
// (attn_q/k/v, ffn_gate/up) are recorded separately under their own names. With tied embeddings
// the output head is "token_embd.weight".
// Threads: the observer runs on the forward pass's calling thread; accumulation is serial and
// cheap (one multiply-add per input value) next to the products themselves.
#pragma once

#include "core/status.h"
#include "eval/perplexity.h"
#include "quant/imatrix.h"

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace pl {
class Model;
struct WeightView;
}  // namespace pl

namespace pl::eval {

class ImatrixCollector {
public:
    // covariance: also accumulate x x^T per full 256-column group (Imatrix::cov).
    explicit ImatrixCollector(bool covariance = false) : covariance_(covariance) {}
    // Adds one input vector x (W.cols floats) for the weight W.
    void observe(const WeightView& W, const float* x);
    // Means per column (sum / count) with the given metadata.
    Imatrix result(std::string dataset, uint32_t chunk_count, uint32_t chunk_size, uint64_t token_count);
    size_t n_tensors() const { return entries_.size(); }
    // Times `weight_name` was observed (0 when never).
    uint64_t count(const std::string& weight_name) const;

private:
    struct Entry {
        std::string name;
        std::vector<double> sum2;  // (cols)
        uint64_t count = 0;
        std::vector<double> cov;     // (groups x 256 x 256) sums of x x^T, when covariance_
        std::vector<float> pending;  // inputs not yet added to cov (kCovBatch rows at most)
        int n_pending = 0;
    };
    static constexpr int kCovBatch = 32;
    static void flush(Entry& e);
    bool covariance_ = false;
    std::vector<Entry> entries_;  // in first-seen (forward) order
    std::unordered_map<std::string, size_t> index_;
};

// Runs every chunk through `model` collecting activations; `on_chunk` also gets the running
// perplexity of the calibration text (second halves scored, as perplexity()).
Result<Imatrix> collect_imatrix(const Model& model, const Chunks& chunks, bool reference, const std::string& dataset,
                                const PplChunkFn& on_chunk = {}, bool covariance = false);

}  // namespace pl::eval
