// SPDX-License-Identifier: MIT
// Comm over MPI (the build with MPI; comm_serial.cpp is the one without).
#include "dist/comm.h"

#include "core/check.h"
#include "core/log.h"

// The C API only: Open MPI's (deprecated) C++ bindings would need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <deque>
#include <thread>

namespace pl::dist {
namespace {

bool mpi_live() {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

int to_int(size_t n) {
    PL_CHECK(n <= static_cast<size_t>(INT_MAX), "MPI message of {} elements is too large", n);
    return static_cast<int>(n);
}

// Wall time of one communication call, added to the stats when it goes out of scope.
class Timed {
public:
    Timed(CommStats& s, size_t bytes) : s_(s), t0_(std::chrono::steady_clock::now()) {
        s_.bytes_sent += bytes;
        ++s_.calls;
    }
    ~Timed() { s_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }

private:
    CommStats& s_;
    std::chrono::steady_clock::time_point t0_;
};

// Polls `done` until it returns true: back to back for the first 200 us (a message that is
// about to come), then napping 20 us, doubling up to 1 ms (a peer that idles costs no core).
template <class Done>
void poll_idle(Done done) {
    const auto t0 = std::chrono::steady_clock::now();
    auto nap = std::chrono::microseconds(20);
    while (!done()) {
        if (std::chrono::steady_clock::now() - t0 < std::chrono::microseconds(200)) continue;
        std::this_thread::sleep_for(nap);
        nap = std::min(nap * 2, std::chrono::microseconds(1000));
    }
}

}  // namespace

struct Comm::Impl {
    MPI_Comm comm = MPI_COMM_NULL;
    bool owned = false;
    struct Pending {
        MPI_Request req;
        std::vector<uint8_t> bytes;
    };
    std::deque<Pending> sends;
    MPI_Win win = MPI_WIN_NULL;
    float* win_base = nullptr;  // (size, max_n): slot r holds rank r's vector
    size_t win_n = 0;

    ~Impl() {
        if (!mpi_live()) return;
        for (auto& p : sends) MPI_Wait(&p.req, MPI_STATUS_IGNORE);
        if (win != MPI_WIN_NULL) MPI_Win_free(&win);
        if (owned && comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
    }
    // Frees the buffers of sends MPI has finished with.
    void reap() {
        while (!sends.empty()) {
            int done = 0;
            MPI_Test(&sends.front().req, &done, MPI_STATUS_IGNORE);
            if (!done) break;
            sends.pop_front();
        }
    }
};

Comm::Comm() = default;
Comm::~Comm() = default;
Comm::Comm(Comm&&) noexcept = default;
Comm& Comm::operator=(Comm&&) noexcept = default;

Comm Comm::split(int color, int key) const {
    Comm c;
    if (!impl_) return c;  // a world of one rank splits into itself
    c.impl_ = std::make_unique<Impl>();
    MPI_Comm_split(impl_->comm, color, key, &c.impl_->comm);
    c.impl_->owned = true;
    MPI_Comm_rank(c.impl_->comm, &c.rank_);
    MPI_Comm_size(c.impl_->comm, &c.size_);
    return c;
}

void Comm::allreduce_sum(float* x, size_t n) {
    if (size_ == 1) return;
    Timed t(stats_, n * sizeof(float));
    MPI_Allreduce(MPI_IN_PLACE, x, to_int(n), MPI_FLOAT, MPI_SUM, impl_->comm);
}

void Comm::allreduce_sum_rma(float* x, size_t n, size_t max_n) {
    if (size_ == 1) return;
    PL_CHECK(n <= max_n, "RMA allreduce of {} floats exceeds its window of {}", n, max_n);
    if (impl_->win == MPI_WIN_NULL || impl_->win_n < max_n) {
        if (impl_->win != MPI_WIN_NULL) MPI_Win_free(&impl_->win);
        const MPI_Aint bytes = static_cast<MPI_Aint>(max_n * sizeof(float) * static_cast<size_t>(size_));
        // Some transports cannot host a window (Open MPI 4.1's default osc/rdma over the TCP BTL
        // fails with MPI_ERR_WIN instead of falling back): say what to do instead of dying in MPI.
        MPI_Comm_set_errhandler(impl_->comm, MPI_ERRORS_RETURN);
        const int rc = MPI_Win_allocate(bytes, sizeof(float), MPI_INFO_NULL, impl_->comm, &impl_->win_base, &impl_->win);
        MPI_Comm_set_errhandler(impl_->comm, MPI_ERRORS_ARE_FATAL);
        if (rc != MPI_SUCCESS) {
            char msg[MPI_MAX_ERROR_STRING];
            int len = 0;
            MPI_Error_string(rc, msg, &len);
            std::fprintf(stderr,
                         "parallama: error: rank %d: --tp-reduce rma: MPI_Win_allocate failed (%.*s): this MPI cannot create "
                         "an RMA window over the transport in use; with Open MPI over TCP select the point-to-point "
                         "window component (mpirun --mca osc pt2pt), or use --tp-reduce allreduce\n",
                         rank_, len, msg);
            abort_world(1);
        }
        impl_->win_n = max_n;
    }
    Timed t(stats_, n * sizeof(float) * static_cast<size_t>(size_ - 1));
    const size_t slot = impl_->win_n;
    // The first fence opens the epoch (and ends reads of the previous call's slots), the second
    // makes every put visible.
    MPI_Win_fence(MPI_MODE_NOPRECEDE, impl_->win);
    for (int r = 0; r < size_; ++r) {
        if (r == rank_) continue;
        MPI_Put(x, to_int(n), MPI_FLOAT, r, static_cast<MPI_Aint>(slot * static_cast<size_t>(rank_)), to_int(n), MPI_FLOAT,
                impl_->win);
    }
    MPI_Win_fence(MPI_MODE_NOSUCCEED, impl_->win);
    std::memcpy(impl_->win_base + slot * static_cast<size_t>(rank_), x, n * sizeof(float));
    for (size_t i = 0; i < n; ++i) {
        float s = 0;
        for (int r = 0; r < size_; ++r) s += impl_->win_base[slot * static_cast<size_t>(r) + i];
        x[i] = s;
    }
}

int Comm::allreduce_max(int v) {
    if (size_ == 1) return v;
    Timed t(stats_, sizeof(int));
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, impl_->comm);
    return v;
}

void Comm::bcast(void* data, size_t bytes, int root) {
    if (size_ == 1) return;
    Timed t(stats_, rank_ == root ? bytes * static_cast<size_t>(size_ - 1) : 0);
    MPI_Bcast(data, to_int(bytes), MPI_BYTE, root, impl_->comm);
}

void Comm::bcast_idle(void* data, size_t bytes, int root) {
    if (size_ == 1) return;
    Timed t(stats_, rank_ == root ? bytes * static_cast<size_t>(size_ - 1) : 0);
    MPI_Request req;
    MPI_Ibcast(data, to_int(bytes), MPI_BYTE, root, impl_->comm, &req);
    poll_idle([&] {
        int done = 0;
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        return done != 0;
    });
}

void Comm::barrier() {
    if (size_ == 1) return;
    Timed t(stats_, 0);
    MPI_Barrier(impl_->comm);
}

void Comm::barrier_idle() {
    if (size_ == 1) return;
    Timed t(stats_, 0);
    MPI_Request req;
    MPI_Ibarrier(impl_->comm, &req);
    for (int done = 0;;) {
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

void Comm::gather(const void* data, size_t bytes, void* out, int root) {
    if (size_ == 1) {
        std::memcpy(out, data, bytes);
        return;
    }
    Timed t(stats_, rank_ == root ? 0 : bytes);
    MPI_Gather(data, to_int(bytes), MPI_BYTE, out, to_int(bytes), MPI_BYTE, root, impl_->comm);
}

void Comm::gatherv(const void* data, size_t bytes, void* out, const std::vector<size_t>& counts, int root) {
    if (size_ == 1) {
        std::memcpy(out, data, bytes);
        return;
    }
    Timed t(stats_, rank_ == root ? 0 : bytes);
    std::vector<int> cnt(static_cast<size_t>(size_)), displ(static_cast<size_t>(size_));
    size_t at = 0;
    for (int r = 0; r < size_; ++r) {
        cnt[static_cast<size_t>(r)] = to_int(counts[static_cast<size_t>(r)]);
        displ[static_cast<size_t>(r)] = to_int(at);
        at += counts[static_cast<size_t>(r)];
    }
    MPI_Gatherv(data, to_int(bytes), MPI_BYTE, out, cnt.data(), displ.data(), MPI_BYTE, root, impl_->comm);
}

void Comm::send(const void* data, size_t bytes, int dest, int tag) {
    PL_CHECK(impl_, "send on a world of one rank");
    Timed t(stats_, bytes);
    impl_->reap();
    const auto* p = static_cast<const uint8_t*>(data);
    impl_->sends.push_back({MPI_REQUEST_NULL, std::vector<uint8_t>(p, p + bytes)});
    auto& s = impl_->sends.back();
    MPI_Isend(s.bytes.data(), to_int(bytes), MPI_BYTE, dest, tag, impl_->comm, &s.req);
}

void Comm::wait_sends() {
    if (!impl_) return;
    Timed t(stats_, 0);
    for (auto& p : impl_->sends) MPI_Wait(&p.req, MPI_STATUS_IGNORE);
    impl_->sends.clear();
}

std::vector<uint8_t> Comm::recv(int src, int tag) {
    PL_CHECK(impl_, "recv on a world of one rank");
    Timed t(stats_, 0);
    MPI_Status st;
    MPI_Probe(src, tag, impl_->comm, &st);
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    std::vector<uint8_t> buf(static_cast<size_t>(count));
    MPI_Recv(buf.data(), count, MPI_BYTE, src, tag, impl_->comm, MPI_STATUS_IGNORE);
    return buf;
}

std::optional<Comm::Message> Comm::try_recv(int src, int tag) {
    PL_CHECK(impl_, "try_recv on a world of one rank");
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(src == kAnySource ? MPI_ANY_SOURCE : src, tag, impl_->comm, &flag, &st);
    if (!flag) return std::nullopt;
    Timed t(stats_, 0);
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    Message m{st.MPI_SOURCE, std::vector<uint8_t>(static_cast<size_t>(count))};
    MPI_Recv(m.bytes.data(), count, MPI_BYTE, st.MPI_SOURCE, tag, impl_->comm, MPI_STATUS_IGNORE);
    return m;
}

Comm::Message Comm::recv_idle(int src, int tag) {
    std::optional<Message> m;
    poll_idle([&] { return (m = try_recv(src, tag)).has_value(); });
    return std::move(*m);
}

namespace {
Comm& world_storage() {
    static Comm w;
    return w;
}
void finalize_at_exit() {
    if (mpi_live()) {
        world_storage().wait_sends();
        MPI_Finalize();
    }
}
}  // namespace

Status init_world() {
    if (!launched_by_mpirun() || mpi_live()) return Status::ok();
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) return err("MPI_Init_thread failed");
    std::atexit(finalize_at_exit);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    Comm& w = world_storage();
    w.impl_ = std::make_unique<Comm::Impl>();
    w.impl_->comm = MPI_COMM_WORLD;
    MPI_Comm_rank(MPI_COMM_WORLD, &w.rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &w.size_);
    set_log_rank(w.rank_, w.size_);
    if (provided < MPI_THREAD_FUNNELED) PL_LOG_WARN("MPI provides thread level {} < FUNNELED", provided);
    return Status::ok();
}

Comm& world() { return world_storage(); }

void abort_world(int code) {
    std::fflush(stdout);
    std::fflush(stderr);
    if (mpi_live()) MPI_Abort(MPI_COMM_WORLD, code);
    std::exit(code);
}

const char* mpi_library() {
    static char version[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
    if (!version[0]) {
        int len = 0;
        MPI_Get_library_version(version, &len);
        if (char* nl = std::strchr(version, ','); nl) *nl = 0;  // "Open MPI v4.1.4, package: ..." -> "Open MPI v4.1.4"
    }
    return version;
}

}  // namespace pl::dist
