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
