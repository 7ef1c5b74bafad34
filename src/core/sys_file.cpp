// SPDX-License-Identifier: MIT
#include "core/sys_file.h"

#include <fstream>
#include <sstream>

namespace pl {

std::optional<std::string> read_small_file(const std::string& path) {
    std::ifstream f(path);
    if (!f) return std::nullopt;
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

std::vector<std::string_view> text_lines(std::string_view text) {
    std::vector<std::string_view> out;
    while (!text.empty()) {
        const size_t end = text.find('\n');
        out.push_back(text.substr(0, end));
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    }
    return out;
}

std::vector<std::string_view> text_fields(std::string_view text) {
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && space(text[i])) ++i;
        size_t j = i;
        while (j < text.size() && !space(text[j])) ++j;
        if (j > i) out.push_back(text.substr(i, j - i));
        i = j;
    }
    return out;
}

std::optional<std::string> cgroup_path(std::string_view proc_self_cgroup, std::string_view controller) {
    for (std::string_view line : text_lines(proc_self_cgroup)) {
        const size_t a = line.find(':'), b = a == std::string_view::npos ? a : line.find(':', a + 1);
        if (b == std::string_view::npos) continue;
        const std::string_view ctrls = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
        if (controller.empty()) {
            if (ctrls.empty()) return std::string(path);
            continue;
        }
        for (std::string_view rest = ctrls; !rest.empty();) {
            const size_t c = rest.find(',');
            if (rest.substr(0, c) == controller) return std::string(path);
            rest.remove_prefix(c == std::string_view::npos ? rest.size() : c + 1);
        }
    }
    return std::nullopt;
}

}  // namespace pl
