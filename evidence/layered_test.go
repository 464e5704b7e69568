package evidence

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/archive"
	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/tartest"
	"github.com/imgfs/imgfs/overlay"
)

// layeredFixture is an image made of tar layers held in memory: their raw bytes, and the image as
// evidence reads it.
type layeredFixture struct {
	raw [][]byte // each layer's uncompressed tar
	img Layered
}

// newLayered opens layers (uncompressed tars, bottom first; gz[i] stores layer i gzip-compressed) as
// an image with the given history.
func newLayered(t testing.TB, history []ispec.History, gz map[int]bool, layers ...[]byte) *layeredFixture {
	t.Helper()
	fx := &layeredFixture{raw: layers}
	desc := &archive.Image{Config: ispec.Image{History: history}}
	var ols []overlay.Layer
	for i, raw := range layers {
		blob := raw
		if gz[i] {
			blob = tartest.Gzip(t, raw)
		}
		l, err := index.Open(context.Background(), index.Blob{R: bytes.NewReader(blob), Size: int64(len(blob))},
			index.Options{DiffID: digest.FromBytes(raw), Digest: digest.FromBytes(blob)})
		if err != nil {
			t.Fatalf("layer %d: %v", i+1, err)
		}
		t.Cleanup(func() { l.Close() })
		fx.img.Layers = append(fx.img.Layers, l)
		ols = append(ols, l)
		desc.Layers = append(desc.Layers, archive.Layer{Digest: digest.FromBytes(blob), DiffID: digest.FromBytes(raw), Size: int64(len(blob))})
	}
	v, err := overlay.New(ols, overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fx.img.Desc, fx.img.View = desc, v
	return fx
}

var (
	fixT0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	fixT1 = time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)
	fixT2 = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
)

// deletionLayers is the three-layer fixture of the which and timeline tests: additions, a mode
// change, whiteouts (of a file, of a parent), an opaque directory, a parent replaced by a file,
// re-creation after deletion, hard links within and across layers, a symlinked parent, implied
// parents and a path stored twice.
func deletionLayers(t testing.TB) [][]byte {
	l1 := tartest.Tar(t,
		tartest.Dir("./"),
		tartest.Dir("./etc/"),
		tartest.Member{Name: "./etc/motd", Body: []byte("hello\n"), Mtime: fixT0, Atime: fixT0.Add(time.Hour), Ctime: fixT0.Add(2 * time.Hour)},
		tartest.File("./etc/passwd", "root:x:0:0\n"),
		tartest.File("./etc/passwd", "root:x:0:0:again\n"), // stored twice: the second one counts
		tartest.Dir("usr/"), tartest.Dir("usr/bin/"),
		tartest.Member{Name: "usr/bin/tool", Body: []byte("v1"), Mode: 0o4755},
		tartest.File("usr/lib/x/a", "a"), // implied parents usr/lib, usr/lib/x
		tartest.File("data/keep", "k1"),
		tartest.File("links/target", "T"),
		tartest.Hardlink("links/hl", "links/target"),
		tartest.File("optdir/old", "o"),
		tartest.Symlink("bin", "usr/bin"),
		tartest.File("gone/deep/f", "d"),
		tartest.Member{Name: "pipe|name\n", Body: []byte("odd")},
	)
	l2 := tartest.Tar(t,
		tartest.Member{Name: "usr/bin/tool", Body: []byte("v1"), Mode: 0o755, Mtime: fixT1},
		tartest.Member{Name: "etc/passwd", Body: []byte("root:x:0:0:two\n"), Mtime: fixT1},
		tartest.Opaque("optdir"),
		tartest.File("optdir/new", "n"),
		tartest.Hardlink("links/hl2", "links/target"), // target in the layer below
		tartest.Whiteout("data", "keep"),
	)
	l3 := tartest.Tar(t,
		tartest.Member{Name: "etc/.wh.motd", Mtime: fixT2},
		tartest.Member{Name: "data/keep", Body: []byte("k3"), Mtime: fixT2},
		tartest.Whiteout("", "gone"),
		tartest.File("usr/lib/x", "now a file"),
		tartest.File("srv/new/file", "new"), // implied srv, srv/new
	)
	return [][]byte{l1, l2, l3}
}
