package main

import (
	"encoding/json"
	"testing"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/archive"
)

// TestStackImage: a stack's image has every source's layers bottom first, the top config (unknown
// fields kept) with all diff_ids and history entries, and digests that are their bytes'.
func TestStackImage(t *testing.T) {
	img := func(cfg string, ls ...string) *archive.Image {
		var c ispec.Image
		if err := json.Unmarshal([]byte(cfg), &c); err != nil {
			t.Fatal(err)
		}
		im := &archive.Image{RawConfig: []byte(cfg), Config: c}
		for _, l := range ls {
			im.Layers = append(im.Layers, archive.Layer{Digest: digest.FromString("blob " + l), DiffID: digest.FromString(l), MediaType: ispec.MediaTypeImageLayer, Size: 1, Source: l})
		}
		return im
	}
	bottom := img(`{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"a"},{"created_by":"b"}]}`, "a", "b")
	top := img(`{"os":"linux","architecture":"amd64","x-unknown":{"kept":true},"config":{"Env":["TOP=1"]},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"c"}]}`, "c")
	st, err := stackImage([]string{"/x/bottom.tar", "/y/top.tar"}, []*archive.Image{bottom, top})
	if err != nil {
		t.Fatal(err)
	}
	want := []digest.Digest{digest.FromString("a"), digest.FromString("b"), digest.FromString("c")}
	var cfg struct {
		Unknown map[string]bool `json:"x-unknown"`
		Config  struct{ Env []string }
		RootFS  struct {
			DiffIDs []digest.Digest `json:"diff_ids"`
		} `json:"rootfs"`
		History []ispec.History
	}
	if err := json.Unmarshal(st.RawConfig, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.RootFS.DiffIDs) != 3 || len(st.Layers) != 3 || len(st.Manifest.Layers) != 3 || len(cfg.History) != 3 {
		t.Fatalf("config %s, %d layers", st.RawConfig, len(st.Layers))
	}
	for i := range want {
		if cfg.RootFS.DiffIDs[i] != want[i] || st.Layers[i].DiffID != want[i] || st.Config.RootFS.DiffIDs[i] != want[i] ||
			st.Manifest.Layers[i].Digest != st.Layers[i].Digest {
			t.Errorf("layer %d out of order: %s", i, st.RawConfig)
		}
	}
	if cfg.History[0].CreatedBy != "a" || cfg.History[2].CreatedBy != "c" || !cfg.Unknown["kept"] || len(cfg.Config.Env) != 1 {
		t.Errorf("config %s: want the top's, with all history", st.RawConfig)
	}
	if st.Layers[0].Source != "bottom.tar:a" || st.Layers[2].Source != "top.tar:c" {
		t.Errorf("sources %q %q", st.Layers[0].Source, st.Layers[2].Source)
	}
	raw, _ := json.Marshal(st.Manifest)
	if st.ConfigDigest != digest.FromBytes(st.RawConfig) || st.ManifestDigest != digest.FromBytes(st.RawManifest) ||
		st.Manifest.Config.Digest != st.ConfigDigest || string(raw) != string(st.RawManifest) {
		t.Error("digests are not their bytes'")
	}
}
