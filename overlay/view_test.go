package overlay

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/fakelayer"
	"github.com/imgfs/imgfs/internal/tartest"
)

type members = []tartest.Member

func file(name, body string) tartest.Member { return tartest.File(name, body) }
func dir(name string) tartest.Member        { return tartest.Dir(name) }
func dirMode(name string, mode int64, uid int) tartest.Member {
	m := tartest.Dir(name)
	m.Mode, m.UID = mode, uid
	return m
}
func symlink(name, target string) tartest.Member  { return tartest.Symlink(name, target) }
func hardlink(name, target string) tartest.Member { return tartest.Hardlink(name, target) }
func char(name string, major, minor int64) tartest.Member {
	return tartest.Member{Name: name, Type: tar.TypeChar, Devmajor: major, Devminor: minor}
}

// render lists a view compactly: "d/" for directories, "f=data" for files, "l->target", "c=c1:3",
// "p|" for FIFOs; " nlink=N" when a file has several names.
func render(t *testing.T, v *View) []string {
	t.Helper()
	var out []string
	var walk func(n Node, p string)
	walk = func(n Node, p string) {
		d, err := v.ReadDir(n)
		if err != nil {
			t.Fatalf("readdir %q: %v", p, err)
		}
		for i := 0; i < d.Len(); i++ {
			de := d.Entry(i)
			a, err := v.Attr(de.Node)
			if err != nil {
				t.Fatalf("attr %q: %v", join(p, de.Name), err)
			}
			s := join(p, de.Name)
			switch a.Type {
			case index.TypeDir:
				out = append(out, s+"/")
				walk(de.Node, s)
				continue
			case index.TypeRegular:
				f, _ := v.Open(de.Node)
				data := make([]byte, f.Size())
				_, _ = f.ReadAt(data, 0)
				s += "=" + string(data)
			case index.TypeSymlink:
				target, _ := v.Readlink(de.Node)
				s += "->" + target
			case index.TypeChar:
				s += fmt.Sprintf("=c%d:%d", a.Devmajor, a.Devminor)
			case index.TypeFIFO:
				s += "|"
			}
			if a.Nlink > 1 {
				s += fmt.Sprintf(" nlink=%d", a.Nlink)
			}
			out = append(out, s)
		}
	}
	walk(Root, "")
	return out
}

func mustNew(t *testing.T, stacks ...members) *View {
	t.Helper()
	v, err := New(layersOf(stacks...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// lookupPath looks up a slash-separated path from the root.
func lookupPath(v *View, p string) (Attr, error) {
	a, err := v.Attr(Root)
	for _, c := range strings.Split(p, "/") {
		if err != nil {
			break
		}
		a, err = v.Lookup(a.Node, c)
	}
	return a, err
}

func TestWhiteouts(t *testing.T) {
	t.Parallel()
	opaqueXattr := dir("d")
	opaqueXattr.Xattrs = map[string]string{"trusted.overlay.opaque": "y", "user.keep": "1"}
	tests := []struct {
		name   string
		layers []members
		want   []string
	}{
		{"whiteout hides a lower file",
			[]members{{file("a/foo", "1"), file("a/bar", "2")}, {tartest.Whiteout("a", "foo")}},
			[]string{"a/", "a/bar=2"}},
		{"whiteout hides a lower subtree",
			[]members{{file("a/b/c", "1"), file("x", "2")}, {tartest.Whiteout("", "a")}},
			[]string{"x=2"}},
		{"same-layer name survives its whiteout",
			[]members{{file("x", "1")}, {tartest.Whiteout("", "x"), file("x", "2")}},
			[]string{"x=2"}},
		{"same-layer name survives a whiteout written after it",
			[]members{{file("x", "1")}, {file("x", "2"), tartest.Whiteout("", "x")}},
			[]string{"x=2"}},
		{"deleted then recreated directory keeps only new children",
			[]members{{file("a/foo", "1")}, {tartest.Whiteout("", "a"), file("a/baz", "2")}},
			[]string{"a/", "a/baz=2"}},
		{"whiteout of a missing path does nothing",
			[]members{{file("a", "1")}, {tartest.Whiteout("", "zz"), tartest.Whiteout("b", "q")}},
			[]string{"a=1", "b/"}},
		{"a whiteout below a lower file implies a directory that shadows it, as overlay2 shows it",
			[]members{{file("a", "1")}, {tartest.Whiteout("a", "x")}},
			[]string{"a/"}},
		{"whiteout reaches every lower layer",
			[]members{{file("x", "1")}, {file("y", "2")}, {tartest.Whiteout("", "x")}},
			[]string{"y=2"}},
		{"whiteout does not reach higher layers",
			[]members{{file("x", "1")}, {tartest.Whiteout("", "x")}, {file("x", "3")}},
			[]string{"x=3"}},
		{"opaque directory hides lower children",
			[]members{{file("d/a", "1"), file("d/b", "2"), file("e", "3")}, {tartest.Opaque("d"), file("d/c", "4")}},
			[]string{"d/", "d/c=4", "e=3"}},
		{"opaque marker after its siblings in tar order",
			[]members{{file("d/a", "1")}, {file("d/c", "4"), tartest.Opaque("d")}},
			[]string{"d/", "d/c=4"}},
		{"opaque hides lower grandchildren",
			[]members{{file("d/e/x", "1"), file("f", "2")}, {tartest.Opaque("d"), file("d/e/y", "3")}},
			[]string{"d/", "d/e/", "d/e/y=3", "f=2"}},
		{"nested opaque leaves siblings",
			[]members{{file("d/e/x", "1"), file("d/f", "2")}, {tartest.Opaque("d/e")}},
			[]string{"d/", "d/e/", "d/f=2"}},
		{"opaque root",
			[]members{{file("a", "1")}, {file(".wh..wh..opq", ""), file("b", "2")}},
			[]string{"b=2"}},
		{"AUFS metadata is skipped and plnk hard links resolve",
			[]members{{file(".wh..wh.aufs", ""), file(".wh..wh.orph/x", ""), file(".wh..wh.plnk/12.34", "data"),
				hardlink("a", ".wh..wh.plnk/12.34")}},
			[]string{"a=data"}},
		{"AUFS hard link into a lower layer's plnk",
			[]members{{file(".wh..wh.plnk/1", "data")}, {hardlink("a", ".wh..wh.plnk/1"), hardlink("b", "a")}},
			[]string{"a=data nlink=2", "b=data nlink=2"}},
		{"overlayfs char 0/0 whiteouts",
			[]members{{file("x", "1"), file("d/y", "2"), file("k", "3")}, {char("x", 0, 0), char("d", 0, 0), char("z", 0, 0)}},
			[]string{"k=3"}},
		{"other char devices are shown",
			[]members{{file("null", "1")}, {char("null", 1, 3)}},
			[]string{"null=c1:3"}},
		{"trusted.overlay.opaque directory",
			[]members{{file("d/a", "1")}, {opaqueXattr, file("d/b", "2")}},
			[]string{"d/", "d/b=2"}},
		{"eStargz metadata is hidden",
			[]members{{file("stargz.index.json", "{}"), file(".prefetch.landmark", "x"), file(".no.prefetch.landmark", "y"), file("a", "1"), file("d/stargz.index.json", "2")}},
			[]string{"a=1", "d/", "d/stargz.index.json=2"}},
		{"landmarks of a layer without eStargz index are shown",
			[]members{{file(".prefetch.landmark", "x")}},
			[]string{".prefetch.landmark=x"}},
		{"eStargz metadata of an upper layer does not hide a lower file",
			[]members{{file(".prefetch.landmark", "x")}, {file("stargz.index.json", "{}"), file(".prefetch.landmark", "y")}},
			[]string{".prefetch.landmark=x"}},
		{"directory shadows a lower symlink",
			[]members{{symlink("lib", "usr/lib"), file("usr/lib/x", "1")}, {file("lib/foo", "2")}},
			[]string{"lib/", "lib/foo=2", "usr/", "usr/lib/", "usr/lib/x=1"}},
		{"file shadows a lower directory",
			[]members{{file("d/x", "1")}, {file("d", "2")}},
			[]string{"d=2"}},
		{"directory over file over directory",
			[]members{{file("d/x", "1")}, {file("d", "2")}, {file("d/y", "3")}},
			[]string{"d/", "d/y=3"}},
		{"directories merge across layers",
			[]members{{file("d/a", "1")}, {file("d/b", "2")}, {dir("d"), file("d/c", "3")}},
			[]string{"d/", "d/a=1", "d/b=2", "d/c=3"}},
		{"markers are never listed",
			[]members{{file("a", "1")}, {tartest.Whiteout("", "q"), tartest.Opaque("e"), file(".wh..wh.plnk/1", "")}},
			[]string{"a=1", "e/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustNew(t, tt.layers...)
			if got := render(t, v); !slices.Equal(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			checkOracle(t, layersOf(tt.layers...))
		})
	}
}

func TestWhiteoutNamesNotFound(t *testing.T) {
	t.Parallel()
	v := mustNew(t, members{file("x", "1"), file(".wh..wh.plnk/1", "")},
		members{tartest.Whiteout("", "x"), tartest.Opaque("d"), file(".wh.real", "weird")})
	for _, name := range []string{".wh.x", ".wh..wh..opq", ".wh..wh.plnk", ".wh.real", "x"} {
		if _, err := v.Lookup(Root, name); !errors.Is(err, ErrNotExist) {
			t.Errorf("lookup %q: %v, want ErrNotExist", name, err)
		}
	}
	d, _ := lookupPath(v, "d")
	if _, err := v.Lookup(d.Node, ".wh..wh..opq"); !errors.Is(err, ErrNotExist) {
		t.Errorf("lookup d/.wh..wh..opq: %v", err)
	}
}

func TestXattrsHideOverlayMarkers(t *testing.T) {
	t.Parallel()
	d := dir("d")
	d.Xattrs = map[string]string{"trusted.overlay.opaque": "y", "user.keep": "1", "trusted.overlay.origin": "o"}
	f := file("f", "x")
	f.Xattrs = map[string]string{"security.capability": "cap", "user.a": "b"}
	root := dir(".")
	root.Xattrs = map[string]string{"user.root": "r"}
	v := mustNew(t, members{root, d, f})
	for _, tt := range []struct {
		path string
		want string
	}{{"d", "user.keep=1"}, {"f", "security.capability=cap,user.a=b"}, {"", "user.root=r"}} {
		n := Root
		if tt.path != "" {
			a, err := lookupPath(v, tt.path)
			if err != nil {
				t.Fatal(err)
			}
			n = a.Node
		}
		xs, err := v.Xattrs(n)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, x := range xs {
			got = append(got, x.Name+"="+string(x.Value))
		}
		if strings.Join(got, ",") != tt.want {
			t.Errorf("xattrs %q: %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestDirectoryAttributes(t *testing.T) {
	t.Parallel()
	mt := time.Unix(1600000000, 5)
	withTime := func(m tartest.Member) tartest.Member { m.Mtime = mt; return m }
	tests := []struct {
		name    string
		layers  []members
		path    string
		mode    uint32
		uid     uint32
		layer   int
		mtime   int64
		implied bool
		nlink   uint32 // as overlayfs counts: 2 and the subdirectories for a directory of one layer, else 1
	}{
		{"topmost non-implied entry", []members{{withTime(dirMode("d", 0o700, 7))}, {file("d/x", "")}}, "d", 0o700, 7, 0, mt.Unix(), false, 1},
		{"upper entry wins", []members{{dirMode("d", 0o700, 7)}, {dirMode("d", 0o750, 8)}}, "d", 0o750, 8, 1, 1704067200, false, 1},
		{"implied everywhere", []members{{file("d/x", "")}, {file("d/y", "")}}, "d", 0o755, 0, -1, 0, true, 1},
		{"stack ends at a whiteout", []members{{dirMode("d", 0o700, 7)}, {tartest.Whiteout("", "d"), file("d/x", "")}}, "d", 0o755, 0, -1, 0, true, 2},
		{"stack ends at an opaque marker", []members{{dirMode("d", 0o700, 7)}, {tartest.Opaque("d")}}, "d", 0o755, 0, -1, 0, true, 2},
		{"opaque directory's own entry counts", []members{{dirMode("d", 0o700, 7)}, {dirMode("d", 0o711, 9), tartest.Opaque("d")}}, "d", 0o711, 9, 1, 1704067200, false, 2},
		{"stack ends at a non-directory", []members{{dirMode("d", 0o700, 7)}, {file("d", "")}, {file("d/x", "")}}, "d", 0o755, 0, -1, 0, true, 2},
		{"root from the topmost root member", []members{{dirMode(".", 0o700, 3)}, {file("a", "")}}, "", 0o700, 3, 0, 1704067200, false, 1},
		{"root implied", []members{{file("a", ""), dir("b"), dir("b/c")}}, "", 0o755, 0, -1, 0, true, 3},
		{"root of no layers", nil, "", 0o755, 0, -1, 0, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustNew(t, tt.layers...)
			a, err := v.Attr(Root)
			if tt.path != "" {
				a, err = lookupPath(v, tt.path)
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Type != index.TypeDir || a.Mode != tt.mode || a.UID != tt.uid || a.Layer != tt.layer || a.MtimeSec != tt.mtime || a.Nlink != tt.nlink {
				t.Errorf("got %+v, want mode %o uid %d layer %d mtime %d nlink %d", a, tt.mode, tt.uid, tt.layer, tt.mtime, tt.nlink)
			}
			if tt.layers != nil {
				checkOracle(t, layersOf(tt.layers...))
			}
		})
	}
}

func TestHardlinks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		layers []members
		want   []string
		same   []string // paths that must share one node
	}{
		{"within a layer", []members{{file("a", "data"), hardlink("b", "a")}},
			[]string{"a=data nlink=2", "b=data nlink=2"}, []string{"a", "b"}},
		{"to a lower layer", []members{{file("a", "data")}, {hardlink("b", "a")}},
			[]string{"a=data nlink=2", "b=data nlink=2"}, []string{"a", "b"}},
		{"target whited out later", []members{{file("a", "data")}, {hardlink("b", "a")}, {tartest.Whiteout("", "a")}},
			[]string{"b=data"}, nil},
		{"one of three names deleted", []members{
			{file("links/hard-a", "x"), hardlink("links/hard-b", "links/hard-a"), hardlink("elsewhere/hard-c", "links/hard-a")},
			{tartest.Whiteout("links", "hard-b")}},
			[]string{"elsewhere/", "elsewhere/hard-c=x nlink=2", "links/", "links/hard-a=x nlink=2"},
			[]string{"links/hard-a", "elsewhere/hard-c"}},
		{"target replaced later keeps the old content", []members{{file("a", "old")}, {hardlink("b", "a")}, {file("a", "new")}},
			[]string{"a=new", "b=old"}, nil},
		{"same-layer target wins over the lower one", []members{{file("a", "1")}, {file("a", "2"), hardlink("b", "a")}},
			[]string{"a=2 nlink=2", "b=2 nlink=2"}, []string{"a", "b"}},
		{"lower target whited out in the link's layer", []members{{file("a", "1")}, {tartest.Whiteout("", "a"), hardlink("b", "a")}},
			[]string{"b=1"}, nil},
		{"chain across layers", []members{{file("a", "x")}, {hardlink("b", "a")}, {hardlink("c", "b")}},
			[]string{"a=x nlink=3", "b=x nlink=3", "c=x nlink=3"}, []string{"a", "b", "c"}},
		{"chain within a layer", []members{{file("a", "x"), hardlink("c", "b"), hardlink("b", "a")}},
			[]string{"a=x nlink=3", "b=x nlink=3", "c=x nlink=3"}, []string{"a", "b", "c"}},
		{"to a symlink", []members{{symlink("s", "t")}, {hardlink("h", "s")}},
			[]string{"h->t nlink=2", "s->t nlink=2"}, []string{"h", "s"}},
		{"to a directory is hidden", []members{{dir("d")}, {hardlink("x", "d")}},
			[]string{"d/"}, nil},
		{"missing target hides the lower name", []members{{file("x", "1")}, {hardlink("x", "nope")}},
			nil, nil},
		{"cycle is hidden", []members{{hardlink("a", "b"), hardlink("b", "a"), file("c", "1")}},
			[]string{"c=1"}, nil},
		{"through a symlinked directory is not followed", []members{{file("usr/lib/x", "1"), symlink("lib", "usr/lib")}, {hardlink("y", "lib/x")}},
			[]string{"lib->usr/lib", "usr/", "usr/lib/", "usr/lib/x=1"}, nil},
		{"link whose own name is hidden does not count", []members{{file("a", "1"), hardlink("b", "a")}, {file("b", "2")}},
			[]string{"a=1", "b=2"}, nil},
		{"to an overlay whiteout", []members{{char("w", 0, 0), hardlink("h", "w")}},
			nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			v, err := New(layersOf(tt.layers...), Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			if got := render(t, v); !slices.Equal(got, tt.want) {
				t.Errorf("got  %q\nwant %q\nlog: %s", got, tt.want, logs.String())
			}
			var node Node
			for i, p := range tt.same {
				a, err := lookupPath(v, p)
				if err != nil {
					t.Fatalf("lookup %q: %v", p, err)
				}
				if i > 0 && a.Node != node {
					t.Errorf("%q: node %#x, %q has %#x", p, a.Node, tt.same[0], node)
				}
				node = a.Node
			}
			checkOracle(t, layersOf(tt.layers...))
		})
	}
}

func TestUnresolvedHardlinkWarns(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	_, err := New(layersOf(members{dir("d")}, members{hardlink("x", "d"), hardlink("y", "missing")}),
		Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if s := logs.String(); strings.Count(s, "level=WARN") != 2 || !strings.Contains(s, "path=x") || !strings.Contains(s, "target=missing") {
		t.Errorf("log: %s", s)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	v := mustNew(t, members{file("f", "x"), symlink("s", "f"), file("d/y", "1")}, members{tartest.Whiteout("", "d")})
	lower := Node(1<<32 | 1) // layer 0's entry 1 is "d" (root, d, f, s in BFS order)
	if p, _ := v.Path(lower); p != "d" {
		t.Fatalf("test assumes entry 1 is d, got %q", p)
	}
	f, _ := v.Lookup(Root, "f")
	s, _ := v.Lookup(Root, "s")
	for _, tt := range []struct {
		name string
		err  error
		want error
	}{
		{"attr 0", errOf(v.Attr(0)), ErrInvalid},
		{"attr 2", errOf(v.Attr(2)), ErrInvalid},
		{"attr upper", errOf(v.Attr(1<<63 | 1<<32)), ErrInvalid},
		{"attr layer out of range", errOf(v.Attr(3 << 32)), ErrInvalid},
		{"attr id out of range", errOf(v.Attr(1<<32 | 99)), ErrInvalid},
		{"lookup in a file", errOf(v.Lookup(f.Node, "x")), ErrNotDir},
		{"readdir of a file", errOf(v.ReadDir(f.Node)), ErrNotDir},
		{"readdir of a hidden directory", errOf(v.ReadDir(lower)), ErrNotExist},
		{"lookup in a hidden directory", errOf(v.Lookup(lower, "y")), ErrNotExist},
		{"lookup missing", errOf(v.Lookup(Root, "nope")), ErrNotExist},
		{"lookup empty", errOf(v.Lookup(Root, "")), ErrInvalid},
		{"lookup dot", errOf(v.Lookup(Root, ".")), ErrInvalid},
		{"lookup dotdot", errOf(v.Lookup(Root, "..")), ErrInvalid},
		{"lookup slash", errOf(v.Lookup(Root, "d/y")), ErrInvalid},
		{"open root", errOf(v.Open(Root)), ErrIsDir},
		{"open symlink", errOf(v.Open(s.Node)), ErrInvalid},
		{"readlink file", errOf(v.Readlink(f.Node)), ErrInvalid},
		{"readlink root", errOf(v.Readlink(Root)), ErrInvalid},
		{"xattrs bad node", errOf(v.Xattrs(5)), ErrInvalid},
		{"open bad node", errOf(v.Open(5)), ErrInvalid},
	} {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, tt.err, tt.want)
		}
	}
	if _, ok := v.Path(5); ok {
		t.Error("path of a bad node")
	}
	if p, ok := v.Path(Root); !ok || p != "" {
		t.Errorf("path of root: %q %v", p, ok)
	}
	d, err := v.ReadDir(Root)
	if err != nil {
		t.Fatal(err)
	}
	if e := d.Entry(-1); e != (DirEntry{}) {
		t.Errorf("entry -1: %+v", e)
	}
	if e := d.Entry(d.Len()); e != (DirEntry{}) {
		t.Errorf("entry past the end: %+v", e)
	}
	if _, err := New([]Layer{nil}, Options{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("New with a nil layer: %v", err)
	}
	if _, err := New(make([]Layer, MaxLayers+1), Options{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("New with too many layers: %v", err)
	}
}

func errOf[T any](_ T, err error) error { return err }

// rangeLayer is a fakeLayer whose files are plain ranges of a real file.
type rangeLayer struct {
	*fakeLayer
	f *os.File
}

func (l rangeLayer) FileRange(id index.ID) (*os.File, int64, bool) {
	return l.f, 1000 + int64(id), true
}

func TestOpen(t *testing.T) {
	t.Parallel()
	tmp, err := os.CreateTemp(t.TempDir(), "range")
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	v, err := New([]Layer{rangeLayer{newFakeLayer(file("a", "0123456789"), file("e", "")), tmp}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := v.Lookup(Root, "a")
	if a.Size != 10 || a.Blocks != 1 {
		t.Errorf("attr: %+v", a)
	}
	f, err := v.Open(a.Node)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if n, err := f.ReadAt(buf, 8); n != 2 || err != io.EOF || string(buf[:n]) != "89" {
		t.Errorf("ReadAt at 8: %d %v %q", n, err, buf[:n])
	}
	if rf, off, ok := f.FileRange(); rf != tmp || off != 1001 || !ok {
		t.Errorf("FileRange: %v %d %v", rf, off, ok)
	}
	e, _ := v.Lookup(Root, "e")
	if e.Size != 0 || e.Blocks != 0 {
		t.Errorf("empty file attr: %+v", e)
	}
}

// TestStatelessNodes checks that nodes stay valid without any lookup: a fresh view (as after the kernel
// kept a node across a cache eviction) serves a deep directory node from its ID alone, and the directory
// stack cache stays bounded however many directories are walked.
func TestStatelessNodes(t *testing.T) {
	t.Parallel()
	var l1, l2 members
	for i := range 3000 {
		l1 = append(l1, file(fmt.Sprintf("top/d%04d/sub/f", i), "1"))
		l2 = append(l2, file(fmt.Sprintf("top/d%04d/sub/g", i), "2"))
	}
	layers := layersOf(l1, l2)
	v, err := New(layers, Options{})
	if err != nil {
		t.Fatal(err)
	}
	top, _ := v.Lookup(Root, "top")
	d, err := v.ReadDir(top.Node)
	if err != nil {
		t.Fatal(err)
	}
	var subs []Node
	for i := 0; i < d.Len(); i++ {
		a, err := v.Lookup(d.Entry(i).Node, "sub")
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, a.Node)
	}
	if n := v.cache.len(); n > 4096 {
		t.Errorf("cache holds %d stacks", n)
	}
	fresh, err := New(layers, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1234, 2999} {
		sd, err := fresh.ReadDir(subs[i])
		if err != nil {
			t.Fatal(err)
		}
		if sd.Len() != 2 || sd.Entry(0).Name != "f" || sd.Entry(1).Name != "g" {
			t.Errorf("sub %d: %d entries", i, sd.Len())
		}
		if p, _ := fresh.Path(subs[i]); p != fmt.Sprintf("top/d%04d/sub", i) {
			t.Errorf("path %q", p)
		}
	}
}

func TestDirEntriesAreCompact(t *testing.T) {
	t.Parallel()
	if s := unsafe.Sizeof(dirItem{}); s != 16 {
		t.Errorf("dirItem is %d bytes", s)
	}
}

func TestDeepPaths(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("d/", 5000) + "f"
	v := mustNew(t, members{file(deep, "x")}, members{hardlink("h", deep)})
	h, err := v.Lookup(Root, "h")
	if err != nil || h.Nlink != 2 {
		t.Fatalf("h: %+v %v", h, err)
	}
	if p, _ := v.Path(h.Node); p != deep {
		t.Errorf("path of h: %d bytes", len(p))
	}
	// A directory node 4,000 levels down, asked of a fresh view, is found by walking up its parents.
	a, err := lookupPath(v, strings.Repeat("d/", 3999)+"d")
	if err != nil {
		t.Fatal(err)
	}
	fresh := mustNew(t, members{file(deep, "x")}, members{hardlink("h", deep)})
	d, err := fresh.ReadDir(a.Node)
	if err != nil || d.Len() != 1 || d.Entry(0).Name != "d" {
		t.Fatalf("readdir: %v", err)
	}
}

// TestConcurrentWalks walks one view from several goroutines with a tiny stack cache, so that stacks
// are evicted and rebuilt while others read them (run with -race).
func TestConcurrentWalks(t *testing.T) {
	t.Parallel()
	layers := layersOf(fakelayer.GenStack(rand.New(rand.NewPCG(1, 2)))...)
	var l1, l2 members
	for i := range 200 {
		l1 = append(l1, file(fmt.Sprintf("t/%d/a/b", i%17), "1"), hardlink(fmt.Sprintf("t/%d/h", i%13), "t/1/a/b"))
		l2 = append(l2, file(fmt.Sprintf("t/%d/a/c", i%19), "2"), tartest.Whiteout(fmt.Sprintf("t/%d/a", i%7), "b"))
	}
	layers = append(layers, layersOf(l1, l2)...)
	v, err := New(layers, Options{})
	if err != nil {
		t.Fatal(err)
	}
	v.cache.init(4)
	want := viewListing(t, v)
	done := make(chan listing)
	for range 4 {
		go func() {
			var got listing
			defer func() { done <- got }()
			got = viewListing(t, v)
		}()
	}
	for range 4 {
		if d := diffListings(want, <-done, 10); len(d) > 0 {
			t.Errorf("concurrent walk differs:\n%s", strings.Join(d, "\n"))
		}
	}
}
