// SPDX-License-Identifier: MIT
#include "bench/kernel_suite.h"

#include "bench/bench.h"
#include "bench/report.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/ops.h"
#include "quant/formats.h"
#include "quant/q3_5_fold.h"

#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

namespace pl::bench {
namespace {

uint64_t splitmix64(uint64_t& s) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Uniform floats in [-scale, scale) from a seeded generator (one stream per row, so the weights
// do not depend on the thread count).
void random_row(float* out, int64_t n, uint64_t seed, float scale) {
    uint64_t s = seed;
    for (int64_t i = 0; i < n; ++i)
        out[i] = scale * (static_cast<float>(splitmix64(s) >> 40) * (2.0f / 16777216.0f) - 1.0f);
}

struct AlignedFree {
    void operator()(uint8_t* p) const { std::free(p); }
};

struct Weights {
    std::unique_ptr<uint8_t, AlignedFree> data;  // (copies, rows, row_bytes)
    size_t bytes = 0;                            // one copy
    int copies = 1;
    size_t row_bytes = 0;
    uint32_t type = 0;  // the layout in memory: tt's, or q3.5-folded where the engine folds q3.5
};

// Rows of q3.5 are folded (quant/q3_5_fold.h) where Model::load would fold them, so the suite
// times what a model runs.
Result<Weights> make_weights(const TypeTraits& tt, const MatShape& s, uint64_t seed, int64_t l3_bytes, const CpuKernels& k) {
    auto rb = row_bytes(static_cast<uint32_t>(tt.type), s.cols);
    if (!rb) return err("{}: {} columns are not a multiple of the block size {}", tt.name, s.cols, tt.block_elems);
    const bool fold = tt.type == GgmlType::Q3_5 && folds_q3_5(k, s.cols);
    Weights w;
    w.type = static_cast<uint32_t>(fold ? GgmlType::Q3_5F : tt.type);
    const size_t file_rb = *rb;
    if (fold) rb = row_bytes(w.type, s.cols);
    w.row_bytes = *rb;
    w.bytes = *rb * static_cast<size_t>(s.rows);
    const uint64_t target = 4 * static_cast<uint64_t>(std::max<int64_t>(l3_bytes, 32 << 20));
    w.copies = static_cast<int>(std::clamp<uint64_t>((target + w.bytes - 1) / w.bytes, 1, 64));
    // 2 MiB pages, like the probe's buffer and like a model's mapping (the page cache maps GGUF
    // files with PMD-sized folios here: FilePmdMapped): with 4 KiB pages the GEMV measured up to
    // a third slower from TLB misses alone.
    constexpr size_t kHuge = size_t{1} << 21;
    const size_t total = (w.bytes * static_cast<size_t>(w.copies) + kHuge - 1) / kHuge * kHuge;
    w.data.reset(static_cast<uint8_t*>(std::aligned_alloc(kHuge, total)));
    if (!w.data) return err("cannot allocate {} MiB of {} weights", total >> 20, tt.name);
    madvise(w.data.get(), total, MADV_HUGEPAGE);
    uint8_t* base = w.data.get();
    const QuantizeRowFn q = tt.quantize_row;
    // kUniqueRows distinct rows, then tiled: the kernels' speed does not depend on the values,
    // and quantizing every row of a 28672x8192 matrix would dominate the run time.
    constexpr int64_t kUniqueRows = 1024;
    const int64_t unique = std::min(s.rows, kUniqueRows);
    bool folded_all = true;
#pragma omp parallel reduction(&& : folded_all)
    {
        std::vector<float> row(static_cast<size_t>(s.cols));
        std::vector<uint8_t> file_row(fold ? file_rb : 0);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < unique; ++r) {
            random_row(row.data(), s.cols, seed * 1000003ull + static_cast<uint64_t>(r), 1.0f);
            uint8_t* dst = base + static_cast<size_t>(r) * w.row_bytes;
            if (!fold) {
                q(row.data(), dst, s.cols);
                continue;
            }
            q(row.data(), file_row.data(), s.cols);
            folded_all = fold_row_q3_5(file_row.data(), dst, s.cols) && folded_all;
        }
    }
    if (!folded_all) return err("{} {}x{}: a quantized row cannot be folded (quant/q3_5_fold.h)", tt.name, s.rows, s.cols);
    for (int64_t r = unique; r < s.rows; r += unique) {
        const int64_t n = std::min(unique, s.rows - r);
        std::memcpy(base + static_cast<size_t>(r) * w.row_bytes, base, static_cast<size_t>(n) * w.row_bytes);
    }
    for (int c = 1; c < w.copies; ++c) std::memcpy(base + w.bytes * static_cast<size_t>(c), base, w.bytes);
    return w;
}

std::string shape_str(const MatShape& s) { return std::to_string(s.rows) + "x" + std::to_string(s.cols); }

}  // namespace

std::vector<MatShape> default_kernel_shapes() {
    return {{4096, 4096}, {11008, 4096}, {4096, 11008}, {8192, 8192},
            {28672, 8192}, {8192, 28672}, {1024, 8192}, {32000, 4096}};
}

std::vector<std::string> default_kernel_formats() { return {"q3.5", "q8_0", "q4_0", "q4_1", "f16", "f32"}; }

Result<std::vector<MatShape>> parse_shapes(const std::string& text) {
    std::vector<MatShape> out;
    for (const std::string& item : split_list(text)) {
        const size_t x = item.find('x');
        MatShape s;
        char* end = nullptr;
        if (x != std::string::npos) {
            s.rows = std::strtoll(item.c_str(), &end, 10);
            const bool ok1 = end == item.c_str() + x;
            s.cols = std::strtoll(item.c_str() + x + 1, &end, 10);
            if (!ok1 || *end != '\0') s.rows = 0;
        }
        if (s.rows <= 0 || s.cols <= 0 || s.rows > (1 << 20) || s.cols > (1 << 20))
            return err("bad shape '{}' (want ROWSxCOLS, e.g. 4096x11008)", item);
        if (s.cols % 32 != 0) return err("shape '{}': columns must be a multiple of 32", item);
        out.push_back(s);
    }
    if (out.empty()) return err("no shapes in '{}'", text);
    return out;
}

Result<std::vector<nlohmann::json>> run_kernel_suite(const KernelOptions& o, const MachineInfo& m, const LogFn& log) {
    const CpuKernels& k = cpu_kernels();
    std::vector<const TypeTraits*> types;
    for (const auto& f : o.formats) {
        const TypeTraits* tt = type_traits_by_name(f);
        if (!tt) return err("unknown weight format '{}'", f);
        const bool fast = k.dot_for(static_cast<uint32_t>(tt->type)) != nullptr;
        if (!tt->quantize_row || (!fast && !tt->dequantize_row))
            return err("format '{}' cannot be benchmarked (no quantizer or no matvec path)", f);
        types.push_back(tt);
    }
    struct Op {
        MatShape s;
        int batch;
        const char* test;
    };
    std::vector<Op> ops;
    for (const auto& s : o.shapes)
        for (int b : o.batches) ops.push_back({s, b, b == 1 ? "gemv" : "gemm"});
    if (o.square) ops.push_back({{8192, 8192}, 8192, "gemm_square"});

    std::vector<MatShape> shapes = o.shapes;
    if (o.square && std::none_of(shapes.begin(), shapes.end(), [](const MatShape& s) { return s.rows == 8192 && s.cols == 8192; }))
        shapes.push_back({8192, 8192});
    const size_t total = ops.size() * types.size() * o.threads.size() * o.threadings.size();
    size_t done = 0;
    const double t_start = now_s();
    std::vector<nlohmann::json> rows;
    // Bandwidth re-measured right before each row (the machine may be shared and noisy).
    ReadMeter meter(std::max<uint64_t>(256ull << 20, 8 * static_cast<uint64_t>(m.l3_bytes)));
    if (!meter.ok()) return err("kernels: cannot allocate the bandwidth buffer");
    for (const auto& s : shapes) {
        for (const TypeTraits* tt : types) {
            const double tg0 = now_s();
            auto w = make_weights(*tt, s, o.seed, m.l3_bytes, k);
            if (!w) return w.status();
            if (log) log(fmt::format("kernels: generated {} {} ({:.1f} MiB x {} copies) in {:.1f} s", tt->name, shape_str(s),
                                     static_cast<double>(w->bytes) / 1048576.0, w->copies, now_s() - tg0));
            for (const Op& op : ops) {
                if (op.s.rows != s.rows || op.s.cols != s.cols) continue;
                const int B = op.batch;
                std::vector<float> x(static_cast<size_t>(s.cols) * static_cast<size_t>(B));
                for (int b = 0; b < B; ++b)
                    random_row(x.data() + static_cast<size_t>(b) * static_cast<size_t>(s.cols), s.cols, o.seed + 7 + static_cast<uint64_t>(b), 1.0f);
                std::vector<float> y(static_cast<size_t>(s.rows) * static_cast<size_t>(B), 0.0f);
                const uint32_t type = w->type;
                const bool fast = k.dot_for(type) != nullptr;
                Q8Acts acts;
                acts.resize(s.cols, B);
                WeightView W;
                W.name = fmt::format("bench.{}.{}", tt->name, shape_str(s));
                W.type = type;
                W.rows = s.rows;
                W.cols = s.cols;
                W.row_bytes = w->row_bytes;
                int copy = 0;
                Threading th = Threading::Rows;
                const int64_t nb = s.cols / kQ8ABlock;
                auto run = [&] {
                    W.data = w->data.get() + w->bytes * static_cast<size_t>(copy);
                    copy = copy + 1 == w->copies ? 0 : copy + 1;
                    if (fast) {  // what Session::linear does: quantize the B input rows, one product
                        for (int b = 0; b < B; ++b)
                            k.quantize_acts_for(type)(x.data() + static_cast<size_t>(b) * static_cast<size_t>(s.cols), s.cols,
                                                      acts.qs.data() + b * s.cols, acts.d.data() + b * nb, acts.sum.data() + b * nb);
                        matmul_q8a(W, acts, y.data(), k, th);
                    } else {
                        matmul(W, x.data(), B, y.data());
                    }
                };
                for (int t : o.threads) for (Threading thr : o.threadings) {
                    if (!fast && thr != o.threadings.front()) continue;  // the float path has one way
                    th = fast ? thr : Threading::Rows;  // the float path always splits rows statically
                    ++done;
                    const std::string what = fmt::format("{} {} {} b{} t{} {}", op.test, tt->name, shape_str(s), B, t, threading_name(th));
                    double beside = 0;
                    for (double g : meter.measure(t, 3)) beside = std::max(beside, g);
                    omp_set_num_threads(t);
                    TimingOptions timing = o.timing;
                    if (B >= 1024) {  // the square product is long: no warm-up, at most 2 samples
                        timing.warmup = 0;
                        timing.repeat = std::min(timing.repeat, 2);
                    }
                    auto st = time_op(run, timing, what.c_str());
                    if (!st) return st.status();
                    // Paired with the read loop: a read of the meter buffer, then as many products
                    // as take about as long, alternating; the row's pct_paired is the median over
                    // pairs of (product GB/s / read GB/s). The two halves of a pair see nearly the
                    // same competition on a shared machine, which the probe's best of N (taken
                    // minutes earlier, on a quiet moment) does not.
                    std::vector<double> paired;
                    if (B < 1024) {
                        const int calls = std::max(1, static_cast<int>(std::ceil(timing.min_time_s / st->median)));
                        const uint64_t span = std::clamp<uint64_t>(static_cast<uint64_t>(w->bytes) * static_cast<uint64_t>(calls), 64ull << 20,
                                                                   meter.bytes() / 2);
                        uint64_t offset = 0;
                        for (int pr = 0; pr < std::max(1, timing.repeat); ++pr) {
                            const double read = meter.measure_span(t, offset, span);
                            offset = offset + 2 * span > meter.bytes() ? 0 : offset + span;
                            const double t0 = now_s();
                            for (int c = 0; c < calls; ++c) run();
                            const double op_s = (now_s() - t0) / calls;
                            if (read > 0 && op_s > 0) paired.push_back(static_cast<double>(w->bytes) / op_s * 1e-9 / read);
                        }
                    }
                    for (size_t i = 0; i < y.size(); ++i)
                        if (!std::isfinite(y[i])) return err("{}: non-finite output y[{}] = {}", what, i, y[i]);
                    const double sec = st->median;
                    const double flops = 2.0 * static_cast<double>(s.rows) * static_cast<double>(s.cols) * B;
                    const double gbps = static_cast<double>(w->bytes) / sec * 1e-9;
                    const double roof = m.bw_gbps(t);
                    nlohmann::json r;
                    r["suite"] = "kernels";
                    r["test"] = op.test;
                    r["id"] = fmt::format("kernels/{}/{}/{}/b{}/t{}{}", op.test, tt->name, shape_str(s), B, t,
                                          th == Threading::Rows ? std::string() : std::string("/") + threading_name(th));
                    r["threading"] = fast ? threading_name(th) : "rows";
                    r["format"] = tt->name;
                    const bool folded = type == static_cast<uint32_t>(GgmlType::Q3_5F);
                    r["path"] = fast ? fmt::format("int8-{}{}", isa_name(k.isa), folded ? (B > 1 ? "+amx-folded" : "-folded") : "")
                                     : std::string("float-ref");
                    r["rows"] = s.rows;
                    r["cols"] = s.cols;
                    r["batch"] = B;
                    r["threads"] = t;
                    r["weight_bytes"] = w->bytes;
                    r["copies"] = w->copies;
                    r["time_s"] = stats_json(*st);
                    const double gflops = flops / sec * 1e-9;
                    r["gflops"] = gflops;
                    put_peak(r, gflops, m, t, fast);  // int8 kernels, or the float path's FMAs
                    r["gbps"] = gbps;
                    r["roofline_gbps"] = roof;
                    r["pct_roofline"] = roof > 0 ? 100.0 * gbps / roof : 0.0;
                    r["bw_beside_gbps"] = beside;
                    if (auto ps = summarize(paired, what.c_str())) r["pct_paired"] = 100.0 * ps->median;
                    if (B > 1 && fast && !k.has_block_product(type))
                        r["note"] = fmt::format("{} dot products per row (no GEMM kernel for this format)", B);
                    rows.push_back(r);
                    const double el = now_s() - t_start;
                    if (log)
                        log(fmt::format("kernels [{}/{}] {}: {:.3f} ms, {:.1f} GB/s ({:.0f}% of {:.1f}; {:.1f} just before), {:.1f} GFLOP/s; {:.0f} s elapsed, ~{:.0f} s left",
                                        done, total, what, sec * 1e3, gbps, roof > 0 ? 100.0 * gbps / roof : 0.0, roof, beside,
                                        gflops, el, el / static_cast<double>(done) * static_cast<double>(total - done)));
                }
            }
        }
    }
    return rows;
}

}  // namespace pl::bench
