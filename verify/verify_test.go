package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/tartest"
)

// layout writes a one-image OCI layout directory of the given layer blobs (with their diff_ids) and
// returns its path and the manifest and config digests.
func layout(t *testing.T, blobs [][]byte, diffIDs []digest.Digest) (dir string, man, cfg digest.Digest) {
	t.Helper()
	dir = t.TempDir()
	put := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	js := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	config := js(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	cfg = put(config)
	var layers []any
	for _, b := range blobs {
		mt := "application/vnd.oci.image.layer.v1.tar"
		if bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			mt += "+gzip"
		}
		layers = append(layers, map[string]any{"mediaType": mt, "digest": put(b), "size": len(b)})
	}
	manifest := js(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": len(config)},
		"layers": layers})
	man = put(manifest)
	index := js(map[string]any{"schemaVersion": 2, "manifests": []any{map[string]any{
		"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man, "size": len(manifest)}}})
	os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	return dir, man, cfg
}

func kinds(r *Report) string {
	var k []string
	for _, res := range r.Results {
		k = append(k, res.Kind+":"+res.Verdict)
	}
	return strings.Join(k, " ")
}

// TestVerify verifies an honest two-layer image (plain and gzip), then pins, then the same image
// with a layer blob rewritten in place: each result says what was checked and which claim broke.
func TestVerify(t *testing.T) {
	t1 := tartest.Tar(t, tartest.File("a", "one"))
	t2 := tartest.Tar(t, tartest.File("b", "two"))
	g2 := tartest.Gzip(t, t2)
	dir, man, cfg := layout(t, [][]byte{t1, g2}, []digest.Digest{digest.FromBytes(t1), digest.FromBytes(t2)})
	cache := t.TempDir()
	ctx := context.Background()

	r, err := Verify(ctx, dir, Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK || kinds(r) != "manifest:ok config:ok layer:ok layer:ok chain_id:ok" || r.ManifestDigest != man || r.ImageID != cfg {
		t.Fatalf("honest image: %s %+v", kinds(r), r)
	}
	want := digest.FromString(string(digest.FromBytes(t1)) + " " + string(digest.FromBytes(t2)))
	if r.ChainID != want {
		t.Errorf("chain ID %s, want %s", r.ChainID, want)
	}
	l2 := r.Results[3]
	if l2.Layer != 2 || l2.Digest != digest.FromBytes(g2) || !strings.HasSuffix(l2.Where, "blobs/sha256/"+digest.FromBytes(g2).Encoded()) {
		t.Errorf("layer 2 result %+v", l2)
	}

	for pin, ok := range map[digest.Digest]bool{man: true, cfg: true, digest.FromString("x"): false} {
		r, err := Verify(ctx, dir, Options{CacheDir: cache, Digest: pin})
		if err != nil {
			t.Fatal(err)
		}
		last := r.Results[len(r.Results)-1]
		if r.OK != ok || last.Kind != "pin" || last.Checks[0].OK != ok {
			t.Errorf("pin %s: ok %v, last %+v", pin, r.OK, last)
		}
	}
	if _, err := Verify(ctx, dir, Options{Digest: "sha256:12"}); err == nil {
		t.Error("a malformed pin was accepted")
	}

	// The gzip blob rewritten with other bytes of the same size, in place: the cache's record is for
	// other bytes (the file's times changed), and verify hashes every byte anyway.
	p := filepath.Join(dir, "blobs", "sha256", digest.FromBytes(g2).Encoded())
	bad := append([]byte(nil), g2...)
	bad[len(bad)-9] ^= 1 // the gzip trailer's CRC
	if err := os.WriteFile(p, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err = Verify(ctx, dir, Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK || r.Failed != 2 || kinds(r) != "manifest:ok config:ok layer:ok layer:mismatch chain_id:unproven" {
		t.Fatalf("tampered image: %s", kinds(r))
	}
	l2 = r.Results[3]
	if l2.Checks[1].Claim != "digest" || l2.Checks[1].OK || l2.Checks[1].Actual != string(digest.FromBytes(bad)) ||
		l2.Checks[2].Claim != "diff_id" || l2.Checks[2].OK {
		t.Errorf("tampered layer: %+v", l2)
	}
}

// TestVerifyDockerSave verifies a docker-save tar of two images sharing a layer: with no --image the
// archive is verified whole, the shared layer blob proven once; each layer names its tar member and
// offset; the image ID pins; a pin no image has selects nothing and fails.
func TestVerifyDockerSave(t *testing.T) {
	t1 := tartest.Tar(t, tartest.File("a", "one"))
	t2 := tartest.Tar(t, tartest.File("b", "two"))
	cfgOf := func(layers ...[]byte) []byte {
		var ids []digest.Digest
		for _, l := range layers {
			ids = append(ids, digest.FromBytes(l))
		}
		b, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": ids}})
		return b
	}
	c1, c2 := cfgOf(t1), cfgOf(t1, t2)
	n1, n2 := digest.FromBytes(c1).Encoded()+".json", digest.FromBytes(c2).Encoded()+".json"
	man, _ := json.Marshal([]any{
		map[string]any{"Config": n1, "RepoTags": []string{"one:1"}, "Layers": []string{"l1/layer.tar"}},
		map[string]any{"Config": n2, "RepoTags": []string{"two:1"}, "Layers": []string{"l1/layer.tar", "l2/layer.tar"}},
	})
	arc := filepath.Join(t.TempDir(), "save.tar")
	os.WriteFile(arc, tartest.Tar(t, tartest.File("l1/layer.tar", string(t1)), tartest.File("l2/layer.tar", string(t2)),
		tartest.File(n1, string(c1)), tartest.File(n2, string(c2)), tartest.File("manifest.json", string(man))), 0o644)
	ctx := context.Background()
	var proven []string
	r, err := Verify(ctx, arc, Options{CacheDir: t.TempDir(), Progress: func(i int, p index.Progress) {}})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK || kinds(r) != "config:ok layer:ok chain_id:ok config:ok layer:ok layer:ok chain_id:ok" {
		t.Fatalf("whole archive: %s", kinds(r))
	}
	for _, res := range r.Results {
		if res.Image == "" {
			t.Errorf("result %s of a whole archive names no image", res.Kind)
		}
		if res.Kind == "layer" {
			proven = append(proven, strings.Join(res.Notes, ";"))
			if !strings.Contains(res.Where, ": member l") || !strings.Contains(res.Where, " at offset ") {
				t.Errorf("layer where %q", res.Where)
			}
		}
	}
	if !strings.Contains(proven[1], "read once") || strings.Contains(proven[2], "read once") {
		t.Errorf("shared layer notes %q", proven)
	}
	r, err = Verify(ctx, arc, Options{Digest: digest.FromBytes(c2)})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK || r.ImageID != digest.FromBytes(c2) || r.Results[len(r.Results)-1].Kind != "pin" {
		t.Errorf("pinned by image ID: %s", kinds(r))
	}
	r, err = Verify(ctx, arc, Options{Digest: digest.FromString("other")})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK {
		t.Errorf("a pin no image has: %s", kinds(r))
	}
}
