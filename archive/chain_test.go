package archive

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
	if err := os.WriteFile(mp, []byte(strings.Replace(string(raw), `"schemaVersion":2`, `"schemaVersion": 2`, 1)), 0o644); err != nil {
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
	if _, err := a.Image(context.Background(), "", &linuxAMD64); err == nil {
		t.Error("Image accepted the tampered manifest")
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

// TestOpenLeavesAtime reads every blob of an archive (a tar and a layout directory) whose files' atimes
// are two days old: with relatime the kernel would update them, with O_NOATIME it does not.
func TestOpenLeavesAtime(t *testing.T) {
	o := newOCI()
	o.finish(t, o.image(t, linuxAMD64, threeLayers(t, "")))
	tarPath := writeTemp(t, "oci.tar", o.tarBytes(t, tarOpts{}))
	dir := o.writeDir(t)
	old := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	atime := func(p string) time.Time {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		return time.Unix(st.Atim.Sec, st.Atim.Nsec)
	}
	var files []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	files = append(files, tarPath)
	for _, p := range files {
		if err := os.Chtimes(p, old, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for _, path := range []string{tarPath, dir} {
		a, err := Open(context.Background(), path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		img, err := a.Image(context.Background(), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range img.Layers {
			b, _ := l.Blob()
			if _, err := io.Copy(io.Discard, io.NewSectionReader(b.R, b.Off, b.Size)); err != nil {
				t.Fatal(err)
			}
		}
		a.Close()
	}
	for _, p := range files {
		if got := atime(p); !got.Equal(old) {
			t.Errorf("%s: atime %v, was %v", p, got, old)
		}
	}
}
