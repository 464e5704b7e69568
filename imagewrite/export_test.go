package imagewrite

// Test-only entry points: exported for the tests of this package, not part of its API.

import "encoding/json"

// ApplyChanges applies changes, in order, to the container config ("config") of the image config
// document raw and returns the edited document (keys sorted; unknown fields kept). Only tests use it;
// Write applies changes while it writes the config.
func ApplyChanges(raw []byte, changes ...Change) ([]byte, error) {
	doc := map[string]json.RawMessage{}
	if err := decodeObject(raw, &doc); err != nil {
		return nil, errorf(ErrBase, "config: %w", err)
	}
	cc := map[string]json.RawMessage{}
	if err := decodeField(doc, "config", &cc); err != nil {
		return nil, errorf(ErrBase, "config: %w", err)
	}
	var os string
	_ = decodeField(doc, "os", &os)
	if err := applyChanges(cc, os, changes); err != nil {
		return nil, err
	}
	setField(doc, "config", cc)
	return json.Marshal(doc)
}
