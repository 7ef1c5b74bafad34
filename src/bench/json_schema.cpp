// SPDX-License-Identifier: MIT
#include "bench/json_schema.h"

#include <fmt/format.h>

#include <cmath>

namespace pl::bench {
namespace {

using nlohmann::json;

bool has_type(const json& v, const std::string& t) {
    if (t == "object") return v.is_object();
    if (t == "array") return v.is_array();
    if (t == "string") return v.is_string();
    if (t == "boolean") return v.is_boolean();
    if (t == "null") return v.is_null();
    if (t == "number") return v.is_number();
    if (t == "integer") return v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
    return false;
}

struct Validator {
    const json& root;
    std::vector<std::string> errors;

    void fail(const std::string& path, const std::string& msg) { errors.push_back((path.empty() ? "/" : path) + ": " + msg); }

    void check(const json& s, const json& v, const std::string& path) {
        if (s.is_boolean()) {
            if (!s.get<bool>()) fail(path, "not allowed");
            return;
        }
        if (s.contains("$ref")) {
            const std::string ref = s["$ref"];
            const std::string prefix = "#/$defs/";
            if (ref.rfind(prefix, 0) != 0 || !root.contains("$defs") || !root["$defs"].contains(ref.substr(prefix.size()))) {
                fail(path, "unresolvable $ref " + ref);
                return;
            }
            check(root["$defs"][ref.substr(prefix.size())], v, path);
        }
        if (s.contains("type")) {
            bool ok = false;
            std::string want;
            if (s["type"].is_string()) {
                want = s["type"];
                ok = has_type(v, want);
            } else {
                for (const auto& t : s["type"]) {
                    ok = ok || has_type(v, t.get<std::string>());
                    want += (want.empty() ? "" : "|") + t.get<std::string>();
                }
            }
            if (!ok) {
                fail(path, fmt::format("expected {}, got {}", want, v.type_name()));
                return;
            }
        }
        if (s.contains("const") && v != s["const"]) fail(path, fmt::format("must equal {}", s["const"].dump()));
        if (s.contains("enum")) {
            bool ok = false;
            for (const auto& e : s["enum"]) ok = ok || e == v;
            if (!ok) fail(path, fmt::format("{} is not one of {}", v.dump(), s["enum"].dump()));
        }
        if (v.is_number()) {
            const double x = v.get<double>();
            if (s.contains("minimum") && x < s["minimum"].get<double>()) fail(path, fmt::format("{} < minimum {}", x, s["minimum"].dump()));
            if (s.contains("exclusiveMinimum") && x <= s["exclusiveMinimum"].get<double>())
                fail(path, fmt::format("{} <= exclusiveMinimum {}", x, s["exclusiveMinimum"].dump()));
        }
        if (v.is_string() && s.contains("minLength") && v.get<std::string>().size() < s["minLength"].get<size_t>())
            fail(path, "string too short");
        if (v.is_array()) {
            if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) fail(path, fmt::format("fewer than {} items", s["minItems"].dump()));
            if (s.contains("items"))
                for (size_t i = 0; i < v.size(); ++i) check(s["items"], v[i], path + "/" + std::to_string(i));
        }
        if (v.is_object()) {
            if (s.contains("required"))
                for (const auto& k : s["required"])
                    if (!v.contains(k.get<std::string>())) fail(path, "missing required property '" + k.get<std::string>() + "'");
            const json empty = json::object();
            const json& props = s.contains("properties") ? s["properties"] : empty;
            for (const auto& [k, val] : v.items()) {
                if (props.contains(k)) {
                    check(props[k], val, path + "/" + k);
                } else if (s.contains("additionalProperties")) {
                    const json& ap = s["additionalProperties"];
                    if (ap.is_boolean() && !ap.get<bool>())
                        fail(path, "unexpected property '" + k + "'");
                    else if (ap.is_object())
                        check(ap, val, path + "/" + k);
                }
            }
        }
    }
};

}  // namespace

const std::vector<std::string>& supported_schema_keywords() {
    static const std::vector<std::string> k = {"$schema", "$id", "$defs", "$ref", "title", "description", "type", "properties", "required",
                                               "additionalProperties", "items", "enum", "const", "minimum", "exclusiveMinimum",
                                               "minItems", "minLength"};
    return k;
}

std::vector<std::string> validate_json(const json& schema, const json& doc) {
    Validator v{schema, {}};
    v.check(schema, doc, "");
    return v.errors;
}

}  // namespace pl::bench
