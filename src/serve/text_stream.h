// SPDX-License-Identifier: MIT
// Generated tokens -> text a client may see, with OpenAI's `stop` strings: text that could be the
// start of a stop string is held back until it is known not to be one, and the text from a stop
// string on is never sent. UTF-8 sequences split over tokens are joined (StreamDecoder) first.
#pragma once

#include "tokenizer/tokenizer.h"

#include <string>
#include <vector>

namespace pl {

class StopTextStream {
public:
    StopTextStream(const Tokenizer& tok, std::vector<std::string> stops);
    // Appends one token; returns the text that can be sent now (maybe empty).
    std::string push(int32_t token);
    // The end of generation: the held-back text (none after a stop string).
    std::string finish();
    bool stopped() const { return stopped_; }  // a stop string was seen; push() ignores tokens from here on
    const std::string& text() const { return sent_; }  // everything returned so far

private:
    std::string release(std::string piece);
    StreamDecoder dec_;
    std::vector<std::string> stops_;
    std::string held_;
    std::string sent_;
    bool stopped_ = false;
};

}  // namespace pl
