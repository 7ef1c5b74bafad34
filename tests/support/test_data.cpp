// SPDX-License-Identifier: MIT
#include "test_data.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>
#include <sys/wait.h>

namespace fs = std::filesystem;

namespace pl::test {

std::string models_dir() {
    if (const char* env = std::getenv("PARALLAMA_TEST_DATA"); env && *env) return env;
    return (fs::path(PL_SOURCE_DIR) / ".." / "shared" / "models").lexically_normal().string();
}

std::string model_file(const std::string& relative) {
    fs::path p = fs::path(models_dir()) / relative;
    return fs::exists(p) ? p.string() : std::string();
}

bool require_test_data() {
    const char* v = std::getenv("PARALLAMA_REQUIRE_TEST_DATA");
    return v && std::string(v) == "1";
}

std::vector<int32_t> parse_ints(const std::string& text) {
    std::istringstream in(text);
    std::vector<int32_t> v;
    int32_t x;
    while (in >> x) v.push_back(x);
    return v;
}

std::vector<int32_t> stories_reference_ids() {
    const std::string path = model_file("stories260K/reference.md");
    if (path.empty()) return {};
    const std::string md = read_file(path);
    const size_t a = md.find("```");
    const size_t b = a == std::string::npos ? a : md.find("```", a + 3);
    if (b == std::string::npos) return {};
    return parse_ints(md.substr(a + 3, b - a - 3));
}

std::string demo_model() {
    fs::path p = fs::path(PL_SOURCE_DIR) / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf";
    return fs::exists(p) ? p.string() : std::string();
}

std::string parallama_bin() { return (fs::path(PL_BINARY_DIR) / "bin" / "parallama").string(); }

std::string make_temp_dir(const std::string& tag) {
    static std::atomic<int> counter{0};
    fs::path p = fs::path(PL_BINARY_DIR) / "test-tmp" /
                 (tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(p);
    fs::create_directories(p);
    return p.string();
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

CmdResult run_cmd(const std::string& cmd) {
    CmdResult r;
    std::string err_path = make_temp_dir("cmd") + "/stderr";
    std::string full = cmd + " 2>" + err_path;
    FILE* p = ::popen(full.c_str(), "r");
    if (!p) return r;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    int status = ::pclose(p);
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.err = read_file(err_path);
    return r;
}

double number_after(const std::string& out, const std::string& label) {
    const size_t at = out.find(label);
    if (at == std::string::npos) return std::nan("");
    return std::strtod(out.c_str() + at + label.size(), nullptr);
}

}  // namespace pl::test
