package evidence

import (
	"archive/tar"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/internal/fakelayer"
	"github.com/imgfs/imgfs/internal/tartest"
	"github.com/imgfs/imgfs/overlay"
)

// diffImage builds an Image of layers, each named by a diff ID of its own unless ids says otherwise.
func diffImage(t *testing.T, layers []overlay.Layer, ids []digest.Digest) Image {
	t.Helper()
	v, err := overlay.New(layers, overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return Image{View: v, DiffIDs: ids}
}

func lines(cs []Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.String()
	}
	return out
}

func byPath(cs []Change, p string) *Change {
	for i := range cs {
		if cs[i].Path == p {
			return &cs[i]
		}
	}
	return nil
}

// TestDiff runs the docker diff rules over a base image and a changed one: additions below a new
// directory, a deleted directory once, type changes both ways, parents as C, content compared when
// only the content differs, metadata-only changes, flags.
func TestDiff(t *testing.T) {
	base := fakelayer.New(
		tartest.Dir("etc"),
		tartest.File("etc/passwd", "root\n"),
		tartest.File("etc/same-size", "aaaa"),
		tartest.File("etc/touched", "same"),
		tartest.File("etc/same", "unchanged"),
		tartest.Dir("old"),
		tartest.File("old/a", "1"),
		tartest.Dir("old/sub"),
		tartest.File("old/sub/b", "2"),
		tartest.Dir("dir-to-file"),
		tartest.File("dir-to-file/child", "c"),
		tartest.File("file-to-dir", "f"),
		tartest.Symlink("link", "target-1"),
		tartest.Member{Name: "bin/tool", Body: []byte("#!/bin/sh\n"), Mode: 0o755},
		tartest.Member{Name: "bin/su", Body: []byte("su"), Mode: 0o755},
		tartest.Member{Name: "dev/null", Type: tar.TypeChar, Devmajor: 1, Devminor: 3},
	)
	// The same layer bytes under the same diff ID in both images: what it holds costs nothing.
	baseID := digest.FromString("base")
	top := fakelayer.New(
		tartest.File("etc/passwd", "root\nevil\n"),
		tartest.File("etc/same-size", "bbbb"),
		tartest.Member{Name: "etc/touched", Body: []byte("same"), Mtime: tartest.File("x", "").Mtime.AddDate(0, 0, 1)},
		tartest.Whiteout("", "old"),
		tartest.Whiteout("", "dir-to-file"),
		tartest.File("dir-to-file", "now a file"),
		tartest.Whiteout("", "file-to-dir"),
		tartest.Dir("file-to-dir"),
		tartest.File("file-to-dir/x", "x"),
		tartest.Whiteout("", "link"),
		tartest.Symlink("link", "target-2"),
		tartest.Dir("new"),
		tartest.Dir("new/deep"),
		tartest.File("new/deep/file", "n"),
		tartest.Member{Name: "bin/su", Body: []byte("su"), Mode: 0o4755},
		tartest.Member{Name: "bin/dropped", Body: []byte("payload"), Mode: 0o2711},
		tartest.Member{Name: "dev/null", Type: tar.TypeChar, Devmajor: 1, Devminor: 5},
	)
	a := diffImage(t, []overlay.Layer{base}, []digest.Digest{baseID})
	b := diffImage(t, []overlay.Layer{base, top}, []digest.Digest{baseID, digest.FromString("top")})
	for _, hash := range []bool{false, true} {
		got, err := Diff(context.Background(), a, b, DiffOptions{Hash: hash, Workers: 3})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"C /bin", "A /bin/dropped", "C /bin/su",
			"C /dev", "C /dev/null",
			"C /dir-to-file",
			"C /etc", "C /etc/passwd", "C /etc/same-size", "C /etc/touched",
			"C /file-to-dir", "A /file-to-dir/x",
			"C /link",
			"A /new", "A /new/deep", "A /new/deep/file",
			"D /old",
		}
		if g := lines(got); !slices.Equal(g, want) {
			t.Fatalf("hash=%v:\n%s\nwant\n%s", hash, strings.Join(g, "\n"), strings.Join(want, "\n"))
		}
		for p, fields := range map[string][]string{
			"/etc/passwd": {"size", "content"}, "/etc/same-size": {"content"}, "/etc/touched": {"mtime"},
			"/bin/su": {"mode"}, "/dev/null": {"device"}, "/link": {"link"}, "/dir-to-file": {"type", "mode", "size"},
			"/etc": {"contents"},
		} {
			c := byPath(got, p)
			if !slices.Equal(c.Fields, fields) {
				t.Errorf("hash=%v: %s fields %q, want %q", hash, p, c.Fields, fields)
			}
		}
		for p, flags := range map[string][]string{
			"/bin/su": {"setuid", "executable"}, "/bin/dropped": {"setgid", "executable"}, "/etc/passwd": nil, "/old": nil,
		} {
			if c := byPath(got, p); !slices.Equal(c.Flags, flags) {
				t.Errorf("hash=%v: %s flags %q, want %q", hash, p, c.Flags, flags)
			}
		}
		c := byPath(got, "/etc/same-size")
		if c.Old.SHA256 == "" || c.Old.SHA256 == c.New.SHA256 || c.Old.Layer != 1 || c.New.Layer != 2 || c.New.LayerID != digest.FromString("top").String() {
			t.Errorf("hash=%v: same-size states %+v %+v", hash, c.Old, c.New)
		}
		if d := byPath(got, "/bin/dropped"); hash != (d.New.SHA256 != "") {
			t.Errorf("hash=%v: added file's sha256 %q", hash, d.New.SHA256)
		}
	}
	// The reverse diff swaps A and D.
	rev, err := Diff(context.Background(), b, a, DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := byPath(rev, "/new"); c == nil || c.Kind != Deleted || byPath(rev, "/new/deep") != nil {
		t.Errorf("reverse: /new %+v", c)
	}
	if c := byPath(rev, "/old/sub/b"); c == nil || c.Kind != Added {
		t.Errorf("reverse: /old/sub/b %+v", c)
	}
}

// TestDiffIdentical: an image against itself, and against a copy of its layer under another diff ID
// (read and compared by content), has no differences.
func TestDiffIdentical(t *testing.T) {
	layers, _ := hashFixture(t)
	ids := []digest.Digest{digest.FromString("1"), digest.FromString("2")}
	a := diffImage(t, layers, ids)
	got, err := Diff(context.Background(), a, a, DiffOptions{Hash: true})
	if err != nil || len(got) != 0 {
		t.Fatalf("itself: %v %q", err, lines(got))
	}
	l1, l2 := layers[0].(*fakelayer.Layer), layers[1].(*fakelayer.Layer)
	b := diffImage(t, []overlay.Layer{l1, l2}, []digest.Digest{digest.FromString("other-1"), digest.FromString("other-2")})
	got, err = Diff(context.Background(), a, b, DiffOptions{})
	if err != nil || len(got) != 0 {
		t.Fatalf("a copy: %v %q", err, lines(got))
	}
}

// TestDiffSharedLayersNotRead: a layer both images have under one diff ID is never read; the same bytes
// under different diff IDs are (and a read error says which file).
func TestDiffSharedLayersNotRead(t *testing.T) {
	l := fakelayer.New(tartest.File("a", "1234"), tartest.File("b", "5678"))
	bad, _ := l.Lookup(0, "b")
	shared := failingLayer{l, bad}
	top := fakelayer.New(tartest.File("c", "new"))
	id := digest.FromString("shared")
	a := diffImage(t, []overlay.Layer{shared}, []digest.Digest{id})
	b := diffImage(t, []overlay.Layer{shared, top}, []digest.Digest{id, digest.FromString("top")})
	got, err := Diff(context.Background(), a, b, DiffOptions{Hash: false})
	if err != nil || !slices.Equal(lines(got), []string{"A /c"}) {
		t.Fatalf("shared layer: %v %q", err, lines(got))
	}
	b2 := diffImage(t, []overlay.Layer{shared, top}, []digest.Digest{digest.FromString("another"), digest.FromString("top")})
	if _, err := Diff(context.Background(), a, b2, DiffOptions{}); err == nil || !strings.Contains(err.Error(), "/b: read error") {
		t.Fatalf("unshared layer with a bad file: err = %v", err)
	}
}
