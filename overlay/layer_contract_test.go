package overlay

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/fakelayer"
	"github.com/imgfs/imgfs/internal/tartest"
)

// checkLayerContract fails t with every obligation of the Layer interface (see layer.go) that l breaks.
func checkLayerContract(t testing.TB, l Layer) {
	t.Helper()
	for _, v := range layerContract(l) {
		t.Error(v)
	}
}

// maxContractReports bounds the report of one layer, so that a broken table does not flood the log.
const maxContractReports = 20

// layerContract returns one line per broken obligation of the Layer interface, at most
// maxContractReports of them.
func layerContract(l Layer) []string {
	var bad []string
	report := func(format string, args ...any) {
		if len(bad) < maxContractReports {
			bad = append(bad, fmt.Sprintf(format, args...))
		}
	}
	n := l.Len()
	if n < 1 {
		report("Len() = %d: the root must exist", n)
		return bad
	}
	if e := l.Entry(0); e.Type != index.TypeDir || e.Parent != 0 {
		report("root: type %v, parent %d; want a directory that is its own parent", e.Type, e.Parent)
	}
	if l.Name(0) != "" || l.Path(0) != "" {
		report("root: name %q, path %q; want both empty", l.Name(0), l.Path(0))
	}

	listed := make([]int, n) // how often each entry occurs among the children of a directory
	var hardlinks int
	for i := range n {
		id := index.ID(i)
		e := l.Entry(id)
		name, p := l.Name(id), l.Path(id)
		if e.Type < index.TypeRegular || e.Type > index.TypeFIFO {
			report("entry %d (%q): unknown type %d", id, p, e.Type)
		}
		if id != 0 {
			if !normalComponent(name) {
				report("entry %d (%q): name %q is not one normalised path component", id, p, name)
			}
			if int(e.Parent) >= n {
				report("entry %d (%q): parent %d out of range", id, p, e.Parent)
			} else {
				if l.Entry(e.Parent).Type != index.TypeDir {
					report("entry %d (%q): parent %d is a %v, not a directory", id, p, e.Parent, l.Entry(e.Parent).Type)
				}
				if want := pathJoin(l.Path(e.Parent), name); p != want {
					report("entry %d: path %q, but its parent's path and its name make %q", id, p, want)
				}
			}
		}
		if e.Flags&index.FlagImplied != 0 && e.Type != index.TypeDir {
			report("entry %d (%q): FlagImplied on a %v", id, p, e.Type)
		}
		xs := l.Xattrs(id)
		if (e.Flags&index.FlagXattrs != 0) != (len(xs) > 0) {
			report("entry %d (%q): FlagXattrs is %v but it has %d xattrs", id, p, e.Flags&index.FlagXattrs != 0, len(xs))
		}
		seenX := map[string]bool{}
		for _, x := range xs {
			if x.Name == "" || seenX[x.Name] {
				report("entry %d (%q): xattr name %q empty or repeated", id, p, x.Name)
			}
			seenX[x.Name] = true
		}
		if e.Type != index.TypeRegular && e.Size != 0 {
			report("entry %d (%q): a %v with size %d", id, p, e.Type, e.Size)
		}

		switch e.Type {
		case index.TypeDir:
			checkChildren(l, id, listed, report)
		case index.TypeHardlink:
			hardlinks++
			checkHardlink(l, id, report)
		default:
			if _, k := l.Children(id); k != 0 {
				report("entry %d (%q): a %v with %d children", id, p, e.Type, k)
			}
		}
		if e.Type == index.TypeRegular {
			checkData(l, id, report)
		} else if f, _, ok := l.FileRange(id); e.Type != index.TypeHardlink && (ok || f != nil) {
			report("entry %d (%q): FileRange of a %v", id, p, e.Type)
		}
	}
	for i, c := range listed {
		switch {
		case i == 0 && c != 0:
			report("the root is listed %d times as a child", c)
		case i != 0 && c != 1:
			report("entry %d (%q) is listed %d times as a child, want once", i, l.Path(index.ID(i)), c)
		}
	}

	hl := l.Hardlinks()
	seenH := map[index.ID]bool{}
	for _, id := range hl {
		switch {
		case int(id) >= n:
			report("Hardlinks lists %d, out of range", id)
		case seenH[id]:
			report("Hardlinks lists %d twice", id)
		case l.Entry(id).Type != index.TypeHardlink:
			report("Hardlinks lists entry %d (%q), a %v", id, l.Path(id), l.Entry(id).Type)
		}
		seenH[id] = true
	}
	if len(seenH) != hardlinks {
		report("Hardlinks lists %d distinct entries; the layer has %d hard links", len(seenH), hardlinks)
	}

	// Every method is safe for concurrent use: the same reads from several goroutines give the same bytes.
	want := readAll(l)
	var wg sync.WaitGroup
	got := make([]map[index.ID]string, 4)
	for g := range got {
		wg.Add(1)
		go func() { defer wg.Done(); got[g] = readAll(l) }()
	}
	wg.Wait()
	for _, m := range got {
		for id, d := range want {
			if m[id] != d {
				report("entry %d (%q): concurrent reads differ from a lone read", id, l.Path(id))
			}
		}
	}
	return bad
}

// checkChildren checks the children of directory dir: in range, contiguous, sorted bytewise with no
// repeated name, each one's parent dir, each found by Lookup; names that are not there are not found.
func checkChildren(l Layer, dir index.ID, listed []int, report func(string, ...any)) {
	first, k := l.Children(dir)
	p := l.Path(dir)
	if k < 0 || k > 0 && (first == 0 || int(first)+k > l.Len()) {
		report("directory %d (%q): children [%d, +%d) out of range", dir, p, first, k)
		return
	}
	prev := ""
	for j := range k {
		c := first + index.ID(j)
		listed[c]++
		name := l.Name(c)
		if pe := l.Entry(c).Parent; pe != dir {
			report("entry %d (%q) is a child of directory %d (%q) but names %d as its parent", c, l.Path(c), dir, p, pe)
		}
		if j > 0 && prev >= name {
			report("children of %q not sorted bytewise with unique names: %q before %q", p, prev, name)
		}
		prev = name
		if got, ok := l.Lookup(dir, name); !ok || got != c {
			report("Lookup(%q, %q) = %d, %v; want %d, true", p, name, got, ok, c)
		}
		if got, ok := l.Lookup(dir, name+"\x00"); ok {
			report("Lookup(%q, %q) found %d, a name no child has", p, name+"\x00", got)
		}
	}
	if got, ok := l.Lookup(dir, ""); ok {
		report("Lookup(%q, \"\") found %d", p, got)
	}
}

// checkHardlink checks hard link id: its target path is normalised and Entry.Link, when set, is in range.
// The contract does not say what the target is: the fake links "a/b" to directory "a" and "c" to itself,
// which package index drops, and the view leaves such links out of the tree (links.go).
func checkHardlink(l Layer, id index.ID, report func(string, ...any)) {
	p, target := l.Path(id), l.LinkName(id)
	if !normalPath(target) {
		report("hardlink %d (%q): target path %q is not normalised", id, p, target)
	}
	if next := l.Entry(id).Link; next != index.NoID && int(next) >= l.Len() {
		report("hardlink %d (%q): Link %d out of range", id, p, next)
	}
}

// checkData checks ReadAt and FileRange of regular file id: reads are bounded to Size, end with io.EOF,
// leave the rest of the caller's buffer alone, agree with each other at every offset, and a file range
// holds the same bytes.
func checkData(l Layer, id index.ID, report func(string, ...any)) {
	e, p := l.Entry(id), l.Path(id)
	if e.Size < 0 || e.Size > 64<<20 {
		report("regular file %d (%q): size %d out of the checker's range", id, p, e.Size)
		return
	}
	const guard = 0xa5
	buf := bytes.Repeat([]byte{guard}, int(e.Size)+17)
	nr, err := l.ReadAt(id, buf, 0)
	if int64(nr) != e.Size || err != io.EOF {
		report("regular file %d (%q): ReadAt of %d bytes at 0 = %d, %v; want %d, EOF", id, p, len(buf), nr, err, e.Size)
		return
	}
	if bytes.Count(buf[nr:], []byte{guard}) != len(buf)-nr {
		report("regular file %d (%q): ReadAt wrote past the member's %d bytes", id, p, e.Size)
	}
	data := buf[:nr]
	if e.Size > 0 {
		exact := make([]byte, e.Size)
		if nr, err := l.ReadAt(id, exact, 0); int64(nr) != e.Size || (err != nil && err != io.EOF) || !bytes.Equal(exact, data) {
			report("regular file %d (%q): ReadAt of exactly its size = %d, %v, or other bytes", id, p, nr, err)
		}
	}
	for _, off := range []int64{e.Size, e.Size + 1, e.Size + 1<<20} {
		if nr, err := l.ReadAt(id, make([]byte, 8), off); nr != 0 || err != io.EOF {
			report("regular file %d (%q) of size %d: ReadAt at %d = %d, %v; want 0, EOF", id, p, e.Size, off, nr, err)
		}
	}
	if _, err := l.ReadAt(id, make([]byte, 8), -1); err == nil {
		report("regular file %d (%q): ReadAt at -1 gave no error", id, p)
	}
	// Small reads at odd offsets reassemble the data.
	step := max(e.Size/64, 7)
	for off := int64(0); off < e.Size; off += step {
		chunk := make([]byte, 5)
		nr, err := l.ReadAt(id, chunk, off)
		want := data[off:min(off+5, e.Size)]
		if !bytes.Equal(chunk[:nr], want) || (nr < len(chunk) && err == nil) {
			report("regular file %d (%q): ReadAt of 5 bytes at %d = %q, %v; want %q", id, p, off, chunk[:nr], err, want)
			break
		}
	}
	if f, off, ok := l.FileRange(id); ok {
		got := make([]byte, e.Size)
		if f == nil || off < 0 {
			report("regular file %d (%q): FileRange = %v, %d", id, p, f, off)
		} else if nr, err := f.ReadAt(got, off); int64(nr) != e.Size || !bytes.Equal(got, data) {
			report("regular file %d (%q): FileRange holds other bytes than ReadAt (%d, %v)", id, p, nr, err)
		}
	}
}

// readAll reads every regular file of l whole.
func readAll(l Layer) map[index.ID]string {
	out := map[index.ID]string{}
	for i := range l.Len() {
		id := index.ID(i)
		if e := l.Entry(id); e.Type == index.TypeRegular && e.Size >= 0 && e.Size <= 64<<20 {
			buf := make([]byte, e.Size)
			nr, _ := l.ReadAt(id, buf, 0)
			out[id] = string(buf[:nr])
		}
	}
	return out
}

func normalComponent(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

func normalPath(p string) bool {
	if p == "" {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		if !normalComponent(c) {
			return false
		}
	}
	return true
}

func pathJoin(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// contractMembers is one layer with every kind of member the contract speaks of: implied parents,
// whiteouts of both styles, hard links inside the layer, to a lower layer and in a chain, a hardlink
// target replaced later in the layer, xattrs, devices, a FIFO, names that sort differently bytewise than
// by locale, and a root member.
func contractMembers() []tartest.Member {
	x := tartest.File("etc/x", "with xattrs")
	x.Xattrs = map[string]string{"user.a": "1", "security.capability": "c"}
	root := tartest.Dir(".")
	root.Mode = 0o700
	return []tartest.Member{
		root,
		tartest.File("usr/lib/deep/file", "implied parents"),
		tartest.Dir("etc"),
		tartest.File("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
		tartest.File("etc/Z", "upper case sorts first"),
		tartest.File("etc/_", "underscore"),
		tartest.File("etc/\xc3\xa9", "utf-8"),
		tartest.File("etc/empty", ""),
		x,
		tartest.Symlink("etc/link", "../usr/lib"),
		tartest.Hardlink("etc/hard", "etc/passwd"),
		tartest.Hardlink("etc/hard2", "etc/hard"),
		tartest.Hardlink("lower-hard", "bin/from-a-lower-layer"),
		tartest.File("old", "replaced below"),
		tartest.Hardlink("keeps-old", "old"),
		tartest.File("old", "the replacement"),
		tartest.Whiteout("usr", "gone"),
		tartest.Opaque("var/opaque"),
		tartest.File(".wh..wh.plnk/1", "aufs"),
		{Name: "dev/null", Type: tar.TypeChar, Devmajor: 1, Devminor: 3},
		{Name: "dev/loop0", Type: tar.TypeBlock, Devmajor: 7},
		{Name: "run/fifo", Type: tar.TypeFifo},
		tartest.File("big", strings.Repeat("0123456789abcdef", 4096)),
	}
}

// openContractLayer writes b to a file and opens it with package index, so that FileRange has a file.
func openContractLayer(t *testing.T, b []byte) *index.Layer {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "layer.tar"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	l, err := index.Open(context.Background(), index.Blob{R: f, Size: int64(len(b)), File: f}, index.Options{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// checkContractFixture checks what layerContract cannot know without the members of contractMembers:
// whiteouts are stored verbatim as ordinary entries and parents without a member are implied directories.
func checkContractFixture(t *testing.T, l Layer) {
	t.Helper()
	checkLayerContract(t, l)
	lookup := func(p string) (index.Entry, bool) {
		id := index.ID(0)
		for _, c := range strings.Split(p, "/") {
			var ok bool
			if id, ok = l.Lookup(id, c); !ok {
				return index.Entry{}, false
			}
		}
		return l.Entry(id), true
	}
	for _, p := range []string{"usr/.wh.gone", "var/opaque/.wh..wh..opq", ".wh..wh.plnk/1"} {
		if e, ok := lookup(p); !ok || e.Type != index.TypeRegular {
			t.Errorf("%s: %+v, %v; want the whiteout stored as a regular file", p, e, ok)
		}
	}
	for _, p := range []string{"usr", "usr/lib", "var/opaque", "dev"} {
		if e, ok := lookup(p); !ok || e.Type != index.TypeDir || e.Flags&index.FlagImplied == 0 {
			t.Errorf("%s: %+v, %v; want an implied directory", p, e, ok)
		}
	}
	if e, _ := lookup("etc"); e.Flags&index.FlagImplied != 0 {
		t.Errorf("etc has a member but is marked implied")
	}
}

func TestLayerContractFake(t *testing.T) {
	t.Parallel()
	checkContractFixture(t, newFakeLayer(contractMembers()...))
	for seed := range 200 {
		for i, ms := range fakelayer.GenStack(rand.New(rand.NewPCG(uint64(seed), 11))) {
			if bad := layerContract(newFakeLayer(ms...)); len(bad) > 0 {
				t.Fatalf("seed %d layer %d: %s\nmembers: %+v", seed, i, strings.Join(bad, "\n"), ms)
			}
		}
	}
}

func TestLayerContractIndex(t *testing.T) {
	t.Parallel()
	checkContractFixture(t, openContractLayer(t, tartest.Tar(t, contractMembers()...)))
	// The tar fixtures of package index: GNU and PAX long names, sparse files of every format.
	tars, err := filepath.Glob("../index/testdata/*.tar")
	if err != nil || len(tars) == 0 {
		t.Fatalf("no tar fixtures in ../index/testdata: %v", err)
	}
	for _, path := range tars {
		t.Run(filepath.Base(path), func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			checkLayerContract(t, openContractLayer(t, b))
		})
	}
	for seed := range 100 {
		for i, ms := range fakelayer.GenStack(rand.New(rand.NewPCG(uint64(seed), 11))) {
			b, err := tartest.Build(ms...)
			if err != nil {
				t.Fatal(err)
			}
			l, err := index.Open(context.Background(), index.Blob{R: bytes.NewReader(b), Size: int64(len(b))}, index.Options{})
			if err != nil {
				t.Fatalf("seed %d layer %d: %v", seed, i, err)
			}
			bad := layerContract(l)
			l.Close()
			if len(bad) > 0 {
				t.Fatalf("seed %d layer %d: %s\nmembers: %+v", seed, i, strings.Join(bad, "\n"), ms)
			}
		}
	}
}

// brokenReadLayer reads past the end of its members.
type brokenReadLayer struct{ *fakeLayer }

func (l brokenReadLayer) ReadAt(id index.ID, p []byte, off int64) (int, error) {
	n := copy(p, bytes.Repeat([]byte("x"), len(p)))
	return n, nil
}

// brokenLookupLayer does not find "b".
type brokenLookupLayer struct{ *fakeLayer }

func (l brokenLookupLayer) Lookup(dir index.ID, name string) (index.ID, bool) {
	if name == "b" {
		return index.NoID, false
	}
	return l.fakeLayer.Lookup(dir, name)
}

// TestLayerContractReports breaks a fake layer one obligation at a time and expects the checker to say so.
func TestLayerContractReports(t *testing.T) {
	t.Parallel()
	members := []tartest.Member{
		tartest.File("d/a", "A"), tartest.File("d/b", "B"), tartest.Dir("e"),
		tartest.Hardlink("h", "d/a"),
	}
	id := func(l *fakeLayer, p string) index.ID {
		got, ok := l.LookupPath(p)
		if !ok {
			t.Fatalf("fixture has no %q", p)
		}
		return got
	}
	cases := []struct {
		name   string
		break_ func(l *fakeLayer) Layer
		want   string
	}{
		{"unsorted children", func(l *fakeLayer) Layer {
			a, b := id(l, "d/a"), id(l, "d/b")
			l.SetName(a, "b")
			l.SetName(b, "a")
			return l
		}, `children of "d" not sorted bytewise`},
		{"lookup disagrees", func(l *fakeLayer) Layer { return brokenLookupLayer{l} }, `Lookup("d", "b") = 4294967295, false; want 5, true`},
		{"wrong parent", func(l *fakeLayer) Layer {
			l.EntrySlice()[id(l, "d/a")].Parent = id(l, "e")
			return l
		}, `is a child of directory 1 ("d") but names`},
		{"path disagrees", func(l *fakeLayer) Layer {
			l.SetPath(id(l, "d/a"), "x/a")
			return l
		}, `path "x/a", but its parent's path and its name make "d/a"`},
		{"name with a slash", func(l *fakeLayer) Layer {
			l.SetName(id(l, "e"), "e/f")
			return l
		}, `name "e/f" is not one normalised path component`},
		{"root not a directory", func(l *fakeLayer) Layer {
			l.EntrySlice()[0].Type = index.TypeRegular
			return l
		}, `root: type file`},
		{"hardlink out of range", func(l *fakeLayer) Layer {
			l.EntrySlice()[id(l, "h")].Link = index.ID(l.Len() + 3)
			return l
		}, `out of range`},
		{"hardlink target not normalised", func(l *fakeLayer) Layer {
			l.SetLinkName(id(l, "h"), "/d/a")
			return l
		}, `target path "/d/a" is not normalised`},
		{"hardlinks incomplete", func(l *fakeLayer) Layer {
			l.SetHardlinks(nil)
			return l
		}, `Hardlinks lists 0 distinct entries; the layer has 1 hard links`},
		{"xattr flag without xattrs", func(l *fakeLayer) Layer {
			l.EntrySlice()[id(l, "e")].Flags |= index.FlagXattrs
			return l
		}, `FlagXattrs is true but it has 0 xattrs`},
		{"entry listed twice", func(l *fakeLayer) Layer {
			l.SetChildren(id(l, "e"), id(l, "d/a"), 1)
			return l
		}, `listed 2 times as a child`},
		{"ReadAt unbounded", func(l *fakeLayer) Layer { return brokenReadLayer{l} }, `ReadAt of 18 bytes at 0 = 18, <nil>; want 1, EOF`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if bad := layerContract(newFakeLayer(members...)); len(bad) > 0 {
				t.Fatalf("the unbroken fixture breaks the contract: %q", bad)
			}
			bad := layerContract(c.break_(newFakeLayer(members...)))
			if !strings.Contains(strings.Join(bad, "\n"), c.want) {
				t.Errorf("checker reported %q, want a line containing %q", bad, c.want)
			}
		})
	}
}
