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

}  // namespace pl
