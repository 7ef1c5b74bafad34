// SPDX-License-Identifier: MIT
// A small JSON Schema validator for the subset docs/bench-schema.json uses: type (string or
// array of strings; "integer" accepts integral numbers), properties, required,
// additionalProperties (bool or schema), items, enum, const, minimum, exclusiveMinimum,
// minItems, minLength, and local "$ref": "#/$defs/NAME". Other keywords are ignored, so keep the
// schema inside this subset (the unit test checks that the schema only uses these keywords).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace pl::bench {

// Keywords validate_json understands (plus annotations: $schema, $id, $defs, title, description).
const std::vector<std::string>& supported_schema_keywords();

// Errors as "path: message" (path like /results/3/time_s/median); empty when `doc` is valid.
std::vector<std::string> validate_json(const nlohmann::json& schema, const nlohmann::json& doc);

}  // namespace pl::bench
