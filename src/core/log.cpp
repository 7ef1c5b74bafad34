// SPDX-License-Identifier: MIT
#include "core/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace pl {
namespace {

LogLevel level_from_env() {
    const char* v = std::getenv("PARALLAMA_LOG");
    if (!v) return LogLevel::Warn;
    if (!std::strcmp(v, "debug")) return LogLevel::Debug;
    if (!std::strcmp(v, "info")) return LogLevel::Info;
    if (!std::strcmp(v, "warn")) return LogLevel::Warn;
    if (!std::strcmp(v, "error")) return LogLevel::Error;
    if (!std::strcmp(v, "off")) return LogLevel::Off;
    return LogLevel::Warn;
}

std::atomic<int> g_level{static_cast<int>(level_from_env())};
std::atomic<int> g_rank{-1};
std::atomic<int> g_size{0};
const auto g_start = std::chrono::steady_clock::now();
std::mutex g_mutex;

}  // namespace

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }
void set_log_rank(int rank, int size) {
    g_rank = rank;
    g_size = size;
}

void log_write(LogLevel level, std::string_view message) {
    static const char kTag[] = {'D', 'I', 'W', 'E'};
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - g_start).count();
    std::string line;
    if (g_rank >= 0)
        line = fmt::format("[{} {:.3f}s r{}/{}] {}\n", kTag[static_cast<int>(level)], t, g_rank.load(), g_size.load(), message);
    else
        line = fmt::format("[{} {:.3f}s] {}\n", kTag[static_cast<int>(level)], t, message);
    std::lock_guard<std::mutex> lock(g_mutex);
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
}

}  // namespace pl
