package imagewrite

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxConfig caps the size of a config document read or edited.
const maxConfig = 16 << 20

// buildConfig edits the config raw (nil: a fresh config for plat): appends diff IDs and history
// entries, sets created (and author when given) and applies changes. The document is edited as raw
// JSON, so fields this package does not know survive; keys come out sorted.
func buildConfig(raw []byte, plat *ispec.Platform, diffIDs []digest.Digest, hist []ispec.History, created time.Time, author string, changes []Change) ([]byte, error) {
	doc := map[string]json.RawMessage{}
	if raw == nil {
		doc = freshConfig(plat)
	} else if err := decodeObject(raw, &doc); err != nil {
		return nil, errorf(ErrBase, "base config: %w", err)
	}
	rootfs := map[string]json.RawMessage{}
	if err := decodeField(doc, "rootfs", &rootfs); err != nil {
		return nil, errorf(ErrBase, "base config: %w", err)
	}
	var ids []digest.Digest
	if err := decodeField(rootfs, "diff_ids", &ids); err != nil {
		return nil, errorf(ErrBase, "base config: rootfs: %w", err)
	}
	ids = append(ids, diffIDs...)
	if ids == nil {
		ids = []digest.Digest{}
	}
	setField(rootfs, "diff_ids", ids)
	if _, ok := rootfs["type"]; !ok {
		setField(rootfs, "type", "layers")
	}
	setField(doc, "rootfs", rootfs)

	var history []json.RawMessage
	if err := decodeField(doc, "history", &history); err != nil {
		return nil, errorf(ErrBase, "base config: %w", err)
	}
	for _, h := range hist {
		history = append(history, mustMarshal(h))
	}
	setField(doc, "history", history)
	setField(doc, "created", created.UTC())
	if author != "" {
		setField(doc, "author", author)
	}
	if len(changes) > 0 {
		cc := map[string]json.RawMessage{}
		if err := decodeField(doc, "config", &cc); err != nil {
			return nil, errorf(ErrBase, "base config: %w", err)
		}
		var os string
		_ = decodeField(doc, "os", &os)
		if err := applyChanges(cc, os, changes); err != nil {
			return nil, err
		}
		setField(doc, "config", cc)
	}
	return json.Marshal(doc)
}

// freshConfig is the config of an image without a base.
func freshConfig(plat *ispec.Platform) map[string]json.RawMessage {
	doc := map[string]json.RawMessage{}
	setField(doc, "architecture", plat.Architecture)
	setField(doc, "os", plat.OS)
	if plat.Variant != "" {
		setField(doc, "variant", plat.Variant)
	}
	if plat.OSVersion != "" {
		setField(doc, "os.version", plat.OSVersion)
	}
	if len(plat.OSFeatures) > 0 {
		setField(doc, "os.features", plat.OSFeatures)
	}
	setField(doc, "config", struct{}{})
	return doc
}

// configPlatform reads the platform of a config; nil when it names no os and architecture.
func configPlatform(raw []byte) *ispec.Platform {
	var c struct {
		Architecture string   `json:"architecture"`
		OS           string   `json:"os"`
		Variant      string   `json:"variant"`
		OSVersion    string   `json:"os.version"`
		OSFeatures   []string `json:"os.features"`
	}
	if json.Unmarshal(raw, &c) != nil || c.OS == "" || c.Architecture == "" {
		return nil
	}
	return &ispec.Platform{Architecture: c.Architecture, OS: c.OS, Variant: c.Variant, OSVersion: c.OSVersion, OSFeatures: c.OSFeatures}
}

// decodeObject decodes a JSON object of at most maxConfig bytes.
func decodeObject(raw []byte, v *map[string]json.RawMessage) error {
	if len(raw) > maxConfig {
		return errorf(ErrBase, "%d bytes, more than %d", len(raw), maxConfig)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return err
	}
	if *v == nil { // "null"
		*v = map[string]json.RawMessage{}
	}
	return nil
}

// decodeField decodes doc[key] into v when it is present and not null.
func decodeField(doc map[string]json.RawMessage, key string, v any) error {
	raw, ok := doc[key]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return &fieldError{key: key, err: err}
	}
	return nil
}

type fieldError struct {
	key string
	err error
}

func (e *fieldError) Error() string { return e.key + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

// setField sets doc[key] to v's JSON.
func setField(doc map[string]json.RawMessage, key string, v any) { doc[key] = mustMarshal(v) }

// mustMarshal marshals values that cannot fail to marshal (strings, slices and maps of them, structs of
// those).
func mustMarshal(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
