// SPDX-License-Identifier: MIT
// Anonymous memory backed by transparent huge pages, for the weights of a model that fits in
// memory. A file mapping uses 4 KiB pages: streaming gigabytes of weights through it costs a TLB
// miss and a page walk every 4 KiB, and the hardware prefetchers stop at every page boundary.
// Copied into 2 MiB pages the same decode ran about 10 % faster here (docs/performance.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace pl {

// A 2 MiB-aligned anonymous mapping with MADV_HUGEPAGE; munmapped on destruction.
class HugeBuffer {
public:
    HugeBuffer() = default;
    // nullopt when the mapping fails (out of address space or memory).
    static std::optional<HugeBuffer> allocate(size_t bytes);
    ~HugeBuffer();
    HugeBuffer(HugeBuffer&& o) noexcept;
    HugeBuffer& operator=(HugeBuffer&& o) noexcept;
    HugeBuffer(const HugeBuffer&) = delete;
    HugeBuffer& operator=(const HugeBuffer&) = delete;

    uint8_t* data() const { return data_; }
    size_t size() const { return size_; }

private:
    void* map_ = nullptr;  // what mmap returned (the aligned data_ lies inside)
    size_t map_bytes_ = 0;
    uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

// The mode bracketed in /sys/kernel/mm/transparent_hugepage/enabled ("always [madvise] never"):
// "always", "madvise" or "never"; nullopt when malformed.
std::optional<std::string_view> parse_thp_mode(std::string_view text);
// False when the kernel has transparent huge pages off ("[never]") or the file is unreadable.
bool transparent_hugepages_usable();

// Processes of this job on this machine (Open MPI's OMPI_COMM_WORLD_LOCAL_SIZE, MPICH's
// MPI_LOCALNRANKS), 1 outside MPI or when unset or malformed.
int local_process_count();

}  // namespace pl
