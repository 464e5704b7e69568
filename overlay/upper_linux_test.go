package overlay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/tartest"
	"golang.org/x/sys/unix"
)

// upOpen opens dir as the upper directory of a view over layers.
func upOpen(t testing.TB, dir string, layers []Layer) (*View, *Upper) {
	t.Helper()
	return upOpenMarkers(t, dir, layers, upperMarkers{})
}

// upOpenMarkers is upOpen with the markers of a new upper directory forced to the form m.
func upOpenMarkers(t testing.TB, dir string, layers []Layer, m upperMarkers) (*View, *Upper) {
	t.Helper()
	u, err := OpenUpper(UpperOptions{Dir: dir, Base: "sha256:base", markers: m})
	if err != nil {
		t.Fatal(err)
	}
	v, err := New(layers, Options{Upper: u})
	if err != nil {
		u.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return v, u
}

// upResolve returns the node of path p ("" for the root).
func upResolve(v *View, p string) (Node, error) {
	if p == "" {
		return Root, nil
	}
	a, err := lookupPath(v, p)
	return a.Node, err
}

// upSplit returns the parent node and base name of path p.
func upSplit(v *View, p string) (Node, string, error) {
	dir, base := "", p
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		dir, base = p[:i], p[i+1:]
	}
	if dir == "" {
		return Root, base, nil
	}
	a, err := lookupPath(v, dir)
	if err == nil && a.Type != index.TypeDir {
		err = ErrNotDir
	}
	return a.Node, base, err
}

var upCaller = Caller{UID: 1000, GID: 1000}

// upDo runs one step of a little language on view v:
//
//	rm P | rmdir P | mkdir P | touch P=DATA | mv P Q | mvnr P Q | xchg P Q | ln P Q | sym P=TARGET |
//	fifo P | chmod P OCT | chown P UID:GID | trunc P N | write P@OFF=DATA | setx P K=V | rmx P K |
//	mtime P SEC
func upDo(v *View, step string) error {
	op, arg, _ := strings.Cut(step, " ")
	a1, a2, _ := strings.Cut(arg, " ")
	switch op {
	case "rm", "rmdir", "mkdir", "touch", "sym", "fifo":
		p, val, _ := strings.Cut(a1, "=")
		if op == "sym" {
			p, val, _ = strings.Cut(a1, "->")
		}
		parent, name, err := upSplit(v, p)
		if err != nil {
			return err
		}
		switch op {
		case "rm":
			return v.Unlink(parent, name)
		case "rmdir":
			return v.Rmdir(parent, name)
		case "mkdir":
			_, err = v.Mkdir(parent, name, 0o755, upCaller)
		case "sym":
			_, err = v.Symlink(parent, name, val, upCaller)
		case "fifo":
			_, err = v.Mknod(parent, name, index.TypeFIFO, 0o640, 0, 0, upCaller)
		case "touch":
			var f WFile
			if _, f, err = v.Create(parent, name, 0o644, upCaller); err == nil {
				if _, err = f.WriteAt([]byte(val), 0); err == nil {
					err = f.Close()
				}
			}
		}
		return err
	case "mv", "mvnr", "xchg":
		op1, on, err := upSplit(v, a1)
		if err != nil {
			return err
		}
		np, nn, err := upSplit(v, a2)
		if err != nil {
			return err
		}
		flags := map[string]RenameFlags{"mv": 0, "mvnr": RenameNoReplace, "xchg": RenameExchange}[op]
		return v.Rename(op1, on, np, nn, flags)
	case "ln":
		t, err := upResolve(v, a1)
		if err != nil {
			return err
		}
		np, nn, err := upSplit(v, a2)
		if err != nil {
			return err
		}
		_, err = v.Link(t, np, nn)
		return err
	}
	p, rest := a1, a2
	if op == "write" {
		p, rest, _ = strings.Cut(arg, "@")
	}
	n, err := upResolve(v, p)
	if err != nil {
		return err
	}
	switch op {
	case "chmod":
		m, _ := strconv.ParseUint(rest, 8, 32)
		mode := uint32(m)
		_, err = v.SetAttr(n, SetAttrIn{Mode: &mode})
	case "chown":
		us, gs, _ := strings.Cut(rest, ":")
		u64, _ := strconv.ParseUint(us, 10, 32)
		g64, _ := strconv.ParseUint(gs, 10, 32)
		uid, gid := uint32(u64), uint32(g64)
		_, err = v.SetAttr(n, SetAttrIn{UID: &uid, GID: &gid})
	case "trunc":
		size, _ := strconv.ParseInt(rest, 10, 64)
		_, err = v.SetAttr(n, SetAttrIn{Size: &size})
	case "mtime":
		sec, _ := strconv.ParseInt(rest, 10, 64)
		tm := time.Unix(sec, 0)
		_, err = v.SetAttr(n, SetAttrIn{Mtime: &tm})
	case "write":
		offs, data, _ := strings.Cut(rest, "=")
		off, _ := strconv.ParseInt(offs, 10, 64)
		var f WFile
		if f, err = v.OpenFile(n, true, false); err == nil {
			if _, err = f.WriteAt([]byte(data), off); err == nil {
				err = f.Close()
			}
		}
	case "setx":
		k, val, _ := strings.Cut(rest, "=")
		err = v.SetXattr(n, k, []byte(val), 0)
	case "rmx":
		err = v.RemoveXattr(n, rest)
	default:
		return fmt.Errorf("unknown step %q", step)
	}
	return err
}

// upRender lists view v with the metadata a container sees: one line per path (the root is "."):
// type, mode, owner, then data, link target or device, nlink when above 1, and xattrs.
func upRender(t testing.TB, v *View) []string {
	t.Helper()
	var out []string
	var walk func(n Node, p string)
	line := func(n Node, p string) index.Type {
		a, err := v.Attr(n)
		if err != nil {
			t.Fatalf("attr %q: %v", p, err)
		}
		s := fmt.Sprintf("%s %s %04o %d:%d", p, a.Type, a.Mode, a.UID, a.GID)
		switch a.Type {
		case index.TypeRegular:
			f, err := v.Open(n)
			if err != nil {
				t.Fatalf("open %q: %v", p, err)
			}
			data := make([]byte, f.Size()+1)
			k, err := f.ReadAt(data, 0)
			if err != nil && err != io.EOF {
				t.Fatalf("read %q: %v", p, err)
			}
			if c, ok := f.(io.Closer); ok {
				c.Close()
			}
			if int64(k) != a.Size {
				t.Errorf("%q: read %d bytes, size %d", p, k, a.Size)
			}
			s += " =" + string(data[:k])
		case index.TypeSymlink:
			target, err := v.Readlink(n)
			if err != nil {
				t.Fatalf("readlink %q: %v", p, err)
			}
			s += " ->" + target
		case index.TypeChar, index.TypeBlock:
			s += fmt.Sprintf(" %d:%d", a.Devmajor, a.Devminor)
		}
		if a.Type != index.TypeDir && a.Nlink > 1 { // directories: see TestUpperDirNlink
			s += fmt.Sprintf(" nlink=%d", a.Nlink)
		}
		xs, err := v.Xattrs(n)
		if err != nil {
			t.Fatalf("xattrs %q: %v", p, err)
		}
		for _, x := range xs {
			s += " " + x.Name + "=" + string(x.Value)
		}
		out = append(out, s)
		return a.Type
	}
	walk = func(n Node, p string) {
		d, err := v.ReadDir(n)
		if err != nil {
			t.Fatalf("readdir %q: %v", p, err)
		}
		for i := 0; i < d.Len(); i++ {
			de := d.Entry(i)
			cp := join(p, de.Name)
			if line(de.Node, cp) == index.TypeDir {
				walk(de.Node, cp)
			}
		}
	}
	line(Root, ".")
	walk(Root, "")
	return out
}

// upPaths keeps the path and type of rendered lines, for compact expectations.
func upPaths(lines []string) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		f := strings.Fields(l)
		s := f[0] + " " + f[1]
		for _, x := range f[4:] {
			if strings.HasPrefix(x, "=") || strings.HasPrefix(x, "->") || strings.HasPrefix(x, "nlink=") {
				s += " " + x
			}
		}
		out = append(out, s)
	}
	return out
}

func upMember(m tartest.Member, mode int64, uid int, x map[string]string) tartest.Member {
	m.Mode, m.UID, m.GID, m.Xattrs = mode, uid, uid, x
	return m
}

// upCases are union-specific cases: lower layers, steps, and the paths the view must then show (type,
// data, link target, nlink). Each case also runs against the kernel's overlayfs over the same upper
// directory and is remounted.
var upCases = []struct {
	name   string
	layers []members
	steps  []string
	want   []string
}{
	{"delete then recreate a directory: opaque",
		[]members{{file("d/x", "1"), file("d/y", "2"), file("e", "3")}},
		[]string{"rm d/x", "rm d/y", "rmdir d", "mkdir d", "touch d/z=new"},
		[]string{". dir", "d dir", "d/z file =new", "e file =3"}},
	{"rm -r of a lower tree leaves one whiteout",
		[]members{{file("d/s/x", "1"), file("d/y", "2")}},
		[]string{"rm d/s/x", "rmdir d/s", "rm d/y", "rmdir d"},
		[]string{". dir"}},
	{"rename a lower directory with children",
		[]members{{file("a/b/c", "1"), file("a/f", "2"), symlink("a/l", "f")}, {file("a/b/d", "3")}},
		[]string{"mv a z"},
		[]string{". dir", "z dir", "z/b dir", "z/b/c file =1", "z/b/d file =3", "z/f file =2", "z/l symlink ->f"}},
	{"rename a lower directory after changes inside it",
		[]members{{file("a/b/c", "1"), file("a/f", "2"), file("a/g", "4")}},
		[]string{"rm a/g", "touch a/new=n", "write a/f@1=X", "mv a/b a/b2", "mv a z"},
		[]string{". dir", "z dir", "z/b2 dir", "z/b2/c file =1", "z/f file =2X", "z/new file =n"}},
	{"rename a directory onto an empty lower directory",
		[]members{{file("a/x", "1"), dir("b"), file("b/gone", "0")}},
		[]string{"rm b/gone", "mv a b"},
		[]string{". dir", "b dir", "b/x file =1"}},
	{"rename a directory back where it was",
		[]members{{file("a/x", "1"), file("a/y", "2")}},
		[]string{"mv a z", "rm z/y", "mv z a"},
		[]string{". dir", "a dir", "a/x file =1"}},
	{"rename over a whiteout",
		[]members{{file("a", "1"), file("b", "2"), file("d/x", "3"), file("e/y", "4")}},
		[]string{"rm b", "mv a b", "rm e/y", "rmdir e", "mv d e"},
		[]string{". dir", "b file =1", "e dir", "e/x file =3"}},
	{"rename replaces a lower file",
		[]members{{file("a", "1"), file("b", "2")}},
		[]string{"mv a b"},
		[]string{". dir", "b file =1"}},
	{"rename with noreplace and exchange",
		[]members{{file("a", "1"), file("b", "2"), file("d/x", "3")}},
		[]string{"xchg a d", "mvnr b c"},
		[]string{". dir", "a dir", "a/x file =3", "c file =2", "d file =1"}},
	{"hardlink a lower file",
		[]members{{file("f", "data"), dir("d")}},
		[]string{"ln f d/g"},
		[]string{". dir", "d dir", "d/g file =data nlink=2", "f file =data nlink=2"}},
	{"hardlinked lower files stay one file",
		[]members{{file("f", "data"), hardlink("g", "f"), hardlink("h", "f")}},
		[]string{"write g@0=D", "rm h"},
		[]string{". dir", "f file =Data nlink=2", "g file =Data nlink=2"}},
	{"unlink one name of a lower hardlink",
		[]members{{file("f", "data"), hardlink("g", "f")}},
		[]string{"rm f"},
		[]string{". dir", "g file =data"}},
	{"chmod, chown, xattrs of lower entries",
		[]members{{upMember(file("f", "data"), 0o644, 5, map[string]string{"user.a": "1"}), upMember(dir("d"), 0o700, 6, nil), file("d/x", "x")}},
		[]string{"chmod f 600", "chown d 7:8", "setx d user.b=2", "rmx f user.a", "setx f user.c=3"},
		[]string{". dir", "d dir", "d/x file =x", "f file =data"}},
	{"truncate and append to a lower file",
		[]members{{file("f", "0123456789"), file("g", "abc")}},
		[]string{"trunc f 4", "write g@3=def", "trunc g 8"},
		[]string{". dir", "f file =0123", "g file =abcdef\x00\x00"}},
	{"symlinks, fifos, new files in new directories",
		[]members{{file("a", "1")}},
		[]string{"mkdir n", "mkdir n/m", "sym n/m/l->../../a", "fifo n/p", "touch n/m/f=x", "mtime n/m/f 1000"},
		[]string{". dir", "a file =1", "n dir", "n/m dir", "n/m/f file =x", "n/m/l symlink ->../../a", "n/p fifo"}},
	{"a directory replaces a deleted lower file and a file a deleted directory",
		[]members{{file("f", "1"), file("d/x", "2")}},
		[]string{"rm f", "mkdir f", "rm d/x", "rmdir d", "touch d=3"},
		[]string{". dir", "d file =3", "f dir"}},
	{"changes below a layer's symlink-shadowing directory",
		[]members{{dir("usr/lib"), symlink("lib", "usr/lib")}, {file("lib/foo", "1")}},
		[]string{"touch lib/bar=2", "rm lib/foo", "touch usr/lib/z=3"},
		[]string{". dir", "lib dir", "lib/bar file =2", "usr dir", "usr/lib dir", "usr/lib/z file =3"}},
	{"opaque lower directory copied up and renamed",
		[]members{{file("d/old", "0")}, {tartest.Opaque("d"), file("d/new", "1")}},
		[]string{"touch d/more=2", "mv d e"},
		[]string{". dir", "e dir", "e/more file =2", "e/new file =1"}},
}

// upMode is a form of markers an upper directory may be written with.
type upMode struct {
	name            string
	user, xattrWh   bool
	kernelUserxattr bool // the kernel can check it, with the userxattr option
}

func (m upMode) markers() upperMarkers { return upperMarkers{user: m.user, xattrWhiteouts: m.xattrWh} }

// upModes are the forms of markers an upper directory may be written with.
var upModes = []upMode{
	{"", false, false, false},
	{" (user xattrs)", true, false, true},
	{" (user xattrs, xattr whiteouts)", true, true, false},
}

// upNeedRoot skips a test that changes owners or sets trusted.* xattrs, unless it runs as root.
func upNeedRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: changes owners")
	}
}

func TestUpperUnionCases(t *testing.T) {
	t.Parallel()
	for _, m := range upModes {
		for _, tc := range upCases {
			t.Run(tc.name+m.name, func(t *testing.T) {
				if slices.ContainsFunc(tc.steps, func(s string) bool { return strings.HasPrefix(s, "chown ") }) {
					upNeedRoot(t)
				}
				layers := layersOf(tc.layers...)
				dir := filepath.Join(upTempDir(t), "upper")
				v, u := upOpenMarkers(t, dir, layers, m.markers())
				for _, st := range tc.steps {
					if err := upDo(v, st); err != nil {
						t.Fatalf("%s: %v", st, err)
					}
				}
				got := upRender(t, v)
				if p := upPaths(got); !slices.Equal(p, tc.want) {
					t.Errorf("view:\n%s\nwant:\n%s", strings.Join(p, "\n"), strings.Join(tc.want, "\n"))
				}
				upCheckDisk(t, dir)
				u.Close()
				v2, _ := upOpenMarkers(t, dir, layers, m.markers())
				if again := upRender(t, v2); !slices.Equal(again, got) {
					t.Errorf("remounted view differs:\n%s\nbefore:\n%s", strings.Join(again, "\n"), strings.Join(got, "\n"))
				}
				if !m.xattrWh {
					upKernelOracle(t, layers, dir, got, m.kernelUserxattr)
				}
			})
		}
	}
}

// upCheckDisk checks that the upper directory holds no temporary entries.
func upCheckDisk(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Error(err)
			return nil
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			t.Errorf("temporary entry left: %s", p)
		}
		return nil
	})
}

func TestUpperRefusals(t *testing.T) {
	t.Parallel()
	v, _ := upOpen(t, t.TempDir(), layersOf(members{file("f", "1"), file("d/x", "2"), dir("e")}))
	tests := []struct {
		step string
		want error
	}{
		{"touch .wh.x=1", ErrReservedName},
		{"mkdir .wh..wh..opq", ErrReservedName},
		{"sym d/.wh.f->x", ErrReservedName},
		{"fifo .wh.p", ErrReservedName},
		{"ln f .wh.g", ErrReservedName},
		{"mv f .wh.f", ErrReservedName},
		{"rm .wh.f", ErrNotExist},
		{"setx f trusted.overlay.opaque=y", ErrReservedName},
		{"setx f user.overlay.whiteout=y", ErrReservedName},
		{"setx f trusted.imgfs.base=x", ErrReservedName},
		{"touch f=2", ErrExist},
		{"mkdir d", ErrExist},
		{"rmdir d", ErrNotEmpty},
		{"rm d", ErrIsDir},
		{"rmdir f", ErrNotDir},
		{"mv d d/x2", ErrInvalid},
		{"mv e d", ErrNotEmpty},
		{"mv f e", ErrIsDir},
		{"mv e f", ErrNotDir},
		{"mvnr f d", ErrExist},
		{"xchg f nothing", ErrNotExist},
		{"ln d d2", ErrIsDir},
		{"touch f/x=1", ErrNotDir},
		{"trunc d 0", ErrIsDir},
		{"rm nothing", ErrNotExist},
	}
	for _, tt := range tests {
		if err := upDo(v, tt.step); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.step, err, tt.want)
		}
	}
	if _, err := v.Mknod(Root, "c", index.TypeChar, 0o600, 0, 0, upCaller); !errors.Is(err, ErrInvalid) {
		t.Errorf("mknod c 0 0: %v", err)
	}
	fa, _ := v.Lookup(Root, "f")
	if err := v.SetXattr(fa.Node, "user.n", []byte("1"), unix.XATTR_REPLACE); !errors.Is(err, ErrNotExist) {
		t.Errorf("XATTR_REPLACE of a missing xattr: %v", err)
	}
	if err := v.SetXattr(fa.Node, "user.n", []byte("1"), unix.XATTR_CREATE); err != nil {
		t.Fatal(err)
	}
	if err := v.SetXattr(fa.Node, "user.n", []byte("2"), unix.XATTR_CREATE); !errors.Is(err, ErrExist) {
		t.Errorf("XATTR_CREATE of an existing xattr: %v", err)
	}
	if err := v.RemoveXattr(fa.Node, "user.none"); !errors.Is(err, ErrNotExist) {
		t.Errorf("remove a missing xattr: %v", err)
	}
	// Nothing refused left a trace: the view is unchanged but for f's new xattr.
	want := []string{". dir", "d dir", "d/x file =2", "e dir", "f file =1"}
	if got := upPaths(upRender(t, v)); !slices.Equal(got, want) {
		t.Errorf("view after refusals:\n%s", strings.Join(got, "\n"))
	}
}

func TestUpperReadOnlyView(t *testing.T) {
	t.Parallel()
	v := mustNew(t, members{file("f", "1")})
	if v.Writable() {
		t.Error("read-only view is writable")
	}
	if _, err := v.Mkdir(Root, "d", 0o755, upCaller); !errors.Is(err, ErrReadOnly) {
		t.Errorf("mkdir: %v", err)
	}
	a, _ := v.Lookup(Root, "f")
	if _, err := v.OpenFile(a.Node, true, false); !errors.Is(err, ErrReadOnly) {
		t.Errorf("open for write: %v", err)
	}
	f, err := v.OpenFile(a.Node, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("x"), 0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("write: %v", err)
	}
	if v.up != nil {
		t.Error("read-only view keeps upper state")
	}
}

func TestUpperNodeIdentity(t *testing.T) {
	t.Parallel()
	layers := layersOf(members{file("a/b/c", "1"), file("a/f", "2"), file("g", "3"), hardlink("h", "g")})
	v, _ := upOpen(t, t.TempDir(), layers)
	before := map[string]Node{}
	for _, p := range []string{"a", "a/b", "a/b/c", "a/f", "g", "h"} {
		a, err := lookupPath(v, p)
		if err != nil {
			t.Fatal(err)
		}
		before[p] = a.Node
	}
	for _, st := range []string{"chmod a/f 600", "write g@0=G", "mv a z"} {
		if err := upDo(v, st); err != nil {
			t.Fatalf("%s: %v", st, err)
		}
	}
	for p, want := range map[string]Node{"z": before["a"], "z/b": before["a/b"], "z/b/c": before["a/b/c"], "z/f": before["a/f"], "g": before["g"], "h": before["g"]} {
		a, err := lookupPath(v, p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if a.Node != want {
			t.Errorf("%s: node %#x, want %#x", p, a.Node, want)
		}
	}
	if _, err := lookupPath(v, "a"); !errors.Is(err, ErrNotExist) {
		t.Errorf("old path: %v", err)
	}
	// Attr on the old node IDs serves the moved files.
	a, err := v.Attr(before["a/b/c"])
	if err != nil || a.Layer != 1 || a.Size != 1 {
		t.Errorf("moved node: %+v %v", a, err)
	}
	// New entries get upper nodes; they stay the same for the life of the view.
	if err := upDo(v, "touch z/n=1"); err != nil {
		t.Fatal(err)
	}
	n1, _ := lookupPath(v, "z/n")
	d, _ := v.ReadDir(before["a"])
	var n2 Node
	for i := 0; i < d.Len(); i++ {
		if d.Entry(i).Name == "n" {
			n2 = d.Entry(i).Node
		}
	}
	if n1.Node&upperBit == 0 || n1.Node != n2 {
		t.Errorf("new node %#x, listed %#x", n1.Node, n2)
	}
}

func TestUpperOpenBeforeCopyUp(t *testing.T) {
	t.Parallel()
	v, _ := upOpen(t, t.TempDir(), layersOf(members{file("f", "old data")}))
	a, _ := v.Lookup(Root, "f")
	ro, err := v.Open(a.Node)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := v.OpenFile(a.Node, false, false)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, _ := ro.ReadAt(buf, 0); string(buf[:n]) != "old data" {
		t.Fatalf("before: %q", buf[:n])
	}
	w, err := v.OpenFile(a.Node, true, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("NEW"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("!"), 8); err != nil {
		t.Fatal(err)
	}
	for _, f := range []File{ro, rw, w} {
		buf := make([]byte, 16)
		n, _ := f.ReadAt(buf, 0)
		if string(buf[:n]) != "NEW data!" || f.Size() != 9 {
			t.Errorf("%T reads %q, size %d", f, buf[:n], f.Size())
		}
		if _, _, ok := f.FileRange(); ok {
			t.Errorf("%T: file range of an upper file", f)
		}
	}
	if _, err := rw.WriteAt([]byte("x"), 0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("write through a read-only handle: %v", err)
	}
	for _, f := range []io.Closer{ro.(io.Closer), rw, w} {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}
	// An open file keeps its data and attributes after its last name is gone.
	for _, name := range []string{"f", "g"} {
		if name == "g" {
			if err := upDo(v, "touch g=NEW data!"); err != nil {
				t.Fatal(err)
			}
			a, _ = v.Lookup(Root, "g")
		}
		w, _ = v.OpenFile(a.Node, true, false)
		if err := v.Unlink(Root, name); err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteAt([]byte("more"), 9); err != nil {
			t.Fatal(err)
		}
		if got, err := v.Attr(a.Node); err != nil || got.Size != 13 || got.Nlink != 0 {
			t.Errorf("%s: unlinked open file: %+v %v", name, got, err)
		}
		w.Close()
		if _, err := v.Lookup(Root, name); !errors.Is(err, ErrNotExist) {
			t.Errorf("%s: lookup after unlink: %v", name, err)
		}
	}
	// An upper-only node is gone once closed; a lower node's ID still answers from the layers (nodes
	// of the layers keep no state), as the kernel forgets it.
	if _, err := v.Attr(a.Node); !errors.Is(err, ErrNotExist) {
		t.Errorf("closed unlinked file: %v", err)
	}
}

// countLayer counts the data bytes read from a layer.
type countLayer struct {
	Layer
	mu    chan struct{}
	bytes int64
}

func (c *countLayer) ReadAt(id index.ID, p []byte, off int64) (int, error) {
	n, err := c.Layer.ReadAt(id, p, off)
	c.mu <- struct{}{}
	c.bytes += int64(n)
	<-c.mu
	return n, err
}

func TestUpperConcurrentCopyUp(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("0123456789abcdef"), 256<<10/16) // 256 KiB
	cl := &countLayer{Layer: newFakeLayer(tartest.Member{Name: "big", Body: data}), mu: make(chan struct{}, 1)}
	v, _ := upOpen(t, t.TempDir(), []Layer{cl})
	a, _ := v.Lookup(Root, "big")
	ro, _ := v.Open(a.Node)
	const workers = 16
	errs := make(chan error, workers)
	for i := range workers {
		go func() {
			f, err := v.OpenFile(a.Node, true, false)
			if err == nil {
				_, err = f.WriteAt([]byte{'A' + byte(i)}, int64(i)*1000)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			errs <- err
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if cl.bytes != int64(len(data)) {
		t.Errorf("read %d bytes of the layer, want one copy of %d", cl.bytes, len(data))
	}
	want := slices.Clone(data)
	for i := range workers {
		want[i*1000] = 'A' + byte(i)
	}
	got := make([]byte, len(data)+1)
	n, _ := ro.ReadAt(got, 0)
	if !bytes.Equal(got[:n], want) {
		t.Error("data after concurrent writes differs")
	}
	if b, _ := v.Attr(a.Node); b.Node != a.Node || b.Layer != 1 {
		t.Errorf("attr after copy-up: %+v", b)
	}
}

// upXattr reads xattr name of path p (not following it); ok is false when it has none.
func upXattr(t *testing.T, p, name string) (string, bool) {
	t.Helper()
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if err == unix.ENODATA {
		return "", false
	}
	if err != nil {
		t.Fatalf("getxattr %s %s: %v", p, name, err)
	}
	return string(buf[:n]), true
}

func TestUpperOnDiskForms(t *testing.T) {
	t.Parallel()
	layers := layersOf(members{file("f", "1"), file("d/x", "2"), file("e/y", "3"), file("k", "4")})
	for _, m := range upModes {
		user, xattrWh := m.user, m.xattrWh
		t.Run("mode"+m.name, func(t *testing.T) {
			dir := t.TempDir()
			v, _ := upOpenMarkers(t, dir, layers, m.markers())
			for _, st := range []string{"rm f", "rm d/x", "rmdir d", "mkdir d", "rm e/y", "rmdir e", "touch new=1", "mkdir nd", "mv k k2"} {
				if err := upDo(v, st); err != nil {
					t.Fatalf("%s: %v", st, err)
				}
			}
			ns := "trusted."
			if user || os.Geteuid() != 0 {
				ns = "user."
			}
			if b, ok := upXattr(t, dir, ns+"imgfs.base"); !ok || b != "sha256:base" {
				t.Errorf("base xattr %q %v", b, ok)
			}
			for _, wh := range []string{"f", "e", "k"} {
				p := filepath.Join(dir, wh)
				var st unix.Stat_t
				if err := unix.Lstat(p, &st); err != nil {
					t.Fatal(err)
				}
				if !xattrWh {
					if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
						t.Errorf("%s: mode %o rdev %d, want a character device 0/0", wh, st.Mode, st.Rdev)
					}
					continue
				}
				if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != 0 {
					t.Errorf("%s: mode %o size %d, want an empty file", wh, st.Mode, st.Size)
				}
				if _, ok := upXattr(t, p, "user.overlay.whiteout"); !ok {
					t.Errorf("%s: no user.overlay.whiteout", wh)
				}
			}
			if xattrWh {
				if _, ok := upXattr(t, dir, "user.overlay.whiteouts"); !ok {
					t.Error("upper root lacks user.overlay.whiteouts")
				}
				if o, _ := upXattr(t, dir, "user.overlay.opaque"); o != "x" {
					t.Errorf("upper root user.overlay.opaque = %q, want x", o)
				}
			}
			if o, _ := upXattr(t, filepath.Join(dir, "d"), ns+"overlay.opaque"); o != "y" {
				t.Errorf("recreated d: opaque %q", o)
			}
			for _, p := range []string{"nd", "k2", "new"} {
				if _, ok := upXattr(t, filepath.Join(dir, p), ns+"overlay.opaque"); ok {
					t.Errorf("%s is opaque", p)
				}
			}
			ents, _ := os.ReadDir(filepath.Join(dir, "d"))
			if len(ents) != 0 {
				t.Errorf("recreated d holds %d entries", len(ents))
			}
			// The markers never show in the view.
			for _, p := range []string{"", "d", "k2"} {
				n, _ := upResolve(v, p)
				xs, _ := v.Xattrs(n)
				if len(xs) != 0 {
					t.Errorf("%q shows xattrs %v", p, xs)
				}
			}
		})
	}
}

func TestUpperBase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	u, err := OpenUpper(UpperOptions{Dir: dir, Base: "one"})
	if err != nil {
		t.Fatal(err)
	}
	u.Close()
	if _, err := OpenUpper(UpperOptions{Dir: dir, Base: "two"}); err == nil || !strings.Contains(err.Error(), `"one"`) || !strings.Contains(err.Error(), `"two"`) {
		t.Errorf("other base: %v", err)
	}
	u, err = OpenUpper(UpperOptions{Dir: dir, Base: "one"})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	layers := layersOf(members{file("f", "1")})
	if _, err := New(layers, Options{Upper: u}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(layers, Options{Upper: u}); err == nil {
		t.Error("one upper directory served two views")
	}
	if _, err := OpenUpper(UpperOptions{}); err == nil {
		t.Error("no directory accepted")
	}
}

func TestUpperRootAttributes(t *testing.T) {
	t.Parallel()
	upNeedRoot(t)
	root := dirMode(".", 0o750, 3)
	root.Mtime = time.Unix(1500000000, 0)
	root.Xattrs = map[string]string{"user.r": "1"}
	v, _ := upOpen(t, filepath.Join(t.TempDir(), "new"), layersOf(members{root, file("f", "1")}))
	a, err := v.Attr(Root)
	if err != nil {
		t.Fatal(err)
	}
	if a.Mode != 0o750 || a.UID != 3 || a.MtimeSec != 1500000000 || a.Type != index.TypeDir {
		t.Errorf("root: %+v", a)
	}
	if xs, _ := v.Xattrs(Root); len(xs) != 1 || xs[0].Name != "user.r" {
		t.Errorf("root xattrs: %v", xs)
	}
}

// TestUpperSymlinkEscapes checks that no symlink, of the image or in the upper directory, makes the view
// write outside the upper directory.
func TestUpperSymlinkEscapes(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	outside := filepath.Join(tmp, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "upper")
	layers := layersOf(members{
		symlink("abs", outside), symlink("rel", "../outside"), symlink("etc", "/etc"),
		file("d/e/f", "1"), file("g", "2"),
	})
	v, _ := upOpen(t, dir, layers)
	for _, st := range []string{"touch abs/x=1", "mkdir rel/x", "touch etc/imgfs-escape-test=1", "mv g abs/g", "sym etc/s->x", "ln g rel/h"} {
		if err := upDo(v, st); !errors.Is(err, ErrNotDir) {
			t.Errorf("%s: %v, want ErrNotDir", st, err)
		}
	}
	// Changing the image's symlinks changes the links, never what they point to.
	steps := []string{"mtime rel 1000", "mv rel rel2", "mtime abs 1000"}
	if os.Geteuid() == 0 {
		steps = append(steps, "chown abs 5:5", "setx abs trusted.t=1")
	}
	for _, st := range steps {
		if err := upDo(v, st); err != nil {
			t.Errorf("%s: %v", st, err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(dir, "abs")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("abs in the upper directory: %v %v", fi, err)
	}
	if _, err := os.Stat("/etc/imgfs-escape-test"); err == nil {
		t.Error("wrote into /etc")
	}
	// Symlinks planted in the upper directory, where the view expects directories, stop every change.
	for _, st := range []string{"touch d/e/new=1", "mkdir n", "touch n/m=1"} {
		if err := upDo(v, st); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"d", "n"} {
		if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range []string{"touch d/e/x=1", "rm d/e/f", "touch n/y=1", "rm n/m", "chmod d/e/new 600", "mkdir d/e/z"} {
		if err := upDo(v, st); err == nil {
			t.Errorf("%s through a planted symlink succeeded", st)
		}
	}
	ents, _ := os.ReadDir(outside)
	if len(ents) != 0 {
		t.Errorf("outside holds %d entries", len(ents))
	}
	if fi, _ := os.Stat(outside); fi.Mode().Perm() != 0o755 {
		t.Errorf("outside's mode changed: %v", fi.Mode())
	}
}

// TestUpperLinkInLowerLayers checks hard links between a lower file and new names, nlink and nodes.
func TestUpperHardlinkLowerFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	v, _ := upOpen(t, dir, layersOf(members{file("f", "data"), file("d/x", "1")}))
	fa, _ := v.Lookup(Root, "f")
	if fa.Nlink != 1 {
		t.Fatalf("nlink %d", fa.Nlink)
	}
	d, _ := v.Lookup(Root, "d")
	g, err := v.Link(fa.Node, d.Node, "g")
	if err != nil {
		t.Fatal(err)
	}
	if g.Node != fa.Node || g.Nlink != 2 {
		t.Errorf("link: %+v", g)
	}
	if a, _ := v.Attr(fa.Node); a.Nlink != 2 || a.Size != 4 {
		t.Errorf("target: %+v", a)
	}
	var s1, s2 unix.Stat_t
	unix.Lstat(filepath.Join(dir, "f"), &s1)
	unix.Lstat(filepath.Join(dir, "d/g"), &s2)
	if s1.Ino != s2.Ino || s1.Nlink != 2 {
		t.Errorf("upper inodes %d %d nlink %d", s1.Ino, s2.Ino, s1.Nlink)
	}
	if err := v.Unlink(Root, "f"); err != nil {
		t.Fatal(err)
	}
	if a, err := v.Attr(fa.Node); err != nil || a.Nlink != 1 {
		t.Errorf("after unlink: %+v %v", a, err)
	}
	if a, err := lookupPath(v, "d/g"); err != nil || a.Node != fa.Node {
		t.Errorf("d/g: %+v %v", a, err)
	}
}

// TestUpperDirectoryListings checks listings that merge the upper directory with the layers, and that
// a Dir snapshot keeps its names.
func TestUpperDirectoryListings(t *testing.T) {
	t.Parallel()
	v, _ := upOpen(t, t.TempDir(), layersOf(members{file("d/a", "1"), file("d/c", "2"), file("d/e", "3")}))
	for _, st := range []string{"touch d/b=x", "rm d/c", "touch d/f=y", "write d/e@0=E", "touch d/0=z"} {
		if err := upDo(v, st); err != nil {
			t.Fatal(err)
		}
	}
	dn, _ := upResolve(v, "d")
	dd, err := v.ReadDir(dn)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := 0; i < dd.Len(); i++ {
		e := dd.Entry(i)
		a, err := v.Lookup(dn, e.Name)
		if err != nil || a.Node != e.Node || a.Type != e.Type {
			t.Errorf("%s: listed %#x %v, lookup %+v %v", e.Name, e.Node, e.Type, a, err)
		}
		names = append(names, e.Name)
	}
	if want := []string{"0", "a", "b", "e", "f"}; !slices.Equal(names, want) {
		t.Errorf("listing %v, want %v", names, want)
	}
}

// upKernelOracle mounts the kernel's overlayfs with the layers' merged tree as lowerdir and dir as
// upperdir, and compares its tree with want (upRender of the view). It skips when it cannot mount.
func upKernelOracle(t *testing.T, layers []Layer, dir string, want []string, userxattr bool) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Log("not root: no kernel oracle")
		return
	}
	tmp := upTempDir(t)
	lower, work, mnt := filepath.Join(tmp, "lower"), filepath.Join(tmp, "work"), filepath.Join(tmp, "mnt")
	for _, d := range []string{work, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ro, err := New(layers, Options{})
	if err != nil {
		t.Fatal(err)
	}
	upExtract(t, ro, lower)
	opts := "lowerdir=" + lower + ",upperdir=" + dir + ",workdir=" + work + ",index=off,metacopy=off"
	if userxattr {
		opts += ",redirect_dir=nofollow,userxattr"
	} else {
		opts += ",redirect_dir=off"
	}
	if err := unix.Mount("overlay", mnt, "overlay", 0, opts); err != nil {
		if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EPERM) {
			t.Logf("no kernel oracle: mount overlay: %v", err)
			return
		}
		t.Fatalf("mount overlay %s: %v", opts, err)
	}
	defer func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount: %v", err)
		}
	}()
	got := upRenderDisk(t, mnt)
	if !slices.Equal(got, want) {
		t.Errorf("kernel overlayfs shows:\n%s\nthe view:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// upTempDir returns a temporary directory whose path has no comma (overlayfs options are separated by
// commas; t.TempDir's paths hold the test's name).
func upTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "imgfs-upper-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// upExtract writes the tree of read-only view v into dir, as an extractor would.
func upExtract(t *testing.T, v *View, dir string) {
	t.Helper()
	links := map[Node]string{}
	var dirs []struct {
		p string
		a Attr
	}
	var walk func(n Node, p string)
	meta := func(p string, a Attr, n Node) {
		if err := os.Lchown(p, int(a.UID), int(a.GID)); err != nil {
			t.Fatal(err)
		}
		xs, _ := v.Xattrs(n)
		for _, x := range xs {
			if err := unix.Lsetxattr(p, x.Name, x.Value, 0); err != nil {
				t.Fatalf("setxattr %s %s: %v", p, x.Name, err)
			}
		}
		if a.Type != index.TypeSymlink {
			if err := unix.Chmod(p, a.Mode); err != nil {
				t.Fatal(err)
			}
		}
		ts := []unix.Timespec{{Sec: a.MtimeSec, Nsec: int64(a.MtimeNsec)}, {Sec: a.MtimeSec, Nsec: int64(a.MtimeNsec)}}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
	walk = func(n Node, p string) {
		a, err := v.Attr(n)
		if err != nil {
			t.Fatal(err)
		}
		if first, ok := links[n]; ok {
			if err := os.Link(first, p); err != nil {
				t.Fatal(err)
			}
			return
		}
		switch a.Type {
		case index.TypeDir:
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			d, err := v.ReadDir(n)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < d.Len(); i++ {
				walk(d.Entry(i).Node, filepath.Join(p, d.Entry(i).Name))
			}
			dirs = append(dirs, struct {
				p string
				a Attr
			}{p, a})
			meta(p, a, n)
			return
		case index.TypeRegular:
			f, _ := v.Open(n)
			data := make([]byte, a.Size)
			f.ReadAt(data, 0)
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
		case index.TypeSymlink:
			target, _ := v.Readlink(n)
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		case index.TypeFIFO:
			if err := unix.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
		case index.TypeChar, index.TypeBlock:
			mode := uint32(unix.S_IFCHR)
			if a.Type == index.TypeBlock {
				mode = unix.S_IFBLK
			}
			if err := unix.Mknod(p, mode|0o600, int(unix.Mkdev(a.Devmajor, a.Devminor))); err != nil {
				t.Fatal(err)
			}
		}
		if a.Nlink > 1 {
			links[n] = p
		}
		meta(p, a, n)
	}
	walk(Root, dir)
	// Directory times last, after their children were made.
	for _, d := range dirs {
		ts := []unix.Timespec{{Sec: d.a.MtimeSec, Nsec: int64(d.a.MtimeNsec)}, {Sec: d.a.MtimeSec, Nsec: int64(d.a.MtimeNsec)}}
		unix.UtimesNanoAt(unix.AT_FDCWD, d.p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
}

// upRenderDisk lists directory tree root like upRender lists a view.
func upRenderDisk(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	var walk func(p, rel string)
	line := func(p, rel string) bool {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatalf("lstat %s: %v", p, err)
		}
		typ := index.TypeOfMode(st.Mode)
		mode := st.Mode & 0o7777
		s := fmt.Sprintf("%s %s %04o %d:%d", rel, typ, mode, st.Uid, st.Gid)
		switch typ {
		case index.TypeRegular:
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			s += " =" + string(data)
		case index.TypeSymlink:
			target, _ := os.Readlink(p)
			s += " ->" + target
		case index.TypeChar, index.TypeBlock:
			s += fmt.Sprintf(" %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if typ != index.TypeDir && st.Nlink > 1 {
			s += fmt.Sprintf(" nlink=%d", st.Nlink)
		}
		names := upLlistxattr(t, p)
		for _, x := range names {
			if hiddenXattr(x) {
				continue
			}
			buf := make([]byte, 4096)
			n, err := unix.Lgetxattr(p, x, buf)
			if err != nil {
				t.Fatal(err)
			}
			s += " " + x + "=" + string(buf[:n])
		}
		out = append(out, s)
		return typ == index.TypeDir
	}
	walk = func(p, rel string) {
		ents, err := os.ReadDir(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			cp := join(rel, e.Name())
			if line(filepath.Join(p, e.Name()), cp) {
				walk(filepath.Join(p, e.Name()), cp)
			}
		}
	}
	line(root, ".")
	walk(root, "")
	return out
}

// upLlistxattr lists the xattr names of path p, not following it.
func upLlistxattr(t *testing.T, p string) []string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatalf("listxattr %s: %v", p, err)
	}
	var names []string
	for _, x := range strings.Split(string(buf[:n]), "\x00") {
		if x != "" {
			names = append(names, x)
		}
	}
	slices.Sort(names)
	return names
}

func TestUpperOwnership(t *testing.T) {
	t.Parallel()
	upNeedRoot(t)
	sg := dirMode("sg", 0o2775, 50)
	sg.GID = 50
	v, _ := upOpen(t, t.TempDir(), layersOf(members{sg, dir("plain")}))
	for _, tt := range []struct {
		step, path string
		mode       uint32
		uid, gid   uint32
	}{
		{"mkdir sg/d", "sg/d", 0o2755, 1000, 50},
		{"touch sg/f=1", "sg/f", 0o644, 1000, 50},
		{"mkdir plain/d", "plain/d", 0o755, 1000, 1000},
		{"touch plain/f=1", "plain/f", 0o644, 1000, 1000},
		{"fifo plain/p", "plain/p", 0o640, 1000, 1000},
	} {
		if err := upDo(v, tt.step); err != nil {
			t.Fatalf("%s: %v", tt.step, err)
		}
		a, err := lookupPath(v, tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if a.Mode != tt.mode || a.UID != tt.uid || a.GID != tt.gid || a.Layer != 1 {
			t.Errorf("%s: mode %o owner %d:%d layer %d, want %o %d:%d", tt.path, a.Mode, a.UID, a.GID, a.Layer, tt.mode, tt.uid, tt.gid)
		}
	}
	// The copied-up parent keeps the layers' attributes.
	if a, _ := lookupPath(v, "sg"); a.Mode != 0o2775 || a.UID != 50 || a.GID != 50 {
		t.Errorf("sg: %+v", a)
	}
}

func TestUpperFreeze(t *testing.T) {
	t.Parallel()
	v, _ := upOpen(t, t.TempDir(), layersOf(members{file("f", "1")}))
	a, _ := v.Lookup(Root, "f")
	w, err := v.OpenFile(a.Node, true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	thaw := v.Freeze()
	done := make(chan string, 2)
	go func() {
		upDo(v, "mkdir d")
		done <- "mkdir"
	}()
	go func() {
		w.WriteAt([]byte("2"), 0)
		done <- "write"
	}()
	// Reads go on while frozen.
	if _, err := v.Lookup(Root, "f"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := w.ReadAt(buf, 0); err != nil || buf[0] != '1' {
		t.Fatalf("read while frozen: %q %v", buf, err)
	}
	time.Sleep(20 * time.Millisecond)
	select {
	case op := <-done:
		t.Fatalf("%s ran while frozen", op)
	default:
	}
	thaw()
	thaw() // a second thaw does nothing
	<-done
	<-done
	if _, err := v.Lookup(Root, "d"); err != nil {
		t.Error(err)
	}
	if err := v.Sync(); err != nil {
		t.Error(err)
	}
}

// fileRangeLayer is a fakeLayer whose regular files are also plain ranges of a real file.
type fileRangeLayer struct {
	*fakeLayer
	f    *os.File
	offs map[index.ID]int64
}

func (l *fileRangeLayer) FileRange(id index.ID) (*os.File, int64, bool) {
	off, ok := l.offs[id]
	return l.f, off, ok
}

func TestUpperCopyUpData(t *testing.T) {
	t.Parallel()
	sparse := append(make([]byte, 4<<20), "tail"...)
	ranged := bytes.Repeat([]byte("range data "), 100000)
	fl := newFakeLayer(tartest.Member{Name: "sparse", Body: sparse}, tartest.Member{Name: "ranged", Body: ranged})
	back, err := os.CreateTemp(t.TempDir(), "blob")
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	id, _ := fl.Lookup(0, "ranged")
	if _, err := back.WriteAt(ranged, 12345); err != nil {
		t.Fatal(err)
	}
	l := &fileRangeLayer{fakeLayer: fl, f: back, offs: map[index.ID]int64{id: 12345}}
	dir := t.TempDir()
	v, _ := upOpen(t, dir, []Layer{l})
	for name, want := range map[string][]byte{"sparse": sparse, "ranged": ranged} {
		a, _ := v.Lookup(Root, name)
		ro, _ := v.Open(a.Node)
		if _, _, ok := ro.FileRange(); ok != (name == "ranged") {
			t.Errorf("%s: lower file range %v", name, ok)
		}
		if err := upDo(v, "chmod "+name+" 600"); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: upper copy differs (%d bytes, %v)", name, len(got), err)
		}
		if _, _, ok := ro.FileRange(); ok {
			t.Errorf("%s: file range after copy-up", name)
		}
		ro.(io.Closer).Close()
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dir, "sparse"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 >= int64(len(sparse)) {
		t.Errorf("sparse copy-up uses %d blocks: no holes", st.Blocks)
	}
}

func TestUpperRenameDirectoryWithHardlinks(t *testing.T) {
	t.Parallel()
	// A file with a name inside the moved directory and one outside stays one file.
	layers := layersOf(members{file("a/f", "data"), hardlink("out", "a/f"), file("a/sub/x", "1")})
	v, _ := upOpen(t, upTempDir(t), layers)
	f0, _ := lookupPath(v, "a/f")
	for _, st := range []string{"mv a b", "write out@0=D"} {
		if err := upDo(v, st); err != nil {
			t.Fatalf("%s: %v", st, err)
		}
	}
	for _, p := range []string{"b/f", "out"} {
		a, err := lookupPath(v, p)
		if err != nil || a.Node != f0.Node || a.Nlink != 2 {
			t.Errorf("%s: %+v %v", p, a, err)
		}
	}
	want := []string{". dir", "b dir", "b/f file =Data nlink=2", "b/sub dir", "b/sub/x file =1", "out file =Data nlink=2"}
	if got := upPaths(upRender(t, v)); !slices.Equal(got, want) {
		t.Errorf("view:\n%s", strings.Join(got, "\n"))
	}
}

// TestUpperDeepPaths changes a file below a path longer than PATH_MAX (copying the whole chain of
// directories up) and moves the top directory.
func TestUpperDeepPaths(t *testing.T) {
	t.Parallel()
	comp := strings.Repeat("d", 20)
	deep := strings.Repeat(comp+"/", 250) + "f"
	dir := t.TempDir()
	v, _ := upOpen(t, dir, layersOf(members{file(deep, "x")}))
	if err := upDo(v, "write "+deep+"@1=y"); err != nil {
		t.Fatal(err)
	}
	if err := upDo(v, "mv "+comp+" top"); err != nil {
		t.Fatal(err)
	}
	moved := "top/" + strings.Repeat(comp+"/", 249) + "f"
	a, err := lookupPath(v, moved)
	if err != nil || a.Size != 2 {
		t.Fatalf("moved file: %+v %v", a, err)
	}
	if err := upDo(v, "write "+moved+"@0=z"); err != nil {
		t.Fatal(err)
	}
	f, _ := v.Open(a.Node)
	buf := make([]byte, 2)
	if n, _ := f.ReadAt(buf, 0); string(buf[:n]) != "zy" {
		t.Errorf("data %q", buf[:n])
	}
	f.(io.Closer).Close()
}

// TestUpperTruncateCopiesLess checks that a lower file opened with O_TRUNC, or truncated, is copied up
// without the data that goes away.
func TestUpperTruncateCopiesLess(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("x"), 1<<20)
	cl := &countLayer{Layer: newFakeLayer(tartest.Member{Name: "a", Body: data}, tartest.Member{Name: "b", Body: data}), mu: make(chan struct{}, 1)}
	v, _ := upOpen(t, t.TempDir(), []Layer{cl})
	a, _ := v.Lookup(Root, "a")
	f, err := v.OpenFile(a.Node, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if f.Size() != 0 {
		t.Errorf("size after O_TRUNC: %d", f.Size())
	}
	f.Close()
	if err := upDo(v, "trunc b 10"); err != nil {
		t.Fatal(err)
	}
	if cl.bytes != 10 {
		t.Errorf("read %d bytes of the layer, want 10", cl.bytes)
	}
	want := []string{". dir", "a file =", "b file =xxxxxxxxxx"}
	if got := upPaths(upRender(t, v)); !slices.Equal(got, want) {
		t.Errorf("view:\n%s", strings.Join(got, "\n"))
	}
}
