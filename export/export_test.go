package export

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
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

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/fakelayer"
	"github.com/imgfs/imgfs/internal/tartest"
	"github.com/imgfs/imgfs/overlay"
)

// expRec is one name of an exported tree as the export tests compare it, whether it comes from the
// view, from the tar stream or from a tree extracted from it.
type expRec struct {
	name  string // member name: no "./", directories end in "/"
	desc  string // type, mode, owner, size, mtime, link target, device numbers, xattrs, content hash
	first string // for a later name of a file with several names: the name met first; else ""
}

func (r expRec) String() string {
	if r.first != "" {
		return fmt.Sprintf("%q %s (link to %q)", r.name, r.desc, r.first)
	}
	return fmt.Sprintf("%q %s", r.name, r.desc)
}

// expDesc formats what the tests compare of a name. Sizes count for regular files only; link is the
// target of a symlink.
func expDesc(typ index.Type, mode, uid, gid uint32, size int64, sec int64, nsec uint32, link string,
	major, minor uint32, xattrs map[string]string, sum []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %05o %d:%d mtime=%d.%09d", typ, mode, uid, gid, sec, nsec)
	switch typ {
	case index.TypeRegular:
		fmt.Fprintf(&b, " size=%d sha=%x", size, sum[:8])
	case index.TypeSymlink:
		fmt.Fprintf(&b, " ->%q", link)
	case index.TypeChar, index.TypeBlock:
		fmt.Fprintf(&b, " dev=%d:%d", major, minor)
	}
	keys := make([]string, 0, len(xattrs))
	for k := range xattrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%q", k, xattrs[k])
	}
	return b.String()
}

// viewRecs walks the view depth first in bytewise order, as an export must list it. Every non-directory
// node met again gets first set to the name it was met by first.
func viewRecs(t testing.TB, v *overlay.View) []expRec {
	t.Helper()
	var out []expRec
	seen := map[overlay.Node]string{}
	var walk func(n overlay.Node, prefix string)
	walk = func(n overlay.Node, prefix string) {
		d, err := v.ReadDir(n)
		if err != nil {
			t.Fatalf("readdir %q: %v", prefix, err)
		}
		for i := range d.Len() {
			de := d.Entry(i)
			a, err := v.Attr(de.Node)
			if err != nil {
				t.Fatalf("attr %q: %v", prefix+de.Name, err)
			}
			name := prefix + de.Name
			if a.Type == index.TypeDir {
				name += "/"
			}
			xs, err := v.Xattrs(de.Node)
			if err != nil {
				t.Fatalf("xattrs %q: %v", name, err)
			}
			xm := map[string]string{}
			for _, x := range xs {
				if len(x.Value) > 0 { // a tar cannot carry an empty value: export skips it
					xm[x.Name] = string(x.Value)
				}
			}
			var link string
			var sum []byte
			switch a.Type {
			case index.TypeSymlink:
				link, _ = v.Readlink(de.Node)
			case index.TypeRegular:
				f, err := v.Open(de.Node)
				if err != nil {
					t.Fatalf("open %q: %v", name, err)
				}
				h := sha256.New()
				if _, err := io.Copy(h, io.NewSectionReader(f, 0, f.Size())); err != nil {
					t.Fatalf("read %q: %v", name, err)
				}
				sum = h.Sum(nil)
			}
			r := expRec{name: name, desc: expDesc(a.Type, a.Mode, a.UID, a.GID, a.Size, a.MtimeSec,
				a.MtimeNsec, link, a.Devmajor, a.Devminor, xm, sum)}
			if a.Type != index.TypeDir {
				if f, ok := seen[de.Node]; ok {
					r.first = f
				} else {
					seen[de.Node] = name
				}
			}
			out = append(out, r)
			if a.Type == index.TypeDir {
				walk(de.Node, name)
			}
		}
	}
	walk(overlay.Root, "")
	return out
}

// tarRecs reads an export back with archive/tar. A hard link member gets the description of the member
// it links to. It also checks that no member has a user or group name.
func tarRecs(t testing.TB, data []byte) []expRec {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	var out []expRec
	byName := map[string]int{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the export: %v", err)
		}
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%q: user or group name %q %q", h.Name, h.Uname, h.Gname)
		}
		xm := map[string]string{}
		for k, val := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				xm[x] = val
			}
		}
		var typ index.Type
		var sum []byte
		switch h.Typeflag {
		case tar.TypeReg:
			typ = index.TypeRegular
			hs := sha256.New()
			if _, err := io.Copy(hs, tr); err != nil {
				t.Fatalf("reading %q: %v", h.Name, err)
			}
			sum = hs.Sum(nil)
		case tar.TypeDir:
			typ = index.TypeDir
		case tar.TypeSymlink:
			typ = index.TypeSymlink
		case tar.TypeChar:
			typ = index.TypeChar
		case tar.TypeBlock:
			typ = index.TypeBlock
		case tar.TypeFifo:
			typ = index.TypeFIFO
		case tar.TypeLink:
			i, ok := byName[h.Linkname]
			if !ok {
				t.Fatalf("%q links to %q, which is not an earlier member", h.Name, h.Linkname)
			}
			out = append(out, expRec{name: h.Name, desc: out[i].desc, first: h.Linkname})
			continue
		default:
			t.Fatalf("%q: unexpected type %q", h.Name, h.Typeflag)
		}
		link := ""
		if typ == index.TypeSymlink {
			link = h.Linkname
		}
		byName[h.Name] = len(out)
		out = append(out, expRec{name: h.Name, desc: expDesc(typ, uint32(h.Mode), uint32(h.Uid), uint32(h.Gid),
			h.Size, h.ModTime.Unix(), uint32(h.ModTime.Nanosecond()), link, uint32(h.Devmajor),
			uint32(h.Devminor), xm, sum)})
	}
	return out
}

// diffRecs reports the differences between two listings, at most a few.
func diffRecs(t testing.TB, what string, want, got []expRec) {
	t.Helper()
	n := 0
	for i := 0; i < max(len(want), len(got)) && n < 10; i++ {
		var w, g expRec
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w != g {
			t.Errorf("%s: entry %d:\n want %v\n  got %v", what, i, w, g)
			n++
		}
	}
}

// exportTree is a layer stack with every kind of member and every case an export must get right.
func exportTree() [][]tartest.Member {
	longDir := "long/" + strings.Repeat("d", 120)             // 125 bytes: its member "long/ddd…/" needs a path record
	longFile := longDir + "/" + strings.Repeat("f", 90)       // fits the ustar prefix and name fields
	deep := "deep/" + strings.Repeat("segment/", 35) + "file" // fits nowhere: a path record
	latin := "enc/" + strings.Repeat("\xe9", 150) + "/f"      // not UTF-8, needs a path record
	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<16)
	big = append(big, "tail"...)
	ns := func(m tartest.Member, sec int64, nsec int64) tartest.Member {
		m.Mtime = time.Unix(sec, nsec)
		m.Format = tar.FormatPAX // else archive/tar rounds it to seconds
		return m
	}
	mode := func(m tartest.Member, mode int64, uid, gid int) tartest.Member {
		m.Mode, m.UID, m.GID = mode, uid, gid
		return m
	}
	xattrs := func(m tartest.Member, kv ...string) tartest.Member {
		m.Xattrs = map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m.Xattrs[kv[i]] = kv[i+1]
		}
		return m
	}
	l0 := []tartest.Member{
		mode(tartest.Dir("."), 0o700, 0, 0),
		tartest.Dir("etc"),
		tartest.File("etc/passwd", "root:x:0:0"),
		mode(tartest.File("etc/shadow", "s"), 0o640, 0, 42),
		mode(tartest.File("bin/su", "su"), 0o4755, 0, 0),
		mode(tartest.File("bin/sg", "sg"), 0o2711, 0, 0),
		mode(tartest.Dir("tmp"), 0o1777, 0, 0),
		ns(mode(tartest.Dir("srv"), 0o2775, 1000, 1000), 1600000000, 987654321),
		mode(tartest.File("ids/big", "ids"), 0o600, 3000000, 4000000),
		tartest.Symlink("lib", "usr/lib"),
		tartest.Symlink("abs", "/etc/passwd"),
		tartest.Symlink("rel", "../../x"),
		tartest.Symlink("ltarget", strings.Repeat("t/", 100)),
		{Name: "dev/null", Type: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666},
		{Name: "dev/sda", Type: tar.TypeBlock, Devmajor: 8, Devminor: 0, Mode: 0o660, GID: 6},
		{Name: "dev/maxdev", Type: tar.TypeChar, Devmajor: 4095, Devminor: 1048575},
		{Name: "run/fifo", Type: tar.TypeFifo, Mode: 0o600},
		ns(tartest.File("data/ns", "ns"), 1700000000, 123456789),
		ns(tartest.File("data/ns1", "ns1"), 1700000000, 1),
		tartest.File("data/empty", ""),
		tartest.File("data/b512", strings.Repeat("x", 512)),
		tartest.File("data/b513", strings.Repeat("y", 513)),
		{Name: "data/big", Body: big},
		tartest.File("hl/a", "shared"),
		tartest.Hardlink("hl/b", "hl/a"),
		tartest.Hardlink("hl/c", "hl/a"),
		tartest.File("lo/target", "lower"),
		tartest.File("wo/x", "wx"),
		tartest.Hardlink("wo/y", "wo/x"),
		tartest.Hardlink("wo/z", "wo/x"),
		xattrs(tartest.File("x/bin", "x"), "user.bin", "\x00\xff\n=\x01 end", "trusted.t", "v", "user.empty", ""),
		xattrs(tartest.Dir("x/dir"), "user.d", "1"),
		xattrs(tartest.File("x/ovl", "o"), "trusted.overlay.origin", "z", "user.k", "kept"),
		tartest.File("op/old", "old"),
		tartest.File("gone/f", "f"),
		tartest.File("ovl/a", "a"),
		tartest.File("cw/f", "f"),
		tartest.File(longFile, "prefix split"),
		tartest.Hardlink("hl/long", longFile),
		tartest.File(deep, "deep"),
		tartest.File("enc/\xff\xfe", "latin"),
		tartest.File(latin, "latin long"),
	}
	l1 := []tartest.Member{
		tartest.Hardlink("lo/link", "lo/target"), // a link into the layer below
		tartest.Whiteout("wo", "x"),              // wo/y and wo/z keep two names
		tartest.Opaque("op"),
		tartest.File("op/new", "new"),
		tartest.Whiteout("", "gone"),
		ns(tartest.File("etc/passwd", "replaced"), 1710000000, 1),
		xattrs(tartest.Dir("ovl"), "trusted.overlay.opaque", "y", "user.keep", "k"),
		tartest.File("ovl/b", "b"),
		{Name: "cw/f", Type: tar.TypeChar}, // an overlay-style whiteout
		tartest.Dir("emptydir"),
	}
	return [][]tartest.Member{l0, l1}
}

func exportView(t testing.TB, layers []overlay.Layer) *overlay.View {
	t.Helper()
	v, err := overlay.New(layers, overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestExportMatchesView exports a tree with every member kind and reads it back with archive/tar: the
// same names in the same order, with the same attributes and data, hard links as links to the first
// name of their node, no whiteout or overlay marker.
func TestExportMatchesView(t *testing.T) {
	t.Parallel()
	v := exportView(t, layersOf(exportTree()...))
	var out bytes.Buffer
	st, err := Write(context.Background(), v, &out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := viewRecs(t, v)
	got := tarRecs(t, out.Bytes())
	diffRecs(t, "export", want, got)
	if st.Entries != int64(len(got)) || st.Bytes != int64(out.Len()) {
		t.Errorf("stats %+v, stream has %d members, %d bytes", st, len(got), out.Len())
	}
	if out.Len()%blockSize != 0 || !bytes.Equal(out.Bytes()[out.Len()-1024:], make([]byte, 1024)) {
		t.Errorf("the stream does not end with two zero blocks")
	}
	if bytes.Contains(out.Bytes(), []byte(".wh.")) || bytes.Contains(out.Bytes(), []byte("trusted.overlay")) {
		t.Errorf("the stream holds a whiteout or an overlay marker")
	}

	// Spot checks of what the comparison rests on, so that a wrong view cannot hide a wrong export.
	byName := map[string]expRec{}
	for _, r := range got {
		byName[r.name] = r
	}
	links := map[string]string{
		"wo/z":      "wo/y",    // wo/x was whited out: two names are left, the first is the file
		"lo/target": "lo/link", // the link in the upper layer is met first
		"hl/b":      "hl/a",
		"hl/c":      "hl/a",
	}
	for _, name := range []string{
		"abs", "bin/sg", "bin/su", "cw/", "data/b512", "data/b513", "data/big", "data/ns", "deep/",
		"dev/maxdev", "dev/null", "dev/sda", "emptydir/", "enc/", "etc/", "hl/a", "hl/b", "hl/c",
		"hl/long", "ids/big", "lib", "lo/link", "lo/target", "long/", "ltarget", "op/new", "ovl/b",
		"rel", "run/fifo", "srv/", "tmp/", "wo/y", "wo/z", "x/bin", "x/dir/",
	} {
		r, ok := byName[name]
		if !ok {
			t.Errorf("%q missing", name)
		} else if r.first != links[name] {
			t.Errorf("%q links to %q, want %q", name, r.first, links[name])
		}
	}
	for _, name := range []string{"op/old", "gone/", "gone/f", "ovl/a", "cw/f", "wo/x", "./", "", "/"} {
		if _, ok := byName[name]; ok {
			t.Errorf("%q exported", name)
		}
	}
	for name, frag := range map[string]string{
		"bin/su":   "04755",
		"bin/sg":   "02711",
		"tmp/":     "01777",
		"srv/":     "02775 1000:1000 mtime=1600000000.987654321",
		"ids/big":  "3000000:4000000",
		"data/ns1": "mtime=1700000000.000000001",
		"x/bin":    `trusted.t="v" user.bin="\x00\xff\n=\x01 end"`,
		"x/ovl":    `sha=`,
		"ovl/":     `user.keep="k"`,
		"dev/sda":  "dev=8:0",
	} {
		if !strings.Contains(byName[name].desc, frag) {
			t.Errorf("%q: %s, want %s in it", name, byName[name].desc, frag)
		}
	}
	if strings.Contains(byName["x/ovl"].desc, "trusted.overlay") {
		t.Errorf("x/ovl: overlay xattr exported: %s", byName["x/ovl"].desc)
	}

	// Deterministic: a second export is the same bytes.
	var again bytes.Buffer
	if _, err := Write(context.Background(), v, &again, Options{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), again.Bytes()) {
		t.Errorf("two exports differ")
	}
}

// fileLayer is a fakeLayer whose file data also lies in a real file, at offsets with junk between them,
// and is read through FileRange as from an uncompressed layer.
type fileLayer struct {
	*fakeLayer
	f    *os.File
	offs []int64
}

func newFileLayer(t testing.TB, l *fakeLayer) *fileLayer {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "layer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fl := &fileLayer{fakeLayer: l, f: f, offs: make([]int64, l.Len())}
	var off int64
	for id := range l.Len() {
		junk := []byte("junk!")
		if _, err := f.WriteAt(junk, off); err != nil {
			t.Fatal(err)
		}
		off += int64(len(junk))
		fl.offs[id] = off
		if _, err := f.WriteAt(l.DataSlice()[id], off); err != nil {
			t.Fatal(err)
		}
		off += int64(len(l.DataSlice()[id]))
	}
	return fl
}

func (l *fileLayer) FileRange(id index.ID) (*os.File, int64, bool) {
	if l.EntrySlice()[id].Type != index.TypeRegular {
		return nil, 0, false
	}
	return l.f, l.offs[id], true
}

// ReadAt fails, so that the test shows that data comes from the file ranges.
func (l *fileLayer) ReadAt(id index.ID, p []byte, off int64) (int, error) {
	return 0, errors.New("read through ReadAt")
}

// TestExportFileRanges exports layers whose data are plain file ranges into a buffer, a pipe, a file
// and a file in append mode (which sendfile refuses: the copy falls back to the buffer).
func TestExportFileRanges(t *testing.T) {
	t.Parallel()
	tree := exportTree()
	layers := make([]overlay.Layer, len(tree))
	for i, ms := range tree {
		layers[i] = newFileLayer(t, newFakeLayer(ms...))
	}
	v := exportView(t, layers)
	// The reference listing reads through the in-memory layers.
	want := viewRecs(t, exportView(t, layersOf(tree...)))

	var buf bytes.Buffer
	if _, err := Write(context.Background(), v, &buf, Options{}); err != nil {
		t.Fatal(err)
	}
	diffRecs(t, "buffer", want, tarRecs(t, buf.Bytes()))

	got := exportToPipe(t, v)
	diffRecs(t, "pipe", want, tarRecs(t, got))
	if !bytes.Equal(got, buf.Bytes()) {
		t.Errorf("pipe: the stream differs from the buffer's")
	}

	for _, flag := range []int{0, os.O_APPEND} {
		f, err := os.OpenFile(t.TempDir()+"/out.tar", os.O_CREATE|os.O_WRONLY|flag, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		st, err := Write(context.Background(), v, f, Options{})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, buf.Bytes()) || st.Bytes != int64(len(got)) {
			t.Errorf("file (flags %#x): the stream differs from the buffer's (%d bytes, stats %+v)", flag, len(got), st)
		}
	}
}

// exportToPipe exports v into a pipe and returns what came out of it.
func exportToPipe(t *testing.T, v *overlay.View) []byte {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	st, err := Write(context.Background(), v, w, Options{})
	w.Close()
	b := <-done
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != st.Bytes {
		t.Errorf("read %d bytes from the pipe, Export says %d", len(b), st.Bytes)
	}
	return b
}

// TestExportIndexLayer exports a real layer opened by package index from a tar file.
func TestExportIndexLayer(t *testing.T) {
	t.Parallel()
	tree := exportTree()
	dir := t.TempDir()
	layers := make([]overlay.Layer, len(tree))
	for i, ms := range tree {
		path := fmt.Sprintf("%s/layer%d.tar", dir, i)
		if err := os.WriteFile(path, tartest.Tar(t, ms...), 0o644); err != nil {
			t.Fatal(err)
		}
		layers[i] = openIndexLayer(t, path, dir)
	}
	v := exportView(t, layers)
	var out bytes.Buffer
	if _, err := Write(context.Background(), v, &out, Options{}); err != nil {
		t.Fatal(err)
	}
	diffRecs(t, "export", viewRecs(t, v), tarRecs(t, out.Bytes()))
	// The tar writer of package tartest writes what package index reads: the same as the fake layers.
	diffRecs(t, "index layers vs fake layers", viewRecs(t, exportView(t, layersOf(tree...))), viewRecs(t, v))
}

// openIndexLayer opens the uncompressed layer tar at path with package index.
func openIndexLayer(t testing.TB, path, cache string) *index.Layer {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	l, err := index.Open(context.Background(), index.Blob{R: f, Size: st.Size(), File: f}, index.Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestExportHeaderLimits checks values that do not fit the ustar fields: they go to PAX records (uid,
// gid, size, mtime before 1970 or after 2242) or GNU base-256 (device numbers).
func TestExportHeaderLimits(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		a    overlay.Attr
		typ  byte
		size int64
	}{
		{"negative-mtime", overlay.Attr{Mode: 0o644, MtimeSec: -2, MtimeNsec: 500000000}, tarRegular, 0},
		{"negative-whole-mtime", overlay.Attr{Mode: 0o644, MtimeSec: -86400}, tarRegular, 0},
		{"far-mtime", overlay.Attr{Mode: 0o644, MtimeSec: 1 << 34, MtimeNsec: 7}, tarRegular, 0},
		{"max-ids", overlay.Attr{Mode: 0o755, UID: 1<<32 - 1, GID: 1 << 21}, tarDir, 0},
		{"edge-ids", overlay.Attr{Mode: 0o755, UID: 1<<21 - 1, GID: 1<<21 - 1}, tarDir, 0},
		{"big-size", overlay.Attr{Mode: 0o644}, tarRegular, 1 << 34},
		{"edge-size", overlay.Attr{Mode: 0o644}, tarRegular, 1<<33 - 1},
		{"big-devices", overlay.Attr{Mode: 0o600, Devmajor: 1<<32 - 1, Devminor: 3000000}, tarChar, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			e := &exporter{ctx: context.Background(), w: &out, buf: make([]byte, 0, exportBufSize),
				path: []byte(c.name)}
			if err := e.header(&c.a, c.typ, c.size, "", nil); err != nil {
				t.Fatal(err)
			}
			if err := e.flush(); err != nil {
				t.Fatal(err)
			}
			h, err := tar.NewReader(&out).Next()
			if err != nil {
				t.Fatal(err)
			}
			mt := time.Unix(c.a.MtimeSec, int64(c.a.MtimeNsec))
			if h.Name != c.name || h.Typeflag != c.typ || h.Size != c.size || !h.ModTime.Equal(mt) ||
				uint32(h.Uid) != c.a.UID || uint32(h.Gid) != c.a.GID || h.Mode != int64(c.a.Mode) ||
				uint32(h.Devmajor) != c.a.Devmajor || uint32(h.Devminor) != c.a.Devminor {
				t.Errorf("read back %+v", h)
			}
		})
	}
}

// TestExportNames checks member names around the ustar limits: up to 100 bytes in the name field,
// split into prefix and name when possible, else a PAX path record; the same for link targets.
func TestExportNames(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		strings.Repeat("a", 100),
		strings.Repeat("a", 99) + "/",
		strings.Repeat("a", 101),
		strings.Repeat("p", 155) + "/" + strings.Repeat("n", 100),
		strings.Repeat("p", 155) + "/" + strings.Repeat("n", 99) + "/",
		strings.Repeat("p", 156) + "/" + strings.Repeat("n", 10),
		strings.Repeat("p", 10) + "/" + strings.Repeat("n", 101),
		strings.Repeat("n", 150) + "/",
		"/" + strings.Repeat("n", 120),
		"a/" + strings.Repeat("\xff", 140),
		strings.Repeat("x/", 2000),
	} {
		for _, link := range []string{"", strings.Repeat("l", 100), strings.Repeat("l", 101), "\xff" + strings.Repeat("l", 200)} {
			var out bytes.Buffer
			e := &exporter{ctx: context.Background(), w: &out, buf: make([]byte, 0, exportBufSize),
				path: []byte(name)}
			typ := byte(tarSymlink)
			if link == "" {
				typ = tarDir
			}
			a := overlay.Attr{Mode: 0o777}
			if err := e.header(&a, typ, 0, link, nil); err != nil {
				t.Fatal(err)
			}
			if err := e.flush(); err != nil {
				t.Fatal(err)
			}
			h, err := tar.NewReader(&out).Next()
			if err != nil {
				t.Fatalf("%q: %v", name, err)
			}
			if h.Name != name || h.Linkname != link {
				t.Errorf("%d-byte name, %d-byte link: read back %q -> %q", len(name), len(link), h.Name, h.Linkname)
			}
			_, _, fits := splitUstar([]byte(name))
			if fits == (h.PAXRecords["path"] != "") {
				t.Errorf("%d-byte name: fits=%v, records %v", len(name), fits, h.PAXRecords)
			}
		}
	}
}

// TestExportRandomStacks compares exports with their views on random stacks, whose many hard links,
// whiteouts and type changes test that links point to the first name of their node and nothing else.
func TestExportRandomStacks(t *testing.T) {
	t.Parallel()
	for seed := range 300 {
		layers := layersOf(fakelayer.GenStack(fakelayer.NewRandChooser(rand.New(rand.NewPCG(uint64(seed), 11))))...)
		v, err := overlay.New(layers, overlay.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := Write(context.Background(), v, &out, Options{}); err != nil {
			t.Fatal(err)
		}
		want, got := viewRecs(t, v), tarRecs(t, out.Bytes())
		if !slices.Equal(want, got) {
			diffRecs(t, fmt.Sprintf("seed %d", seed), want, got)
			t.Fatalf("layers:\n%s", dumpLayers(layers))
		}
	}
}

// TestExportPipe exports into a pipe, which only takes sequential writes.
func TestExportPipe(t *testing.T) {
	t.Parallel()
	v := exportView(t, layersOf(exportTree()...))
	diffRecs(t, "export", viewRecs(t, v), tarRecs(t, exportToPipe(t, v)))
}

// errWriter fails after n bytes.
type errWriter struct{ n int }

var errWrite = errors.New("disk full")

func (w *errWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errWrite
	}
	w.n -= len(p)
	return len(p), nil
}

// cancelWriter cancels a context at its first write.
type cancelWriter struct {
	cancel context.CancelFunc
	n      int
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.cancel()
	w.n++
	return len(p), nil
}

func TestExportErrors(t *testing.T) {
	t.Parallel()
	v := exportView(t, layersOf(exportTree()...))
	t.Run("write", func(t *testing.T) {
		st, err := Write(context.Background(), v, &errWriter{n: 1 << 20}, Options{})
		if !errors.Is(err, errWrite) {
			t.Fatalf("err = %v", err)
		}
		if st.Bytes != 1<<20 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := Write(ctx, v, io.Discard, Options{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("canceled-during-data", func(t *testing.T) {
		// data/big is 3 MiB: the export stops between two buffers of it.
		ctx, cancel := context.WithCancel(context.Background())
		w := &cancelWriter{cancel: cancel}
		if _, err := Write(ctx, v, w, Options{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if w.n != 1 {
			t.Errorf("%d writes after the cancel", w.n-1)
		}
	})
	t.Run("short-data", func(t *testing.T) {
		l := newFakeLayer(tartest.File("a", "0123456789"))
		l.DataSlice()[1] = l.DataSlice()[1][:4] // the member says 10 bytes, only 4 can be read
		v := exportView(t, []overlay.Layer{l})
		_, err := Write(context.Background(), v, io.Discard, Options{})
		if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "a: ") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestExportProgress checks that Progress is called at the end with the totals.
func TestExportProgress(t *testing.T) {
	t.Parallel()
	v := exportView(t, layersOf(exportTree()...))
	var calls int
	var last [2]int64
	st, err := Write(context.Background(), v, io.Discard, Options{Progress: func(entries, bytes int64) {
		calls++
		if entries < last[0] || bytes < last[1] {
			t.Errorf("progress went back: %d %d after %v", entries, bytes, last)
		}
		last = [2]int64{entries, bytes}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || last != [2]int64{st.Entries, st.Bytes} {
		t.Errorf("%d calls, last %v, stats %+v", calls, last, st)
	}
}

func TestAppendPAXTime(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		sec  int64
		nsec uint32
		want string
	}{
		{0, 0, "0"},
		{1700000000, 123456789, "1700000000.123456789"},
		{1700000000, 1, "1700000000.000000001"},
		{1700000000, 500000000, "1700000000.5"},
		{-1, 0, "-1"},
		{-2, 500000000, "-1.5"},
		{-1, 1, "-0.999999999"},
	} {
		if got := string(appendPAXTime(nil, c.sec, c.nsec)); got != c.want {
			t.Errorf("%d.%09d: %q, want %q", c.sec, c.nsec, got, c.want)
		}
	}
}

func TestAppendRecordHead(t *testing.T) {
	t.Parallel()
	for klen := range 20 {
		for vlen := range 2000 {
			head := appendRecordHead(nil, klen, vlen)
			var n int
			fmt.Sscanf(string(head), "%d ", &n)
			if n != len(head)+klen+1+vlen+1 {
				t.Fatalf("key %d, value %d: %q", klen, vlen, head)
			}
		}
	}
}

// TestExportSkips checks what a tar cannot hold: a node of a type tar has no member for (as a socket
// of a writable upper directory would be) and an xattr name with "=" are left out with a warning.
func TestExportSkips(t *testing.T) {
	t.Parallel()
	l := newFakeLayer(
		tartest.File("a", "a"),
		tartest.File("sock", ""),
		tartest.Member{Name: "x", Body: []byte("x"), Xattrs: map[string]string{"user.a=b": "1", "user.ok": "2"}},
	)
	id, _ := l.Lookup(0, "sock")
	l.EntrySlice()[id].Type = index.Type(99)
	v := exportView(t, []overlay.Layer{l})
	var logs bytes.Buffer
	var out bytes.Buffer
	st, err := Write(context.Background(), v, &out, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	got := tarRecs(t, out.Bytes())
	if st.Entries != 2 || len(got) != 2 || got[0].name != "a" || got[1].name != "x" {
		t.Fatalf("stats %+v, members %v", st, got)
	}
	if !strings.HasSuffix(got[1].desc, ` user.ok="2"`) || strings.Contains(got[1].desc, "user.a") {
		t.Errorf("x: %s", got[1].desc)
	}
	for _, want := range []string{"path=sock", `xattr="user.a=b"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no warning with %s in:\n%s", want, logs.String())
		}
	}
}

// TestExportWindowAcrossLayers checks that the read-ahead window of one layer's file never serves
// another layer's data, though their members sit at the same offsets: a1 and a2 fill a window over
// layer A's file that covers the offset of b2 in layer B's file.
func TestExportWindowAcrossLayers(t *testing.T) {
	t.Parallel()
	body := func(c byte) string { return strings.Repeat(string(c), 100) }
	tree := [][]tartest.Member{
		{tartest.File("a1", body('a')), tartest.File("a2", body('A'))},
		{tartest.File("b1", body('b')), tartest.File("b2", body('B')), tartest.File("b3", body('c'))},
	}
	layers := make([]overlay.Layer, len(tree))
	for i, ms := range tree {
		layers[i] = newFileLayer(t, newFakeLayer(ms...))
	}
	if fa, fb := layers[0].(*fileLayer), layers[1].(*fileLayer); fa.offs[2] != fb.offs[2] {
		t.Fatalf("the fixture needs a2 and b2 at one offset: %d, %d", fa.offs[2], fb.offs[2])
	}
	var buf bytes.Buffer
	if _, err := Write(context.Background(), exportView(t, layers), &buf, Options{}); err != nil {
		t.Fatal(err)
	}
	diffRecs(t, "window", viewRecs(t, exportView(t, layersOf(tree...))), tarRecs(t, buf.Bytes()))
}
