// SPDX-License-Identifier: MIT
#include "core/huge_pages.h"

#include "core/sys_file.h"

#include <sys/mman.h>

#include <cstdlib>
#include <string>
#include <utility>

namespace pl {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}

std::optional<HugeBuffer> HugeBuffer::allocate(size_t bytes) {
    HugeBuffer b;
    if (bytes == 0) return b;
    if (bytes > SIZE_MAX - kHugePage) return std::nullopt;
    b.map_bytes_ = bytes + kHugePage;
    void* p = ::mmap(nullptr, b.map_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return std::nullopt;
    b.map_ = p;
    const auto addr = reinterpret_cast<uintptr_t>(p);
    b.data_ = reinterpret_cast<uint8_t*>((addr + kHugePage - 1) & ~(uintptr_t{kHugePage} - 1));
    b.size_ = bytes;
    // Advice only: without huge pages the buffer still works, with 4 KiB pages.
    ::madvise(b.data_, bytes, MADV_HUGEPAGE);
    return b;
}

HugeBuffer::~HugeBuffer() {
    if (map_) ::munmap(map_, map_bytes_);
}

HugeBuffer::HugeBuffer(HugeBuffer&& o) noexcept
    : map_(std::exchange(o.map_, nullptr)),
      map_bytes_(std::exchange(o.map_bytes_, 0)),
      data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)) {}

HugeBuffer& HugeBuffer::operator=(HugeBuffer&& o) noexcept {
    if (this != &o) {
        if (map_) ::munmap(map_, map_bytes_);
        map_ = std::exchange(o.map_, nullptr);
        map_bytes_ = std::exchange(o.map_bytes_, 0);
        data_ = std::exchange(o.data_, nullptr);
        size_ = std::exchange(o.size_, 0);
    }
    return *this;
}

std::optional<std::string_view> parse_thp_mode(std::string_view text) {
    const size_t open = text.find('[');
    if (open == std::string_view::npos) return std::nullopt;
    const size_t close = text.find(']', open);
    if (close == std::string_view::npos) return std::nullopt;
    const std::string_view mode = text.substr(open + 1, close - open - 1);
    if (mode == "always" || mode == "madvise" || mode == "never") return mode;
    return std::nullopt;
}

bool transparent_hugepages_usable() {
    const auto t = read_small_file("/sys/kernel/mm/transparent_hugepage/enabled");
    if (!t) return false;
    const auto mode = parse_thp_mode(*t);
    return mode && *mode != "never";
}

int local_process_count() {
    for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"}) {
        const char* v = std::getenv(name);
        if (!v) continue;
        uint64_t n = 0;
        if (parse_field(v, n) && n >= 1 && n <= 1u << 20) return static_cast<int>(n);
    }
    return 1;
}

}  // namespace pl
