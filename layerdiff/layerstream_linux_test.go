package layerdiff

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/fakelayer"
	"github.com/imgfs/imgfs/internal/ovlfmt"
	"github.com/imgfs/imgfs/internal/tartest"
	"github.com/imgfs/imgfs/overlay"
	"golang.org/x/sys/unix"
)

// clWrite returns the layer of upper directory up over lower.
func clWrite(t *testing.T, lower *overlay.View, up string, opts Options) ([]byte, Stats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := Write(context.Background(), &buf, lower, up, opts)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), st
}

// clMembers returns the headers of a tar stream and the data of its regular files.
func clMembers(t *testing.T, b []byte) ([]*tar.Header, [][]byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var hs []*tar.Header
	var data [][]byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs, data
		}
		if err != nil {
			t.Fatal(err)
		}
		d, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
		data = append(data, d)
	}
}

// clListing renders the members of a layer: "d dir/", "f file", "l name -> target", "h name => target",
// "c name 1,3", "b name 8,0", "p name". It checks that whiteouts have the expected header.
func clListing(t *testing.T, b []byte, whMtime time.Time) []string {
	t.Helper()
	hs, _ := clMembers(t, b)
	var out []string
	for _, h := range hs {
		switch h.Typeflag {
		case tar.TypeDir:
			out = append(out, "d "+h.Name)
		case tar.TypeReg:
			if strings.HasPrefix(filepath.Base(h.Name), ovlfmt.WhiteoutPrefix) {
				if h.Size != 0 || h.Mode != 0 || h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(whMtime) {
					t.Errorf("whiteout %s: size %d mode %o owner %d:%d mtime %v", h.Name, h.Size, h.Mode, h.Uid,
						h.Gid, h.ModTime)
				}
			}
			out = append(out, "f "+h.Name)
		case tar.TypeSymlink:
			out = append(out, "l "+h.Name+" -> "+h.Linkname)
		case tar.TypeLink:
			out = append(out, "h "+h.Name+" => "+h.Linkname)
		case tar.TypeChar, tar.TypeBlock:
			out = append(out, fmt.Sprintf("%c %s %d,%d", map[byte]rune{tar.TypeChar: 'c', tar.TypeBlock: 'b'}[h.Typeflag],
				h.Name, h.Devmajor, h.Devminor))
		case tar.TypeFifo:
			out = append(out, "p "+h.Name)
		default:
			out = append(out, fmt.Sprintf("? %s %c", h.Name, h.Typeflag))
		}
	}
	return out
}

func TestWriteLayer(t *testing.T) {
	t.Parallel()
	clRequireRoot(t)
	for _, tc := range clCases {
		t.Run(tc.name, func(t *testing.T) {
			lower, layers := clLower(t, tc.lower...)
			up := clUpper(t, tc.upper...)
			b, st := clWrite(t, lower, up, Options{})
			got := clListing(t, b, time.Unix(0, 0))
			if !slices.Equal(got, tc.layer) {
				t.Errorf("layer:\n got %q\nwant %q", got, tc.layer)
			}
			if st.Entries != len(got) || st.Empty != (len(got) == 0) {
				t.Errorf("stats %+v for %d members", st, len(got))
			}
			if !tc.noKernel {
				clCheckKernel(t, lower, layers, up, b, tc.userxattr)
			}
		})
	}
}

// clCheckKernel compares the view of the lower layers plus layer (read through package index) with
// what the kernel's overlayfs shows for the lower view extracted to a directory with the upper
// directory on top.
func clCheckKernel(t *testing.T, lower *overlay.View, layers []overlay.Layer, up string, layer []byte, userxattr bool) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "layer.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(layer); err != nil {
		t.Fatal(err)
	}
	l, err := index.Open(context.Background(), index.Blob{R: f, Size: int64(len(layer)), File: f}, index.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	v, err := overlay.New(append(slices.Clone(layers), l), overlay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := clViewTree(t, v)

	low := t.TempDir()
	clExtract(t, lower, low)
	mnt := t.TempDir()
	opts := "lowerdir=" + up + ":" + low
	if userxattr {
		opts += ",userxattr"
	}
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, opts); err != nil {
		if err == unix.ENODEV || err == unix.EPERM {
			t.Skipf("no kernel overlayfs here: %v", err)
		}
		t.Fatalf("mount -t overlay -o %s: %v", opts, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Error(err)
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	want := clDiskTree(t, mnt)
	if d := clDiffTrees(want, got); d != "" {
		t.Errorf("the layer over the lower view differs from the kernel's overlay (-kernel +view):\n%s", d)
	}
}

// clDiffTrees describes the differences between two trees.
func clDiffTrees(want, got map[string]string) string {
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		w, wok := want[k]
		g, gok := got[k]
		switch {
		case !gok:
			fmt.Fprintf(&b, "- %q: %s\n", k, w)
		case !wok:
			fmt.Fprintf(&b, "+ %q: %s\n", k, g)
		case w != g:
			fmt.Fprintf(&b, "- %q: %s\n+ %q: %s\n", k, w, k, g)
		}
	}
	return b.String()
}

// clDescribe renders one node of a tree for comparison.
func clDescribe(typ string, mode, uid, gid uint32, sec, nsec int64, data, link string, dev [2]uint32, xs []index.Xattr) string {
	s := fmt.Sprintf("%s %04o %d:%d %d.%09d", typ, mode, uid, gid, sec, nsec)
	switch typ {
	case "f":
		s += fmt.Sprintf(" %q", data)
	case "l":
		s += " -> " + link
	case "c", "b":
		s += fmt.Sprintf(" %d,%d", dev[0], dev[1])
	}
	for _, x := range xs {
		// An empty value cannot travel in a tar (TestEmptyXattrsSkipped): the kernel shows it, a layer not.
		if !changeXattrIgnored(x.Name) && len(x.Value) > 0 {
			s += fmt.Sprintf(" %s=%q", x.Name, x.Value)
		}
	}
	return s
}

// clLinkGroups appends to each name of a group of names of one file the group's other names.
func clLinkGroups(tree map[string]string, groups map[any][]string) {
	for _, names := range groups {
		if len(names) < 2 {
			continue
		}
		slices.Sort(names)
		for _, n := range names {
			tree[n] += " links=" + strings.Join(names, ",")
		}
	}
}

// clDiskTree describes every path below root on disk.
func clDiskTree(t *testing.T, root string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	groups := map[any][]string{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			if err == unix.ENOENT {
				return nil // overlayfs lists whiteouts of directories it does not merge, and hides them
			}
			return err
		}
		typ := map[uint32]string{unix.S_IFREG: "f", unix.S_IFDIR: "d", unix.S_IFLNK: "l", unix.S_IFCHR: "c",
			unix.S_IFBLK: "b", unix.S_IFIFO: "p", unix.S_IFSOCK: "s"}[st.Mode&unix.S_IFMT]
		var data, link string
		switch typ {
		case "f":
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			data = string(b)
		case "l":
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		if typ != "d" && st.Nlink > 1 {
			k := [2]uint64{uint64(st.Dev), st.Ino}
			groups[k] = append(groups[k], rel)
		}
		var xs []index.Xattr
		buf := make([]byte, 64<<10)
		n, err := unix.Llistxattr(p, buf)
		if err != nil {
			return err
		}
		for name := range strings.SplitSeq(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00") {
			if name == "" {
				continue
			}
			v := make([]byte, 64<<10)
			m, err := unix.Lgetxattr(p, name, v)
			if err != nil {
				return fmt.Errorf("%s: %s: %w", p, name, err)
			}
			xs = append(xs, index.Xattr{Name: name, Value: v[:m]})
		}
		slices.SortFunc(xs, func(a, b index.Xattr) int { return strings.Compare(a.Name, b.Name) })
		sec, nsec := st.Mtim.Unix()
		tree[rel] = clDescribe(typ, st.Mode&0o7777, st.Uid, st.Gid, sec, nsec, data, link,
			[2]uint32{unix.Major(st.Rdev), unix.Minor(st.Rdev)}, xs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	clLinkGroups(tree, groups)
	return tree
}

// clTypes names the index types as clDescribe does.
var clTypes = map[index.Type]string{index.TypeRegular: "f", index.TypeDir: "d", index.TypeSymlink: "l",
	index.TypeChar: "c", index.TypeBlock: "b", index.TypeFIFO: "p"}

// clViewTree describes every path below the root of v.
func clViewTree(t *testing.T, v *overlay.View) map[string]string {
	t.Helper()
	tree := map[string]string{}
	groups := map[any][]string{}
	clWalkView(t, v, func(p string, a overlay.Attr) {
		var data, link string
		switch a.Type {
		case index.TypeRegular:
			data = clReadAll(t, v, a)
		case index.TypeSymlink:
			var err error
			if link, err = v.Readlink(a.Node); err != nil {
				t.Fatal(err)
			}
		}
		xs, err := v.Xattrs(a.Node)
		if err != nil {
			t.Fatal(err)
		}
		if a.Nlink > 1 {
			groups[a.Node] = append(groups[a.Node], p)
		}
		tree[p] = clDescribe(clTypes[a.Type], a.Mode, a.UID, a.GID, a.MtimeSec, int64(a.MtimeNsec), data, link,
			[2]uint32{a.Devmajor, a.Devminor}, xs)
	})
	clLinkGroups(tree, groups)
	return tree
}

// clWalkView calls fn for every node below the root of v, parents before children.
func clWalkView(t *testing.T, v *overlay.View, fn func(p string, a overlay.Attr)) {
	t.Helper()
	var walk func(n overlay.Node, dir string)
	walk = func(n overlay.Node, dir string) {
		d, err := v.ReadDir(n)
		if err != nil {
			t.Fatal(err)
		}
		for i := range d.Len() {
			de := d.Entry(i)
			a, err := v.Attr(de.Node)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, de.Name)
			fn(p, a)
			if a.Type == index.TypeDir {
				walk(de.Node, p)
			}
		}
	}
	walk(overlay.Root, "")
}

func clReadAll(t *testing.T, v *overlay.View, a overlay.Attr) string {
	t.Helper()
	f, err := v.Open(a.Node)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, f.Size())
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return string(b)
}

// clExtract writes the tree of v below dst, with its attributes, hard links and xattrs.
func clExtract(t *testing.T, v *overlay.View, dst string) {
	t.Helper()
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	setAttr := func(p string, a overlay.Attr) {
		t.Helper()
		if p != dst {
			check(os.Lchown(p, int(a.UID), int(a.GID)))
		}
		if a.Type != index.TypeSymlink {
			check(unix.Fchmodat(unix.AT_FDCWD, p, a.Mode, 0))
		}
		xs, err := v.Xattrs(a.Node)
		check(err)
		for _, x := range xs {
			check(unix.Lsetxattr(p, x.Name, x.Value, 0))
		}
		ts := unix.Timespec{Sec: a.MtimeSec, Nsec: int64(a.MtimeNsec)}
		check(unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW))
	}
	first := map[overlay.Node]string{}
	var dirs []string
	var dirAttrs []overlay.Attr
	clWalkView(t, v, func(rel string, a overlay.Attr) {
		p := filepath.Join(dst, rel)
		if a.Nlink > 1 {
			if f, ok := first[a.Node]; ok {
				check(os.Link(f, p))
				return
			}
			first[a.Node] = p
		}
		switch a.Type {
		case index.TypeDir:
			check(os.Mkdir(p, 0o700))
			dirs, dirAttrs = append(dirs, p), append(dirAttrs, a)
			return
		case index.TypeRegular:
			check(os.WriteFile(p, []byte(clReadAll(t, v, a)), 0o600))
		case index.TypeSymlink:
			target, err := v.Readlink(a.Node)
			check(err)
			check(os.Symlink(target, p))
		case index.TypeChar, index.TypeBlock:
			mode := uint32(unix.S_IFCHR)
			if a.Type == index.TypeBlock {
				mode = unix.S_IFBLK
			}
			check(unix.Mknod(p, mode|0o600, int(unix.Mkdev(a.Devmajor, a.Devminor))))
		case index.TypeFIFO:
			check(unix.Mkfifo(p, 0o600))
		}
		setAttr(p, a)
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		setAttr(dirs[i], dirAttrs[i])
	}
	a, err := v.Attr(overlay.Root)
	check(err)
	setAttr(dst, a)
}

func TestWriteLayerHeaders(t *testing.T) {
	t.Parallel()
	clRequireRoot(t)
	lower, _ := clLower(t, []tartest.Member{tartest.File("etc/motd", "hello"), tartest.File("etc/gone", "g")})
	up := clUpper(t,
		clEnt{path: "", xattrs: map[string]string{"user.imgfs.base": "sha256:abc"}},
		clEnt{path: "etc", kind: 'd', mode: 0o1775, uid: 3, gid: 4, xattrs: map[string]string{"user.dir": "d"}},
		clEnt{path: "etc/motd", kind: 'f', body: "hello", mode: 0o4711, uid: 70000, gid: 8, mtime: clTS,
			xattrs: map[string]string{"user.bin": "\x00\xff", "trusted.overlay.origin": "o", "user.overlay.x": "x",
				"trusted.imgfs.y": "y"}},
		clW("etc/gone"),
		clEnt{path: "etc/plain", kind: 'f', body: "p", mtime: time.Unix(1700000000, 0)},
	)
	b, _ := clWrite(t, lower, up, Options{})
	hs, data := clMembers(t, b)
	if len(hs) != 4 {
		t.Fatalf("%d members, want 4", len(hs))
	}
	type want struct {
		name     string
		typ      byte
		mode     int64
		uid, gid int
		mtime    time.Time
		pax      map[string]string
		data     string
	}
	for i, w := range []want{
		{"etc/", tar.TypeDir, 0o1775, 3, 4, clT0, map[string]string{"SCHILY.xattr.user.dir": "d"}, ""},
		{"etc/.wh.gone", tar.TypeReg, 0, 0, 0, time.Unix(0, 0), nil, ""},
		// trusted.imgfs.y is content (only *.imgfs.base is imgfs's record); overlay markers are dropped.
		{"etc/motd", tar.TypeReg, 0o4711, 70000, 8, clTS, map[string]string{"SCHILY.xattr.user.bin": "\x00\xff",
			"SCHILY.xattr.trusted.imgfs.y": "y"}, "hello"},
		{"etc/plain", tar.TypeReg, 0o644, 0, 0, time.Unix(1700000000, 0), nil, "p"},
	} {
		h := hs[i]
		if h.Name != w.name || h.Typeflag != w.typ || h.Mode != w.mode || h.Uid != w.uid || h.Gid != w.gid ||
			!h.ModTime.Equal(w.mtime) || string(data[i]) != w.data {
			t.Errorf("member %d: %q %c %o %d:%d %v %q, want %+v", i, h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid,
				h.ModTime, data[i], w)
		}
		if h.Uname != "" || h.Gname != "" || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: uname %q gname %q atime %v ctime %v", h.Name, h.Uname, h.Gname, h.AccessTime, h.ChangeTime)
		}
		if h.Format&(tar.FormatPAX|tar.FormatUSTAR) == 0 {
			t.Errorf("%s: format %v", h.Name, h.Format)
		}
		for k, v := range h.PAXRecords {
			if !strings.HasPrefix(k, "SCHILY.xattr.") {
				if k != "mtime" && k != "uid" {
					t.Errorf("%s: unexpected PAX record %s=%q", h.Name, k, v)
				}
				continue
			}
			if w.pax[k] != v {
				t.Errorf("%s: PAX record %s=%q, want %q", h.Name, k, v, w.pax[k])
			}
		}
		for k, v := range w.pax {
			if h.PAXRecords[k] != v {
				t.Errorf("%s: PAX record %s=%q missing", h.Name, k, v)
			}
		}
	}
	// Nanoseconds are kept (PAX mtime).
	if hs[2].PAXRecords["mtime"] != "1683356889.987654321" {
		t.Errorf("PAX records of etc/motd: %v", hs[2].PAXRecords)
	}
	// Every header block has the ustar magic of a POSIX archive.
	if !bytes.Equal(b[257:263], []byte("ustar\x00")) {
		t.Errorf("magic %q", b[257:265])
	}
}

func TestWriteLayerDeterministic(t *testing.T) {
	t.Parallel()
	clRequireRoot(t)
	lower, _ := clLower(t, []tartest.Member{tartest.File("etc/motd", "hello"), tartest.File("etc/gone", "g")})
	future := time.Date(2030, 1, 1, 0, 0, 0, 5, time.UTC)
	up := clUpper(t,
		clEnt{path: "etc", kind: 'd', mtime: future},
		clEnt{path: "etc/motd", kind: 'f', body: "new", mtime: future},
		clW("etc/gone"),
		clEnt{path: "etc/old", kind: 'f', body: "old", mtime: clTS},
		clEnt{path: "etc/link", kind: 'h', body: "etc/old"},
		clEnt{path: "var/x", kind: 'l', body: "/x", mtime: future},
	)
	sde := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	a, _ := clWrite(t, lower, up, Options{SourceDateEpoch: &sde})
	for range 2 {
		if b, _ := clWrite(t, lower, up, Options{SourceDateEpoch: &sde}); !bytes.Equal(a, b) {
			t.Fatal("two runs with the same SOURCE_DATE_EPOCH differ")
		}
	}
	hs, _ := clMembers(t, a)
	want := map[string]time.Time{"etc/": sde, "etc/.wh.gone": sde, "etc/motd": sde, "etc/old": clTS, "etc/link": clTS,
		"var/": clT0, "var/x": sde}
	if len(hs) != len(want) {
		t.Errorf("%d members, want %d", len(hs), len(want))
	}
	for _, h := range hs {
		if !h.ModTime.Equal(want[h.Name]) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, want[h.Name])
		}
	}
	// Without it, times are kept as they are, and the output is just as stable.
	c, _ := clWrite(t, lower, up, Options{})
	if d, _ := clWrite(t, lower, up, Options{}); !bytes.Equal(c, d) {
		t.Fatal("two runs differ")
	}
	hs, _ = clMembers(t, c)
	if !hs[0].ModTime.Equal(future) || !hs[1].ModTime.Equal(time.Unix(0, 0)) {
		t.Errorf("mtimes without SOURCE_DATE_EPOCH: %v, %v", hs[0].ModTime, hs[1].ModTime)
	}
}

func TestWriteLayerRefuses(t *testing.T) {
	t.Parallel()
	clRequireRoot(t)
	lower, _ := clLower(t, []tartest.Member{tartest.File("a", "a")})
	for _, tc := range []struct {
		name  string
		upper []clEnt
		want  error
	}{
		{"whiteout-prefixed name", []clEnt{clF("d/.wh.x", "")}, overlay.ErrInvalid},
		{"metacopy", []clEnt{{path: "a", kind: 'f', xattrs: map[string]string{"trusted.overlay.metacopy": ""}}},
			ovlfmt.ErrMetacopy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := clUpper(t, tc.upper...)
			if tc.want == ovlfmt.ErrMetacopy {
				// As the kernel makes one: the size of the lower file, and no data blocks.
				if err := os.Truncate(filepath.Join(up, "a"), 1); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Write(context.Background(), io.Discard, lower, up, Options{}); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestWriteLayerCanceled(t *testing.T) {
	t.Parallel()
	clRequireRoot(t)
	up := clUpper(t, clF("a/b", "b"), clF("c", strings.Repeat("x", 1<<20)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Write(ctx, io.Discard, nil, up, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v", err)
	}
	// Canceled while copying data.
	ctx, cancel = context.WithCancel(context.Background())
	w := &clCancelWriter{cancel: cancel, after: 64 << 10}
	if _, err := Write(ctx, w, nil, up, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v", err)
	}
}

// clCancelWriter cancels a context once it has been given more than after bytes.
type clCancelWriter struct {
	cancel func()
	after  int
}

func (w *clCancelWriter) Write(p []byte) (int, error) {
	if w.after -= len(p); w.after < 0 {
		w.cancel()
	}
	return len(p), nil
}

func TestWriteLayerWithoutLower(t *testing.T) {
	t.Parallel()
	clRequireRoot(t)
	up := clUpper(t, clF("etc/motd", "m"), clW("gone"), clOpaque("o"))
	b, st := clWrite(t, nil, up, Options{})
	got := clListing(t, b, time.Unix(0, 0))
	if want := []string{"d etc/", "f etc/motd", "d o/"}; !slices.Equal(got, want) || st.Entries != 3 {
		t.Errorf("got %q (%+v), want %q", got, st, want)
	}
	// An empty upper directory: no member, only the end-of-archive marker.
	b, st = clWrite(t, nil, t.TempDir(), Options{})
	if !st.Empty || st.Entries != 0 || !bytes.Equal(b, make([]byte, 1024)) {
		t.Errorf("empty: %+v, %d bytes", st, len(b))
	}
}

func BenchmarkWriteLayer(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	var ents []clEnt
	for i := range 1000 {
		ents = append(ents, clF(fmt.Sprintf("d%d/f%d", i%20, i), strings.Repeat("x", 4096)))
	}
	lower, _ := clLower(b, []tartest.Member{tartest.File("d1/f1", "x")})
	up := clUpper(b, ents...)
	var w clDiscard
	b.ReportAllocs()
	for b.Loop() {
		w.n = 0
		if _, err := Write(context.Background(), &w, lower, up, Options{}); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(w.n)
	}
}

// TestKernelMadeUpperDirs lets the kernel's overlayfs write the upper directory: random operations
// through a writable mount over a random lower view, with redirect_dir, metacopy and index off (the
// format Changes and WriteLayer read). The layer applied over the lower layers must show what that mount
// showed, and the change set must agree with the lower and merged trees.
func TestKernelMadeUpperDirs(t *testing.T) {
	t.Parallel()
	clRequireRoot(t)
	seeds := 100
	if testing.Short() {
		seeds = 10
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel() // each seed has its own directories and mount
			r := rand.New(rand.NewPCG(uint64(seed), 11))
			var stacks [][]tartest.Member
			var layers []overlay.Layer
			var lower *overlay.View
			for lower == nil || clHasWhiteoutDevice(t, lower) {
				stacks = fakelayer.GenStack(fakelayer.NewRandChooser(r))
				layers = layersOf(stacks...)
				var err error
				if lower, err = overlay.New(layers, overlay.Options{}); err != nil {
					t.Fatal(err)
				}
			}
			low, up, work, mnt := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
			clExtract(t, lower, low)
			opts := "lowerdir=" + low + ",upperdir=" + up + ",workdir=" + work +
				",redirect_dir=off,metacopy=off,index=off,xino=off"
			if err := unix.Mount("overlay", mnt, "overlay", 0, opts); err != nil {
				if err == unix.ENODEV || err == unix.EPERM {
					t.Skipf("no kernel overlayfs here: %v", err)
				}
				t.Fatalf("mount -t overlay -o %s: %v", opts, err)
			}
			mounted := true
			t.Cleanup(func() {
				if mounted {
					unix.Unmount(mnt, unix.MNT_DETACH)
				}
			})
			ops := clRandomOps(r, mnt, 20+r.IntN(100))
			merged := clDiskTree(t, mnt)
			if err := unix.Unmount(mnt, 0); err != nil {
				t.Fatal(err)
			}
			mounted = false
			b, _ := clWrite(t, lower, up, Options{})
			f, err := os.Create(filepath.Join(t.TempDir(), "layer.tar"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write(b); err != nil {
				t.Fatal(err)
			}
			l, err := index.Open(context.Background(), index.Blob{R: f, Size: int64(len(b)), File: f}, index.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			v, err := overlay.New(append(slices.Clone(layers), l), overlay.Options{})
			if err != nil {
				t.Fatal(err)
			}
			noSockets := maps.Clone(merged) // a layer cannot hold them: they are skipped
			maps.DeleteFunc(noSockets, func(_, d string) bool { return strings.HasPrefix(d, "s ") })
			if d := clDiffTrees(noSockets, clViewTree(t, v)); d != "" {
				t.Errorf("the layer over the lower view differs from the kernel's mount (-kernel +view):\n%s", d)
			}
			changes, err := Changes(context.Background(), lower, up)
			if err != nil {
				t.Fatal(err)
			}
			// The change set, like the view and the layer, takes a socket for a whiteout.
			clCheckChanges(t, changes, clDiskTree(t, low), noSockets)
			if t.Failed() {
				t.Logf("lower: %+v\noperations:\n%s\nlayer: %q", stacks, strings.Join(ops, "\n"),
					clListing(t, b, time.Unix(0, 0)))
			}
		})
	}
}

// clHasWhiteoutDevice reports whether v shows a character device 0/0 (a hard link to AUFS metadata
// can): extracted to disk, the kernel would take it for a whiteout.
func clHasWhiteoutDevice(t *testing.T, v *overlay.View) bool {
	found := false
	clWalkView(t, v, func(_ string, a overlay.Attr) {
		found = found || a.Type == index.TypeChar && a.Devmajor == 0 && a.Devminor == 0
	})
	return found
}

// clRandomOps applies n random operations below dir, ignoring the ones that fail, and returns them.
func clRandomOps(r *rand.Rand, dir string, n int) []string {
	names := []string{"a", "b", "c", "d"}
	path := func() string {
		parts := make([]string, 1+r.IntN(3))
		for i := range parts {
			parts[i] = names[r.IntN(len(names))]
		}
		return filepath.Join(parts...)
	}
	var log []string
	for range n {
		p, q := path(), path()
		fp, fq := filepath.Join(dir, p), filepath.Join(dir, q)
		var op string
		var err error
		switch r.IntN(17) {
		case 0:
			op = "write " + p
			_ = os.MkdirAll(filepath.Dir(fp), 0o755)
			err = clWriteFile(fp, os.O_CREATE|os.O_TRUNC, fmt.Sprint("data ", r.IntN(1000)))
		case 1:
			op = "append " + p
			err = clWriteFile(fp, os.O_APPEND, "+")
		case 2:
			mode := []uint32{0o600, 0o755, 0o4711, 0o1777}[r.IntN(4)]
			op = fmt.Sprintf("chmod %o %s", mode, p)
			err = unix.Fchmodat(unix.AT_FDCWD, fp, mode, 0)
		case 3:
			op = "chown " + p
			err = os.Lchown(fp, r.IntN(3), r.IntN(3))
		case 4:
			op = "rm " + p
			err = os.Remove(fp)
		case 5:
			op = "rm -rf " + p
			// os.RemoveAll opens the parent without O_DIRECTORY: it would hang on a FIFO there.
			if _, err = os.Lstat(fp); err == nil {
				err = os.RemoveAll(fp)
			}
		case 6:
			op = "mkdir -p " + p
			err = os.MkdirAll(fp, 0o755)
		case 7:
			op = "mv " + p + " " + q
			err = os.Rename(fp, fq)
		case 8:
			op = "ln " + p + " " + q
			err = os.Link(fp, fq)
		case 9:
			op = "ln -s ../x " + p
			err = os.Symlink("../x", fp)
		case 10:
			op = "mkfifo " + p
			err = unix.Mkfifo(fp, 0o640)
		case 11:
			op = "mknod " + p + " c 1 3"
			err = unix.Mknod(fp, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
		case 12:
			op = "setfattr user.k " + p
			err = unix.Lsetxattr(fp, "user.k", []byte(q), 0)
		case 13:
			op = "touch -h " + p
			ts := unix.NsecToTimespec(int64(r.IntN(1<<30)) * 1e9)
			err = unix.UtimesNanoAt(unix.AT_FDCWD, fp, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
		case 14:
			op = "truncate " + p
			err = os.Truncate(fp, int64(r.IntN(3)))
		case 15:
			op = "setfattr -x user.k " + p
			err = unix.Lremovexattr(fp, "user.k")
		case 16:
			op = "mknod " + p + " s"
			err = unix.Mknod(fp, unix.S_IFSOCK|0o755, 0)
		}
		if err == nil {
			log = append(log, op)
		}
	}
	return log
}

// clWriteFile writes data to file p opened with flags, non-blocking so that a FIFO cannot hang the test.
func clWriteFile(p string, flags int, data string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|flags|unix.O_NONBLOCK, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// clCheckChanges checks a change set against the lower and merged trees (as clDiskTree describes them):
// paths only in the merged tree are added; paths in both are changed when they differ, and may be when
// the upper directory holds them; paths only in the lower tree are deleted when their parent is a
// directory of the merged tree (the root included), and not listed otherwise.
func clCheckChanges(t *testing.T, changes []Change, lower, merged map[string]string) {
	t.Helper()
	if !slices.IsSortedFunc(changes, func(a, b Change) int { return strings.Compare(a.Path, b.Path) }) {
		t.Errorf("changes not sorted: %v", changes)
	}
	strip := func(s string) string { // hard link groups change with other names
		if i := strings.Index(s, " links="); i >= 0 {
			return s[:i]
		}
		return s
	}
	got := map[string]Kind{}
	for _, c := range changes {
		p := strings.TrimPrefix(c.Path, "/")
		if _, dup := got[p]; dup || !strings.HasPrefix(c.Path, "/") {
			t.Errorf("bad or duplicate line %v", c)
		}
		got[p] = c.Kind
	}
	for p, m := range merged {
		l, inLower := lower[p]
		k, listed := got[p]
		switch {
		case !inLower && k != Added:
			t.Errorf("%s only in the merged tree: %q, want A", p, k)
		case inLower && strip(l) != strip(m) && k != Changed:
			t.Errorf("%s differs (%s / %s): %q, want C", p, l, m, k)
		case inLower && listed && k != Changed:
			t.Errorf("%s in both: %q", p, k)
		}
	}
	isDir := func(p string) bool { return p == "." || strings.HasPrefix(merged[p], "d ") }
	for p := range lower {
		if _, ok := merged[p]; ok {
			continue
		}
		k, listed := got[p]
		if isDir(filepath.Dir(p)) && k != Deleted {
			t.Errorf("%s deleted: %q, want D", p, k)
		} else if !isDir(filepath.Dir(p)) && listed {
			t.Errorf("%s in a deleted or replaced subtree is listed as %q", p, k)
		}
	}
	for p, k := range got {
		if _, ok := merged[p]; !ok && k != Deleted {
			t.Errorf("%s listed as %q but not in the merged tree", p, k)
		}
		if k == Added || k == Deleted {
			if parent := filepath.Dir(p); parent != "." {
				if pk := got[parent]; pk != Added && pk != Changed {
					t.Errorf("parent of %s %q is %q", p, k, pk)
				}
			}
		}
	}
}

// BenchmarkWriteLayerLargeFile streams one 64 MiB file: allocations must not grow with its size.
func BenchmarkWriteLayerLargeFile(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	up := clUpper(b, clF("big", ""))
	data := bytes.Repeat([]byte("0123456789abcdef"), 4<<20)
	if err := os.WriteFile(filepath.Join(up, "big"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Write(context.Background(), io.Discard, nil, up, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
