// SPDX-License-Identifier: MIT
// Small UTF-8 helpers (validation, sequence length, code point decode/encode).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pl::utf8 {

// Length of the sequence a lead byte starts (1..4), or 0 for a continuation/invalid lead byte.
inline int seq_len(uint8_t lead) {
    if (lead < 0x80) return 1;
    if ((lead & 0xE0) == 0xC0) return lead >= 0xC2 ? 2 : 0;
    if ((lead & 0xF0) == 0xE0) return 3;
    if ((lead & 0xF8) == 0xF0) return lead <= 0xF4 ? 4 : 0;
    return 0;
}

// Decodes one code point at s[pos]; on success advances pos and returns true. Rejects overlong
// forms, surrogates and values above U+10FFFF.
inline bool decode(std::string_view s, size_t& pos, uint32_t& cp) {
    if (pos >= s.size()) return false;
    const auto b0 = static_cast<uint8_t>(s[pos]);
    const int n = seq_len(b0);
    if (n == 0 || pos + static_cast<size_t>(n) > s.size()) return false;
    if (n == 1) {
        cp = b0;
        ++pos;
        return true;
    }
    uint32_t c = b0 & (0x7F >> n);
    for (int k = 1; k < n; ++k) {
        const auto b = static_cast<uint8_t>(s[pos + static_cast<size_t>(k)]);
        if ((b & 0xC0) != 0x80) return false;
        c = (c << 6) | (b & 0x3F);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < kMin[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return false;
    cp = c;
    pos += static_cast<size_t>(n);
    return true;
}

inline bool is_valid(std::string_view s) {
    size_t pos = 0;
    uint32_t cp;
    while (pos < s.size())
        if (!decode(s, pos, cp)) return false;
    return true;
}

inline void append(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

}  // namespace pl::utf8
