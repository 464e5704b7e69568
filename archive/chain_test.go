package archive

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// docDigest hashes the bytes a Doc points at.
func docDigest(t *testing.T, d Doc) digest.Digest {
	t.Helper()
	if d.Missing != nil {
		t.Fatalf("%s %s missing: %v", d.Kind, d.Digest, d.Missing)
	}
	b, err := io.ReadAll(io.NewSectionReader(d.Blob.R, d.Blob.Off, d.Blob.Size))
	if err != nil {
		t.Fatal(err)
	}
	return digest.FromBytes(b)
}

// TestChain lists the chain of an image behind a nested index, in a layout directory and in a tar,
// and of a docker-save image: each document with the claim its parent makes and bytes that hash to
// it; a manifest that no longer matches its digest is still listed, with the config it claims.
func TestChain(t *testing.T) {
	o := newOCI()
	m := o.image(t, linuxAMD64, threeLayers(t, "gzip"))
	inner := o.index(t, ispec.MediaTypeImageIndex, withPlatform(m, linuxAMD64))
	o.finish(t, named(inner, "latest", ""))
	for _, path := range []string{o.writeDir(t), writeTemp(t, "oci.tar", o.tarBytes(t, tarOpts{}))} {
		a, err := Open(context.Background(), path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		docs, err := a.Chain("", &linuxAMD64)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, d := range docs {
			kinds = append(kinds, d.Kind)
			if got := docDigest(t, d); got != d.Digest || d.Blob.Size != d.Size {
				t.Errorf("%s: bytes %s of %d, claim %s of %d", d.Kind, got, d.Blob.Size, d.Digest, d.Size)
			}
			if d.Source != blobPath(d.Digest) {
				t.Errorf("%s: source %q", d.Kind, d.Source)
			}
			if w := a.Where(d.Source, d.Blob); !strings.Contains(w, d.Source) || !strings.HasPrefix(w, path) {
				t.Errorf("where %q", w)
			}
		}
		if strings.Join(kinds, ",") != "index,manifest,config,layer,layer,layer" || docs[0].ClaimedBy != "index.json" ||
			docs[1].ClaimedBy != "index "+string(inner.Digest) || docs[2].ClaimedBy != "manifest "+string(m.Digest) ||
			docs[5].ClaimedBy != "manifest "+string(m.Digest) {
			t.Errorf("chain %+v", docs)
		}
		a.Close()
	}

	// A manifest that does not match its digest: listed, with its (unchecked) config claim.
	dir := o.writeDir(t)
	mp := filepath.Join(dir, blobPath(m.Digest))
	raw, err := os.ReadFile(mp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mp, []byte(strings.Replace(string(raw), `"schemaVersion":2`, `"SchemaVersion":2`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := Open(context.Background(), dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	docs, err := a.Chain("", &linuxAMD64)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 6 || docDigest(t, docs[1]) == docs[1].Digest || docDigest(t, docs[2]) != docs[2].Digest {
		t.Errorf("chain of a tampered manifest %+v", docs)
	}
	if _, err := a.Image(context.Background(), "", &linuxAMD64); err == nil ||
		!strings.Contains(err.Error(), "does not match its digest (it hashes to "+string(docDigest(t, docs[1]))+")") {
		t.Errorf("Image of the tampered manifest: %v", err)
	}

	ds := &dockerSave{}
	cd := ds.image(t, styleDocker, []string{"foo:1"}, linuxAMD64, threeLayers(t, ""))
	ds.finish(t)
	a2, err := Open(context.Background(), writeTemp(t, "save.tar", ds.tarBytes(t, tarOpts{})), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	docs, err = a2.Chain("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 || docs[0].Kind != "config" || docs[0].Digest != cd || docDigest(t, docs[0]) != cd ||
		docs[0].Size != -1 || docs[0].ClaimedBy != "manifest.json" {
		t.Errorf("docker-save chain %+v", docs)
	}
}
