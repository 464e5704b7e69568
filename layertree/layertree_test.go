package layertree

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/fakelayer"
	"github.com/imgfs/imgfs/internal/tartest"
	"github.com/imgfs/imgfs/overlay"
)

// deletedStack is the deleted-file fixture: a file added in layer 1 and whited out in layer 3, with an
// opaque directory, an overlayfs whiteout device, a whole directory deleted, hard links within a layer
// and across layers, and a member carrying an xattr of a provenance name.
func deletedStack() [][]tartest.Member {
	return [][]tartest.Member{
		{
			tartest.Dir("etc"),
			tartest.File("etc/motd", "motd of layer 1\n"),
			tartest.File("etc/keep", "keep 1"),
			tartest.Dir("a"),
			tartest.File("a/old", "old"),
			tartest.File("a/sub/deep", "deep"),
			{Name: "hl/target", Body: []byte("T"), Xattrs: map[string]string{XattrLayer: "the image's own", "user.note": "n"}},
			tartest.Hardlink("hl/link", "hl/target"),
		},
		{
			{Name: "etc/keep", Body: []byte("keep 2"), Mode: 0o600, UID: 7, GID: 8},
			tartest.File("x", "x of layer 2"),
			tartest.File("gone/dir/f", "f"),
			tartest.Hardlink("cross", "hl/target"),
		},
		{
			tartest.Whiteout("etc", "motd"),
			tartest.Opaque("a"),
			tartest.File("a/new", "new"),
			{Name: "x", Type: tar.TypeChar},
			tartest.Whiteout("", "gone"),
		},
	}
}

// fixture is a stack of index layers opened from tartest tars, with the tars kept for oracles.
type fixture struct {
	tars   [][]byte
	layers []overlay.Layer
	img    Image
}

func newFixture(t *testing.T, stack [][]tartest.Member) *fixture {
	t.Helper()
	f := &fixture{img: Image{Manifest: []byte(`{"schemaVersion":2}`), Config: []byte(`{"history":[{"created_by":"a"}, {"created_by":"b"}],"os":"linux"}`)}}
	for i, members := range stack {
		b := tartest.Tar(t, members...)
		f.tars = append(f.tars, b)
		path := filepath.Join(t.TempDir(), fmt.Sprintf("layer%d.tar", i))
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { file.Close() })
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		l, err := index.Open(context.Background(), index.Blob{R: file, Size: int64(len(b)), File: file}, index.Options{CacheDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		f.layers = append(f.layers, l)
		f.img.Layers = append(f.img.Layers, LayerInfo{Digest: d, DiffID: d})
	}
	return f
}

func (f *fixture) view(t *testing.T, upper *overlay.Upper, opts Options) *View {
	t.Helper()
	v, err := overlay.New(f.layers, overlay.Options{Upper: upper})
	if err != nil {
		t.Fatal(err)
	}
	tv, err := New(v, f.layers, f.img, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tv
}

// item is one node met on a walk.
type item struct {
	node  overlay.Node
	attr  overlay.Attr
	data  string
	link  string
	xattr map[string]string
}

// walk lists the tree below directory n through the view's API, path → item, checking that Lookup
// agrees with ReadDir on every name.
func walk(t *testing.T, v *View, n overlay.Node, prefix string, out map[string]item) {
	t.Helper()
	d, err := v.ReadDir(n)
	if err != nil {
		t.Fatalf("readdir %q: %v", prefix, err)
	}
	for i := range d.Len() {
		e := d.Entry(i)
		p := prefix + e.Name
		a, err := v.Lookup(n, e.Name)
		if err != nil {
			t.Fatalf("lookup %q: %v", p, err)
		}
		if a.Node != e.Node || a.Type != e.Type {
			t.Fatalf("%q: lookup gives node %#x type %v, readdir %#x %v", p, a.Node, a.Type, e.Node, e.Type)
		}
		if b, err := v.Attr(e.Node); err != nil || b != a {
			t.Fatalf("%q: attr %+v %v, lookup %+v", p, b, err, a)
		}
		it := item{node: a.Node, attr: a, xattr: map[string]string{}}
		xs, err := v.Xattrs(a.Node)
		if err != nil {
			t.Fatalf("xattrs %q: %v", p, err)
		}
		for _, x := range xs {
			it.xattr[x.Name] = string(x.Value)
		}
		switch a.Type {
		case index.TypeRegular:
			it.data = readAll(t, v, a.Node)
		case index.TypeSymlink:
			it.link, _ = v.Readlink(a.Node)
		case index.TypeDir:
			walk(t, v, a.Node, p+"/", out)
		}
		out[p] = it
	}
}

func readAll(t *testing.T, v *View, n overlay.Node) string {
	t.Helper()
	f, err := v.Open(n)
	if err != nil {
		t.Fatalf("open %#x: %v", n, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func find(t *testing.T, v *View, p string) overlay.Attr {
	t.Helper()
	a, err := v.Attr(overlay.Root)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range strings.Split(p, "/") {
		if a, err = v.Lookup(a.Node, c); err != nil {
			t.Fatalf("lookup %q (at %q): %v", p, c, err)
		}
	}
	return a
}

func getx(t *testing.T, v *View, n overlay.Node, name string) (string, bool) {
	t.Helper()
	b, ok, err := v.UnlistedXattr(n, name)
	if err != nil {
		t.Fatalf("getxattr %s of %#x: %v", name, n, err)
	}
	return string(b), ok
}

func sortedKeys(m map[string]item) []string { return slices.Sorted(maps.Keys(m)) }

// TestTreeShowsLayersHiddenAndImage walks the whole tree of the deleted-file fixture and compares it
// with what each layer's tar holds.
func TestTreeShowsLayersHiddenAndImage(t *testing.T) {
	f := newFixture(t, deletedStack())
	v := f.view(t, nil, Options{Tree: true})
	if v.Name() != DefaultName {
		t.Fatalf("name %q", v.Name())
	}
	merged := map[string]item{}
	walk(t, v, overlay.Root, "", merged)
	for p := range merged {
		if p == DefaultName || strings.HasPrefix(p, DefaultName+"/") {
			t.Fatalf("the merged listing shows %q", p)
		}
	}
	wantMerged := []string{"a", "a/new", "cross", "etc", "etc/keep", "hl", "hl/link", "hl/target"}
	if got := sortedKeys(merged); !slices.Equal(got, wantMerged) {
		t.Fatalf("merged view %q, want %q", got, wantMerged)
	}

	root, err := v.Lookup(overlay.Root, DefaultName)
	if err != nil || root.Type != index.TypeDir || root.Mode != metaDirMode {
		t.Fatalf("lookup of the tree: %+v %v", root, err)
	}
	tree := map[string]item{}
	walk(t, v, root.Node, "", tree)

	n1, n2, n3 := v.names[0], v.names[1], v.names[2]
	if !strings.HasPrefix(n1, "1-") || len(n1) != 2+12 || n1[2:] != f.img.Layers[0].Digest[7:19] {
		t.Fatalf("layer 1 is called %q", n1)
	}
	// Every layer alone equals its tar.
	for i := range f.layers {
		want := tarListing(t, f.tars[i])
		got := map[string]string{}
		prefix := "layers/" + v.names[i] + "/"
		for p, it := range tree {
			if rest, ok := strings.CutPrefix(p, prefix); ok {
				got[rest] = describe(it)
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("layer %d:\n got %v\nwant %v", i+1, got, want)
		}
	}
	// Hard links within a layer are one node; across layers, the lower layer's file.
	if a, b := tree["layers/"+n1+"/hl/link"], tree["layers/"+n1+"/hl/target"]; a.node != b.node || a.attr.Nlink != 2 {
		t.Errorf("layer 1's hard link: %#x nlink %d, target %#x", a.node, a.attr.Nlink, b.node)
	}
	if a, b := tree["layers/"+n2+"/cross"], tree["layers/"+n1+"/hl/target"]; a.node != b.node || a.data != "T" {
		t.Errorf("layer 2's link into layer 1: node %#x %q, target %#x", a.node, a.data, b.node)
	}
	// The member's own xattr of a provenance name shows in its layer, not in the merged view.
	if got := tree["layers/"+n1+"/hl/target"].xattr[XattrLayer]; got != "the image's own" {
		t.Errorf("layer 1 hl/target %s = %q", XattrLayer, got)
	}
	if x := merged["hl/target"].xattr; x["user.note"] != "n" || x[XattrLayer] != "" {
		t.Errorf("the merged view's hl/target lists %v, want user.note only", x)
	}

	// Hidden: exactly what the whiteouts and the opaque directory deleted, with its layer's content.
	hidden := map[string]string{}
	for p, it := range tree {
		if rest, ok := strings.CutPrefix(p, "hidden/"); ok {
			hidden[rest] = describe(it)
		}
	}
	wantHidden := map[string]string{
		n1:                 "d",
		n1 + "/etc":        "d",
		n1 + "/etc/motd":   "f 644 0:0 motd of layer 1\n",
		n1 + "/a":          "d",
		n1 + "/a/old":      "f 644 0:0 old",
		n1 + "/a/sub":      "d",
		n1 + "/a/sub/deep": "f 644 0:0 deep",
		n2:                 "d",
		n2 + "/x":          "f 644 0:0 x of layer 2",
		n2 + "/gone":       "d",
		n2 + "/gone/dir":   "d",
		n2 + "/gone/dir/f": "f 644 0:0 f",
	}
	for k, v := range wantHidden {
		if v == "d" {
			wantHidden[k] = hidden[k] // directories: only their presence is asserted here
			if !strings.HasPrefix(hidden[k], "d ") {
				t.Errorf("hidden %q is %q, want a directory", k, hidden[k])
			}
		}
	}
	if !maps.Equal(hidden, wantHidden) {
		t.Errorf("hidden:\n got %v\nwant %v", hidden, wantHidden)
	}
	if _, ok := tree["hidden/"+n3]; ok {
		t.Errorf("layer 3 lost nothing but is listed under hidden")
	}

	// The image's files are its bytes.
	for name, want := range map[string]string{"manifest.json": string(f.img.Manifest), "config.json": string(f.img.Config),
		"history.json": `[{"created_by":"a"}, {"created_by":"b"}]`} {
		if got := tree["image/"+name]; got.data != want || got.attr.Mode != metaFileMode {
			t.Errorf("image/%s = %q mode %o, want %q", name, got.data, got.attr.Mode, want)
		}
	}

	// Nodes are unique: no node of the tree is one of the merged view, and two paths share a node only
	// as hard links of one layer (or a link into a lower layer).
	seen := map[overlay.Node]string{}
	for _, p := range sortedKeys(merged) {
		seen[merged[p].node] = p
	}
	for _, p := range sortedKeys(tree) {
		n := tree[p].node
		if q, ok := seen[n]; ok && !isLinkPair(p, q) {
			t.Errorf("node %#x is both %q and %q", n, q, p)
		}
		seen[n] = p
	}
}

// isLinkPair reports whether two tree paths are names of one file by the fixture's hard links.
func isLinkPair(p, q string) bool {
	names := func(s string) bool {
		return strings.HasSuffix(s, "/hl/link") || strings.HasSuffix(s, "/hl/target") || strings.HasSuffix(s, "/cross")
	}
	return strings.HasPrefix(p, "layers/") && strings.HasPrefix(q, "layers/") && names(p) && names(q)
}

// describe renders an item as tarListing renders a member.
func describe(it item) string {
	a := it.attr
	own := fmt.Sprintf("%o %d:%d", a.Mode, a.UID, a.GID)
	switch a.Type {
	case index.TypeDir:
		return "d " + own
	case index.TypeRegular:
		return "f " + own + " " + it.data + xattrList(it.xattr)
	case index.TypeSymlink:
		return "l " + it.link
	case index.TypeChar:
		return fmt.Sprintf("c %s %d,%d", own, a.Devmajor, a.Devminor)
	}
	return fmt.Sprintf("? %v", a.Type)
}

// tarListing lists a tar's members as describe renders items, with the directories tar -x would make
// for parents that have no member (0755, 0:0); hard links take their target's rendering.
func tarListing(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		for dir := filepath.Dir(name); dir != "."; dir = filepath.Dir(dir) {
			if _, ok := out[dir]; !ok {
				out[dir] = "d 755 0:0"
			}
		}
		own := fmt.Sprintf("%o %d:%d", h.Mode&0o7777, h.Uid, h.Gid)
		switch h.Typeflag {
		case tar.TypeDir:
			out[name] = "d " + own
		case tar.TypeReg:
			data, _ := io.ReadAll(tr)
			xs := map[string]string{}
			for k, v := range h.PAXRecords {
				if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
					xs[x] = v
				}
			}
			out[name] = "f " + own + " " + string(data) + xattrList(xs)
		case tar.TypeSymlink:
			out[name] = "l " + h.Linkname
		case tar.TypeChar:
			out[name] = fmt.Sprintf("c %s %d,%d", own, h.Devmajor, h.Devminor)
		case tar.TypeLink:
			out[name] = "link:" + h.Linkname
		}
	}
	for p, d := range out {
		if target, ok := strings.CutPrefix(d, "link:"); ok {
			if td, ok := out[target]; ok {
				out[p] = td
			} else {
				out[p] = "f 644 0:0 T [user.imgfs.layer=the image's own user.note=n]" // the one link into layer 1
			}
		}
	}
	return out
}

// TestProvenance checks user.imgfs.layer, offset and path against the tars: the offset of every file
// of the merged view is where its data starts in its layer's tar (found by counting archive/tar's
// reads), and none of them is listed.
func TestProvenance(t *testing.T) {
	f := newFixture(t, deletedStack())
	v := f.view(t, nil, Options{})
	offsets := make([]map[string]int64, len(f.tars))
	for i, b := range f.tars {
		offsets[i] = dataOffsets(t, b)
	}
	for _, c := range []struct {
		path  string
		layer int
		owner string // the member's path
	}{
		{"etc/keep", 2, "etc/keep"},
		{"a/new", 3, "a/new"},
		{"hl/link", 1, "hl/target"},
		{"cross", 1, "hl/target"},
		{"hl/target", 1, "hl/target"},
	} {
		a := find(t, v, c.path)
		lay, _ := getx(t, v, a.Node, XattrLayer)
		if want := fmt.Sprintf("%d %s", c.layer, f.img.Layers[c.layer-1].Digest); lay != want {
			t.Errorf("%s: %s = %q, want %q", c.path, XattrLayer, lay, want)
		}
		off, ok := getx(t, v, a.Node, XattrOffset)
		if want := fmt.Sprint(offsets[c.layer-1][c.owner]); !ok || off != want {
			t.Errorf("%s: %s = %q, want %q", c.path, XattrOffset, off, want)
		}
		if alias, _ := getx(t, v, a.Node, "trusted.imgfs.layer"); alias != lay {
			t.Errorf("%s: trusted.imgfs.layer = %q, user.imgfs.layer %q", c.path, alias, lay)
		}
		if p, _ := getx(t, v, a.Node, XattrPath); p != c.owner {
			t.Errorf("%s: %s = %q, want %q", c.path, XattrPath, p, c.owner)
		}
		xs, _ := v.Xattrs(a.Node)
		for _, x := range xs {
			if strings.HasPrefix(x.Name, "user.imgfs.") {
				t.Errorf("%s lists %s", c.path, x.Name)
			}
		}
	}
	// A directory has a layer and a path but no data offset; an implied one says so.
	a := find(t, v, "etc")
	if lay, _ := getx(t, v, a.Node, XattrLayer); lay != "1 "+f.img.Layers[0].Digest {
		t.Errorf("etc: %s = %q", XattrLayer, lay)
	}
	if _, ok := getx(t, v, a.Node, XattrOffset); ok {
		t.Errorf("a directory answers %s", XattrOffset)
	}
	a = find(t, v, "hl")
	if lay, _ := getx(t, v, a.Node, XattrLayer); lay != "1 "+f.img.Layers[0].Digest+" implied" {
		t.Errorf("hl (implied): %s = %q", XattrLayer, lay)
	}
	if _, ok := getx(t, v, overlay.Root, XattrTree); ok {
		t.Errorf("a view without the tree answers %s", XattrTree)
	}
	if _, err := v.Lookup(overlay.Root, DefaultName); !errors.Is(err, overlay.ErrNotExist) {
		t.Errorf("a view without the tree finds %s: %v", DefaultName, err)
	}
}

// dataOffsets returns the offset of every regular member's data in tar b.
func dataOffsets(t *testing.T, b []byte) map[string]int64 {
	t.Helper()
	r := bytes.NewReader(b)
	tr := tar.NewReader(r)
	out := map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			out[strings.TrimPrefix(h.Name, "./")] = int64(len(b)) - int64(r.Len())
		}
	}
}

// TestTreeName: the image's own /.imgfs wins in the merged view, the tree moves to the first free
// name and says so; an explicit name the image uses is refused.
func TestTreeName(t *testing.T) {
	stack := [][]tartest.Member{{tartest.File(".imgfs", "mine"), tartest.Dir(".imgfs-1"), tartest.File("f", "f")}}
	f := newFixture(t, stack)
	v := f.view(t, nil, Options{Tree: true})
	if v.Name() != ".imgfs-2" {
		t.Fatalf("tree at %q, want .imgfs-2", v.Name())
	}
	if got := readAll(t, v, find(t, v, ".imgfs").Node); got != "mine" {
		t.Errorf("the image's /.imgfs reads %q", got)
	}
	if a := find(t, v, ".imgfs-2/layers"); a.Type != index.TypeDir {
		t.Errorf(".imgfs-2/layers: %+v", a)
	}
	if name, _ := getx(t, v, overlay.Root, XattrTree); name != ".imgfs-2" {
		t.Errorf("%s = %q", XattrTree, name)
	}
	vv, _ := overlay.New(f.layers, overlay.Options{})
	if _, err := New(vv, f.layers, f.img, Options{Tree: true, Name: ".imgfs-1"}); !errors.Is(err, overlay.ErrExist) {
		t.Errorf("an explicit name the image has: %v", err)
	}
	for _, bad := range []string{"a/b", "..", ".wh.x"} {
		if _, err := New(vv, f.layers, f.img, Options{Tree: true, Name: bad}); !errors.Is(err, overlay.ErrInvalid) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	tv, err := New(vv, f.layers, f.img, Options{Tree: true, Name: "evidence"})
	if err != nil || tv.Name() != "evidence" {
		t.Fatalf("explicit name: %v %q", err, tv.Name())
	}
}

// TestTreeReadOnlyOnWritableView: on a writable view every change under the tree is refused, the
// tree's name cannot be made, removed or renamed, provenance names cannot be set, and the merged view
// stays writable (an upper file says "upper").
func TestTreeReadOnlyOnWritableView(t *testing.T) {
	f := newFixture(t, deletedStack())
	up, err := overlay.OpenUpper(overlay.UpperOptions{Dir: filepath.Join(t.TempDir(), "upper"), Base: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	v := f.view(t, up, Options{Tree: true})
	if !v.Writable() {
		t.Fatal("not writable")
	}
	c := overlay.Caller{}
	tree := find(t, v, DefaultName)
	layerDir := find(t, v, DefaultName+"/layers/"+v.names[0]+"/etc")
	file := find(t, v, DefaultName+"/layers/"+v.names[0]+"/etc/motd")
	hid := find(t, v, DefaultName+"/hidden/"+v.names[0]+"/etc/motd")
	mode := uint32(0o600)
	for name, err := range map[string]error{
		"create":      second3(v.Create(layerDir.Node, "new", 0o644, c)),
		"mkdir":       second(v.Mkdir(tree.Node, "d", 0o755, c)),
		"symlink":     second(v.Symlink(layerDir.Node, "s", "x", c)),
		"mknod":       second(v.Mknod(layerDir.Node, "p", index.TypeFIFO, 0o644, 0, 0, c)),
		"unlink":      v.Unlink(layerDir.Node, "motd"),
		"rmdir":       v.Rmdir(tree.Node, "layers"),
		"rename-from": v.Rename(layerDir.Node, "motd", overlay.Root, "stolen", 0),
		"rename-into": v.Rename(overlay.Root, "cross", layerDir.Node, "moved", 0),
		"setattr":     second(v.SetAttr(file.Node, overlay.SetAttrIn{Mode: &mode})),
		"setattr-hid": second(v.SetAttr(hid.Node, overlay.SetAttrIn{Mode: &mode})),
		"setxattr":    v.SetXattr(file.Node, "user.x", []byte("y"), 0),
		"removexattr": v.RemoveXattr(file.Node, "user.x"),
		"open-write":  second(v.OpenFile(file.Node, true, false)),
		"open-trunc":  second(v.OpenFile(hid.Node, false, true)),
		"link-into":   second(v.Link(find(t, v, "cross").Node, layerDir.Node, "l")),
	} {
		if !errors.Is(err, overlay.ErrReadOnly) {
			t.Errorf("%s under the tree: %v, want ErrReadOnly", name, err)
		}
	}
	if _, err := v.Link(file.Node, overlay.Root, "l"); !errors.Is(err, overlay.ErrCrossDevice) {
		t.Errorf("link from the tree: %v, want ErrCrossDevice", err)
	}
	for name, err := range map[string]error{
		"mkdir":     second(v.Mkdir(overlay.Root, DefaultName, 0o755, c)),
		"create":    second3(v.Create(overlay.Root, DefaultName, 0o644, c)),
		"rmdir":     v.Rmdir(overlay.Root, DefaultName),
		"rename-to": v.Rename(overlay.Root, "cross", overlay.Root, DefaultName, 0),
		"rename":    v.Rename(overlay.Root, DefaultName, overlay.Root, "x2", 0),
		"setxattr":  v.SetXattr(find(t, v, "cross").Node, XattrLayer, []byte("1"), 0),
		"rmxattr":   v.RemoveXattr(find(t, v, "cross").Node, XattrOffset),
	} {
		if !errors.Is(err, overlay.ErrReservedName) {
			t.Errorf("%s of the reserved name: %v, want ErrReservedName", name, err)
		}
	}
	// The merged view changes as ever; its new file comes from the upper directory.
	a, w, err := v.Create(overlay.Root, "made", 0o644, c)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if lay, _ := getx(t, v, a.Node, XattrLayer); lay != "upper" {
		t.Errorf("new file: %s = %q", XattrLayer, lay)
	}
	if _, ok := getx(t, v, a.Node, XattrOffset); ok {
		t.Errorf("an upper file answers %s", XattrOffset)
	}
	// The tree still shows the layers as they are, and the deleted file's content.
	if got := readAll(t, v, hid.Node); got != "motd of layer 1\n" {
		t.Errorf("hidden etc/motd reads %q", got)
	}
	var names []string
	d, _ := v.ReadDir(overlay.Root)
	for i := range d.Len() {
		names = append(names, d.Entry(i).Name)
	}
	sort.Strings(names)
	if slices.Contains(names, DefaultName) || !slices.Contains(names, "made") {
		t.Errorf("root lists %q", names)
	}
}

func second[T any](_ T, err error) error          { return err }
func second3[T, U any](_ T, _ U, err error) error { return err }

// xattrList renders xattrs sorted, "" when there are none.
func xattrList(xs map[string]string) string {
	if len(xs) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(xs)) {
		parts = append(parts, k+"="+xs[k])
	}
	return " [" + strings.Join(parts, " ") + "]"
}

// TestTreeNodesChecked: nodes the tree never hands out are refused, not trusted, and a view without
// the tree refuses all of its nodes.
func TestTreeNodesChecked(t *testing.T) {
	f := newFixture(t, deletedStack())
	v := f.view(t, nil, Options{Tree: true})
	for _, n := range []overlay.Node{
		node(kindLayer, 3, 0),             // no layer 4
		node(kindLayer, 0, 1<<31),         // no such entry
		node(kindHidden, 70000&0xffff, 0), // layer out of range
		node(7, 0, 0),                     // no such part
		metaNode(metaCount),               // no such fixed node
	} {
		if _, err := v.Attr(n); !errors.Is(err, overlay.ErrInvalid) {
			t.Errorf("Attr(%#x) = %v, want ErrInvalid", n, err)
		}
		if _, err := v.ReadDir(n); !errors.Is(err, overlay.ErrInvalid) {
			t.Errorf("ReadDir(%#x) = %v, want ErrInvalid", n, err)
		}
		if _, err := v.Open(n); !errors.Is(err, overlay.ErrInvalid) {
			t.Errorf("Open(%#x) = %v, want ErrInvalid", n, err)
		}
	}
	// A hard link's own entry is never a node: its target is.
	l := f.layers[0]
	h := l.Hardlinks()[0]
	if _, err := v.Attr(node(kindLayer, 0, h)); !errors.Is(err, overlay.ErrInvalid) {
		t.Errorf("Attr of a hard link entry: %v", err)
	}
	plain := f.view(t, nil, Options{})
	if _, err := plain.Attr(metaNode(metaRoot)); !errors.Is(err, overlay.ErrInvalid) {
		t.Errorf("a view without the tree: Attr of its root: %v", err)
	}
	if _, _, err := plain.UnlistedXattr(node(kindLayer, 0, 1), XattrLayer); !errors.Is(err, overlay.ErrInvalid) {
		t.Errorf("a view without the tree: getxattr of a tree node: %v", err)
	}
	// Merged nodes never look like tree nodes.
	merged := map[string]item{}
	walk(t, v, overlay.Root, "", merged)
	for p, it := range merged {
		if isTree(it.node) {
			t.Errorf("merged %q has tree node %#x", p, it.node)
		}
	}
}

// TestTreeGenerated runs random stacks (paths colliding across layers, whiteouts of both styles,
// opaque directories, hard links, type changes) through the tree and checks what must hold whatever
// the stack: Lookup agrees with ReadDir everywhere (walk); every file of the merged view is, at the
// layer and path its provenance names, the same file under layers/; every hidden entry is its layer's
// entry, and the merged view shows its path only from a higher layer; no directory shares its node,
// and no node of the tree is one of the merged view.
func TestTreeGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 0))
	for i := range 500 {
		stack := fakelayer.GenStack(fakelayer.NewRandChooser(r))
		var layers []overlay.Layer
		img := Image{Config: []byte("{}")}
		for j, ms := range stack {
			layers = append(layers, fakelayer.New(ms...))
			img.Layers = append(img.Layers, LayerInfo{Digest: fmt.Sprintf("sha256:%064x", j+1)})
		}
		ov, err := overlay.New(layers, overlay.Options{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := New(ov, layers, img, Options{Tree: true})
		if err != nil {
			t.Fatalf("stack %d: %v", i, err)
		}
		merged, tree := map[string]item{}, map[string]item{}
		walk(t, v, overlay.Root, "", merged)
		root, err := v.Lookup(overlay.Root, v.Name())
		if err != nil {
			t.Fatal(err)
		}
		walk(t, v, root.Node, "", tree)
		dump := func() string { return fakelayer.Dump(fakeLayers(layers)) }
		for p, it := range merged {
			lay, ok := getx(t, v, it.node, XattrLayer)
			if !ok {
				t.Fatalf("stack %d: %s has no %s\n%s", i, p, XattrLayer, dump())
			}
			if it.attr.Type != index.TypeRegular {
				continue
			}
			n, _ := strconv.Atoi(strings.Fields(lay)[0])
			q, _ := getx(t, v, it.node, XattrPath)
			lt, ok := tree["layers/"+v.names[n-1]+"/"+q]
			if !ok || lt.data != it.data || lt.attr.Mode != it.attr.Mode {
				t.Fatalf("stack %d: merged %s (%s, %s) is not layers/%s/%s (%+v)\n%s", i, p, lay, q, v.names[n-1], q, lt, dump())
			}
		}
		for p, it := range tree {
			rest, ok := strings.CutPrefix(p, "hidden/")
			if !ok {
				continue
			}
			name, sub, _ := strings.Cut(rest, "/")
			N := slices.Index(v.names, name)
			if sub == "" {
				continue
			}
			lt, ok := tree["layers/"+name+"/"+sub]
			if !ok || lt.data != it.data || lt.attr.Type != it.attr.Type || lt.attr.Mode != it.attr.Mode {
				t.Fatalf("stack %d: hidden %s is not layers/%s/%s\n%s", i, p, name, sub, dump())
			}
			if m, ok := merged[sub]; ok && it.attr.Type != index.TypeDir && !v.onlyDirs(N, sub) {
				lay, _ := getx(t, v, m.node, XattrLayer)
				q, _ := getx(t, v, m.node, XattrPath)
				n, _ := strconv.Atoi(strings.Fields(lay)[0])
				if q == sub && n-1 <= N {
					t.Fatalf("stack %d: %s hidden in layer %d but shown from layer %d\n%s", i, sub, N+1, n, dump())
				}
			}
		}
		seen := map[overlay.Node]string{}
		for _, p := range sortedKeys(merged) {
			seen[merged[p].node] = "merged/" + p
		}
		for _, p := range sortedKeys(tree) {
			it := tree[p]
			// Hard links of the tree share a node (one of hidden/ may name a file of layers/);
			// directories never do, and nothing is a node of the merged view.
			if q, ok := seen[it.node]; ok && (it.attr.Type == index.TypeDir || strings.HasPrefix(q, "merged/")) {
				t.Fatalf("stack %d: node %#x is %s and %s\n%s", i, it.node, q, p, dump())
			}
			seen[it.node] = p
		}
	}
}

// onlyDirs reports whether layer N holds a directory at path p (a hidden directory's path may show in
// the merged view from any layer: directories merge).
func (t *View) onlyDirs(N int, p string) bool {
	id, ok := lookupPath(t.layers[N], p)
	return ok && t.layers[N].Entry(id).Type == index.TypeDir
}

func fakeLayers(ls []overlay.Layer) []*fakelayer.Layer {
	var out []*fakelayer.Layer
	for _, l := range ls {
		out = append(out, l.(*fakelayer.Layer))
	}
	return out
}

// TestTreeConcurrent walks the tree from several goroutines at once while the hidden sets are being
// computed (run with -race).
func TestTreeConcurrent(t *testing.T) {
	f := newFixture(t, deletedStack())
	v := f.view(t, nil, Options{Tree: true})
	root, err := v.Lookup(overlay.Root, DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]item{}
	walk(t, v, root.Node, "", want)
	v = f.view(t, nil, Options{Tree: true}) // hidden sets not computed yet
	done := make(chan map[string]item)
	for range 8 {
		go func() {
			got := map[string]item{}
			defer func() { done <- got }() // also when walk fails (t.Fatal ends the goroutine)
			walk(t, v, root.Node, "", got)
		}()
	}
	for range 8 {
		if got := <-done; !slices.Equal(sortedKeys(got), sortedKeys(want)) {
			t.Errorf("a concurrent walk saw %q, want %q", sortedKeys(got), sortedKeys(want))
		}
	}
}
