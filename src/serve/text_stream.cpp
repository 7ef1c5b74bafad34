// SPDX-License-Identifier: MIT
#include "serve/text_stream.h"

#include <algorithm>

namespace pl {

StopTextStream::StopTextStream(const Tokenizer& tok, std::vector<std::string> stops) : dec_(tok), stops_(std::move(stops)) {
    std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

std::string StopTextStream::release(std::string piece) {
    held_ += piece;
    // A whole stop string: everything before its first occurrence goes out, the rest never does.
    size_t cut = std::string::npos;
    for (const auto& s : stops_) cut = std::min(cut, held_.find(s));
    if (cut != std::string::npos) {
        std::string out = held_.substr(0, cut);
        held_.clear();
        stopped_ = true;
        sent_ += out;
        return out;
    }
    // Keep the longest tail of held_ that is a proper prefix of some stop string.
    size_t keep = 0;
    for (const auto& s : stops_)
        for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n)
            if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
                keep = n;
                break;
            }
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    sent_ += out;
    return out;
}

std::string StopTextStream::push(int32_t token) {
    if (stopped_) return {};
    return release(dec_.push(token));
}

std::string StopTextStream::finish() {
    if (stopped_) return {};
    std::string out = release(dec_.flush());
    if (stopped_) return out;
    out += held_;  // generation ended: a partial stop string is just text
    sent_ += held_;
    held_.clear();
    return out;
}

}  // namespace pl
