package index

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgfs/imgfs/internal/tartest"
)

// openBytes opens an uncompressed or compressed tar held in memory, without a cache.
func openBytes(t testing.TB, data []byte, opts Options) *Layer {
	t.Helper()
	l, err := Open(context.Background(), Blob{R: bytes.NewReader(data), Size: int64(len(data))}, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	checkTable(t, l.Table)
	return l
}

// logBuffer returns a logger writing text records to a buffer.
func logBuffer() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

// checkTable verifies the table's structural invariants through its public API.
func checkTable(t testing.TB, tb *Table) {
	t.Helper()
	n := tb.Len()
	if n < 1 {
		t.Fatalf("empty table")
	}
	if r := tb.Entry(0); r.Type != TypeDir || r.Parent != 0 || tb.Name(0) != "" || tb.Path(0) != "" {
		t.Fatalf("bad root %+v", r)
	}
	seen := make([]bool, n)
	seen[0] = true
	var hl []ID
	for id := ID(0); int(id) < n; id++ {
		e := tb.Entry(id)
		if e.Type == TypeHardlink {
			hl = append(hl, id)
		}
		if id != 0 {
			if p := tb.Entry(e.Parent); p.Type != TypeDir || e.Parent >= id {
				t.Fatalf("entry %d (%s): parent %d is %v", id, tb.Path(id), e.Parent, p.Type)
			}
			want := tb.Name(id)
			if pp := tb.Path(e.Parent); pp != "" {
				want = pp + "/" + want
			}
			if tb.Path(id) != want {
				t.Fatalf("entry %d: path %q, want %q", id, tb.Path(id), want)
			}
		}
		if e.Type != TypeDir {
			if f, c := tb.Children(id); f != 0 || c != 0 {
				t.Fatalf("non-directory %d has children", id)
			}
			continue
		}
		first, c := tb.Children(id)
		for i := 0; i < c; i++ {
			k := first + ID(i)
			if seen[k] {
				t.Fatalf("entry %d listed twice", k)
			}
			seen[k] = true
			if tb.Entry(k).Parent != id {
				t.Fatalf("child %d of %d has parent %d", k, id, tb.Entry(k).Parent)
			}
			if i > 0 && tb.Name(k-1) >= tb.Name(k) {
				t.Fatalf("children of %d not sorted: %q >= %q", id, tb.Name(k-1), tb.Name(k))
			}
			if got, ok := tb.Lookup(id, tb.Name(k)); !ok || got != k {
				t.Fatalf("Lookup(%d, %q) = %d, %v; want %d", id, tb.Name(k), got, ok, k)
			}
		}
		if _, ok := tb.Lookup(id, "\x00missing"); ok {
			t.Fatalf("Lookup of a missing name succeeded")
		}
	}
	for id, s := range seen {
		if !s {
			t.Fatalf("entry %d unreachable", id)
		}
	}
	if !slices.Equal(tb.Hardlinks(), hl) && !(len(hl) == 0 && len(tb.Hardlinks()) == 0) {
		t.Fatalf("Hardlinks() = %v, want %v", tb.Hardlinks(), hl)
	}
}

// dump lists the table depth first as "path type mode uid:gid size [-> link] [#target] [flags]".
func dump(tb *Table) []string {
	var out []string
	var walk func(id ID)
	walk = func(id ID) {
		e := tb.Entry(id)
		s := fmt.Sprintf("%s %v %o %d:%d %d", "/"+tb.Path(id), e.Type, e.Mode, e.UID, e.GID, e.Size)
		if ln := tb.LinkName(id); ln != "" {
			s += " -> " + ln
		}
		if e.Type == TypeHardlink && e.Link != NoID {
			s += " #/" + tb.Path(e.Link)
		}
		if e.Flags&FlagImplied != 0 {
			s += " implied"
		}
		out = append(out, s)
		first, n := tb.Children(id)
		for i := 0; i < n; i++ {
			walk(first + ID(i))
		}
	}
	walk(0)
	return out
}

func TestBuildTree(t *testing.T) {
	t.Parallel()
	d := func(name string, mode int64) tartest.Member {
		return tartest.Member{Name: name, Type: tar.TypeDir, Mode: mode}
	}
	raw := func(name string, flag byte, body, link string) []byte {
		h := tartest.RawHeader(name, flag, int64(len(body)), link)
		return tartest.Concat(h, tartest.Pad([]byte(body)))
	}
	tests := []struct {
		name  string
		data  func(t *testing.T) []byte
		want  []string
		warns []string // substrings expected in the log
	}{
		{"empty layer", func(t *testing.T) []byte { return tartest.End() }, []string{
			"/ dir 755 0:0 0 implied",
		}, nil},
		{"empty stream", func(t *testing.T) []byte { return nil }, []string{
			"/ dir 755 0:0 0 implied",
		}, nil},
		{"implied parents", func(t *testing.T) []byte {
			return tartest.Tar(t, tartest.File("a/b/c", "xyz"))
		}, []string{
			"/ dir 755 0:0 0 implied",
			"/a dir 755 0:0 0 implied",
			"/a/b dir 755 0:0 0 implied",
			"/a/b/c file 644 0:0 3",
		}, nil},
		{"prefixes and empty components", func(t *testing.T) []byte {
			return tartest.Concat(raw("./x/", '5', "", ""), raw("/x/y", '0', "1", ""),
				raw("x//z/./w", '0', "22", ""), raw("./", '5', "", ""), tartest.End())
		}, []string{
			"/ dir 644 0:0 0",
			"/x dir 644 0:0 0",
			"/x/y file 644 0:0 1",
			"/x/z dir 755 0:0 0 implied",
			"/x/z/w file 644 0:0 2",
		}, nil},
		{"dot-dot refused", func(t *testing.T) []byte {
			return tartest.Concat(raw("../evil", '0', "e", ""), raw("a/../../evil2", '0', "e", ""),
				raw("a/../b", '0', "b", ""), raw("/../c", '0', "c", ""), tartest.End())
		}, []string{
			"/ dir 755 0:0 0 implied",
			"/b file 644 0:0 1",
		}, []string{"outside the root", `name=../evil`, `name=a/../../evil2`, `name=/../c`}},
		{"root member", func(t *testing.T) []byte {
			return tartest.Tar(t, tartest.Member{Name: "./", Type: tar.TypeDir, Mode: 0o700, UID: 5, GID: 6},
				tartest.File("f", ""), tartest.Symlink(".", "/"))
		}, []string{
			"/ dir 700 5:6 0",
			"/f file 644 0:0 0",
		}, []string{"root member that is not a directory"}},
		{"duplicates", func(t *testing.T) []byte {
			return tartest.Tar(t,
				tartest.File("a", "old"), tartest.File("a", "newer"),
				d("d", 0o755), tartest.File("d/x", "x"), d("d", 0o700),
				d("e", 0o755), tartest.File("e/x", "x"), tartest.File("e", "file"), tartest.File("e", "file2"),
				d("g", 0o755), tartest.File("g/x", "x"), tartest.Symlink("g", "target"), tartest.File("g/y", "y"))
		}, []string{
			"/ dir 755 0:0 0 implied",
			"/a file 644 0:0 5",
			"/d dir 700 0:0 0",
			"/d/x file 644 0:0 1",
			"/e file 644 0:0 5",
			"/g symlink 644 0:0 0 -> target",
		}, []string{"dropping a member below a non-directory"}},
		{"non-directory parent", func(t *testing.T) []byte {
			// Extraction cannot create p/q below the file p: the file stays. umoci writes whiteouts
			// like this under a path that became a file in the same layer.
			return tartest.Tar(t, tartest.File("p", "file"), tartest.File("p/q", "q"), tartest.Whiteout("p", "child"))
		}, []string{
			"/ dir 755 0:0 0 implied",
			"/p file 644 0:0 4",
		}, []string{"dropping a member below a non-directory"}},
		{"hardlinks", func(t *testing.T) []byte {
			return tartest.Tar(t,
				tartest.File("f", "data"),
				tartest.Hardlink("h1", "f"),
				tartest.Hardlink("h2", "h1"),
				tartest.Hardlink("h3", "lower/x"),
				tartest.Hardlink("h4", "./h3"),
				tartest.Dir("dir"),
				tartest.Hardlink("hd", "dir"),
				tartest.Hardlink("hr", "/"),
				tartest.Hardlink("f", "f"),
				tartest.Hardlink("h5", "/f"),
				tartest.Hardlink("h6", "../f"),
				tartest.Hardlink("h7", "later"),
				tartest.File("later", "l"))
		}, []string{
			"/ dir 755 0:0 0 implied",
			"/dir dir 755 0:0 0",
			"/f file 644 0:0 4",
			"/h1 hardlink 644 0:0 0 -> f #/f",
			"/h2 hardlink 644 0:0 0 -> h1 #/f",
			"/h3 hardlink 644 0:0 0 -> lower/x",
			"/h4 hardlink 644 0:0 0 -> lower/x",
			"/h5 hardlink 644 0:0 0 -> f #/f",
			"/h7 hardlink 644 0:0 0 -> later",
			"/later file 644 0:0 1",
		}, []string{"hardlink to a directory", "hardlink to itself", "target outside the root"}},
		{"hardlink target replaced", func(t *testing.T) []byte {
			return tartest.Tar(t,
				tartest.File("f", "old"), tartest.Hardlink("h", "f"), tartest.Hardlink("i", "f"),
				tartest.File("f", "newer"),
				tartest.Dir("g"), tartest.File("g/t", "gt"), tartest.Hardlink("k", "g/t"), tartest.File("g", "G"))
		}, []string{
			"/ dir 755 0:0 0 implied",
			"/f file 644 0:0 5",
			"/g file 644 0:0 1",
			"/h file 644 0:0 3",
			"/i hardlink 644 0:0 0 -> f #/h",
			"/k file 644 0:0 2",
		}, nil},
		{"bytewise order", func(t *testing.T) []byte {
			return tartest.Tar(t, tartest.File("b", ""), tartest.File("B", ""), tartest.File("a b", ""),
				tartest.File("\xc3\xa9", ""), tartest.File("a", ""), tartest.File("a\\b", ""))
		}, []string{
			"/ dir 755 0:0 0 implied",
			"/B file 644 0:0 0",
			"/a file 644 0:0 0",
			"/a b file 644 0:0 0",
			"/a\\b file 644 0:0 0",
			"/b file 644 0:0 0",
			"/\xc3\xa9 file 644 0:0 0",
		}, nil},
		{"other types", func(t *testing.T) []byte {
			return tartest.Tar(t,
				tartest.Member{Name: "dev/null", Type: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666},
				tartest.Member{Name: "dev/sda", Type: tar.TypeBlock, Devmajor: 8, Devminor: 0, Mode: 0o660},
				tartest.Member{Name: "p", Type: tar.TypeFifo, Mode: 0o4755},
				tartest.Symlink("s", "../../etc/passwd"), tartest.Symlink("t", "/abs"))
		}, []string{
			"/ dir 755 0:0 0 implied",
			"/dev dir 755 0:0 0 implied",
			"/dev/null char 666 0:0 0",
			"/dev/sda block 660 0:0 0",
			"/p fifo 4755 0:0 0",
			"/s symlink 644 0:0 0 -> ../../etc/passwd",
			"/t symlink 644 0:0 0 -> /abs",
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, buf := logBuffer()
			l := openBytes(t, tt.data(t), Options{Logger: log})
			got := dump(l.Table)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for _, w := range tt.warns {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("log lacks %q:\n%s", w, buf.String())
				}
			}
		})
	}
}

func TestBuildData(t *testing.T) {
	t.Parallel()
	mt := time.Date(1960, 5, 6, 7, 8, 9, 987654321, time.UTC)
	data := tartest.Tar(t,
		tartest.File("f", "old"), tartest.Hardlink("h", "f"), tartest.File("f", "newer"),
		tartest.Member{Name: "x", Body: []byte("hello"), Mtime: mt, UID: 1 << 21, GID: 7,
			Xattrs: map[string]string{"user.b": "2", "security.capability": "\x01\x02"}},
		tartest.Dir("sub"), tartest.Hardlink("sub/hx", "x"))
	l := openBytes(t, data, Options{})
	read := func(path string) string {
		id := lookupPath(t, l.Table, path)
		buf := make([]byte, 100)
		n, err := l.ReadAt(id, buf, 0)
		if err != io.EOF {
			t.Fatalf("ReadAt %s: %v", path, err)
		}
		return string(buf[:n])
	}
	for path, want := range map[string]string{"f": "newer", "h": "old", "x": "hello", "sub/hx": "hello"} {
		if got := read(path); got != want {
			t.Errorf("%s reads %q, want %q", path, got, want)
		}
	}
	x := lookupPath(t, l.Table, "x")
	e := l.Entry(x)
	if e.MtimeSec != mt.Unix() || e.MtimeNsec != 987654321 || e.UID != 1<<21 || e.GID != 7 || e.Flags&FlagXattrs == 0 {
		t.Errorf("entry x: %+v", e)
	}
	xs := l.Xattrs(x)
	if len(xs) != 2 || xs[0].Name != "security.capability" || string(xs[0].Value) != "\x01\x02" ||
		xs[1].Name != "user.b" || string(xs[1].Value) != "2" {
		t.Errorf("xattrs %+v", xs)
	}
	if l.Xattrs(lookupPath(t, l.Table, "f")) != nil {
		t.Errorf("f has xattrs")
	}
	// Reads bounded to the member.
	buf := make([]byte, 3)
	if n, err := l.ReadAt(x, buf, 3); n != 2 || err != io.EOF || string(buf[:2]) != "lo" {
		t.Errorf("ReadAt(x, 3, off 3) = %d, %v, %q", n, err, buf[:n])
	}
	if n, err := l.ReadAt(x, buf, 1); n != 3 || err != nil || string(buf) != "ell" {
		t.Errorf("ReadAt(x, 3, off 1) = %d, %v, %q", n, err, buf[:n])
	}
	if n, err := l.ReadAt(x, buf, 5); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v", n, err)
	}
	if _, err := l.ReadAt(lookupPath(t, l.Table, "sub"), buf, 0); err == nil {
		t.Errorf("ReadAt of a directory succeeded")
	}
	if _, err := l.ReadAt(NoID, buf, 0); err == nil {
		t.Errorf("ReadAt of NoID succeeded")
	}
	if _, _, ok := l.FileRange(x); ok {
		t.Errorf("FileRange without a file")
	}
}

// lookupPath resolves a path through Lookup.
func lookupPath(t testing.TB, tb *Table, p string) ID {
	t.Helper()
	id := ID(0)
	for _, c := range strings.Split(p, "/") {
		next, ok := tb.Lookup(id, c)
		if !ok {
			t.Fatalf("no %q in %q", c, p)
		}
		id = next
	}
	return id
}

func TestBuildSparse(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"gnu-sparse.tar", "pax-sparse-0.0.tar", "pax-sparse-0.1.tar", "pax-sparse-1.0.tar"} {
		t.Run(name, func(t *testing.T) {
			l := openBytes(t, readFixture(t, name), Options{})
			for path, want := range map[string][]byte{"sparse.bin": sparseContent(), "small.bin": smallContent()} {
				id := lookupPath(t, l.Table, path)
				e := l.Entry(id)
				if e.Flags&FlagSparse == 0 || e.Size != int64(len(want)) || len(l.Sparse(id)) == 0 {
					t.Fatalf("%s: %+v, map %v", path, e, l.Sparse(id))
				}
				if _, _, ok := l.FileRange(id); ok {
					t.Errorf("FileRange of a sparse file")
				}
				// Whole file, then windows that straddle region edges.
				got := make([]byte, len(want)+10)
				n, err := l.ReadAt(id, got, 0)
				if n != len(want) || err != io.EOF || !bytes.Equal(got[:n], want) {
					t.Fatalf("%s: whole read %d, %v, equal %v", path, n, err, bytes.Equal(got[:n], want))
				}
				for _, off := range []int64{0, 1, 511, 512, 4095, 4096, 4100, 8191, 8192, 9000, 65535, 200000, 500511, 1<<20 - 7} {
					if off >= int64(len(want)) {
						continue
					}
					for _, size := range []int{1, 100, 513, 5000} {
						buf := bytes.Repeat([]byte{0xaa}, size)
						n, err := l.ReadAt(id, buf, off)
						end := min(off+int64(size), int64(len(want)))
						if n != int(end-off) || !bytes.Equal(buf[:n], want[off:end]) {
							t.Fatalf("%s: ReadAt(%d, %d) = %d, %v", path, off, size, n, err)
						}
					}
				}
			}
		})
	}
}

func TestCleanPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"", "", true}, {".", "", true}, {"./", "", true}, {"/", "", true}, {"//", "", true},
		{"a", "a", true}, {"./a/", "a", true}, {"/a//b/./c/", "a/b/c", true},
		{"a/..", "", true}, {"a/../b", "b", true}, {"a/b/../../c", "c", true},
		{"..", "", false}, {"../a", "", false}, {"a/../..", "", false}, {"/..", "", false},
		{"...", "...", true}, {"a/.b/..c", "a/.b/..c", true}, {"a\\..\\b", "a\\..\\b", true},
	}
	for _, tt := range tests {
		got, ok := cleanPath(nil, []byte(tt.in))
		if ok != tt.ok || (ok && string(got) != tt.want) {
			t.Errorf("cleanPath(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// TestBuildManyEntries builds a wide and deep tree and checks the invariants and the hash table's
// growth.
func TestBuildManyEntries(t *testing.T) {
	t.Parallel()
	var ms []tartest.Member
	for i := 0; i < 3000; i++ {
		ms = append(ms, tartest.File(fmt.Sprintf("d%d/s%d/f%d", i%7, i%13, i), ""))
	}
	ms = append(ms, tartest.File(strings.Repeat("deep/", 200)+"leaf", "x"))
	l := openBytes(t, tartest.Tar(t, ms...), Options{})
	if l.Len() != 1+7+7*13+3000+200+1 {
		t.Errorf("Len = %d", l.Len())
	}
}

// TestBuildDeepPaths builds members 30,000 directories deep: the builder stays linear in the path.
func TestBuildDeepPaths(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("a/", 30000)
	var data []byte
	for i := 0; i < 20; i++ {
		name := deep + fmt.Sprint(i)
		hdr := tartest.RawHeader("././@LongLink", 'L', int64(len(name)+1), "")
		data = append(data, hdr...)
		data = append(data, tartest.Pad(append([]byte(name), 0))...)
		data = append(data, tartest.RawHeader("x", '0', 0, "")...)
	}
	data = append(data, tartest.End()...)
	start := time.Now()
	l, err := Open(context.Background(), Blob{R: bytes.NewReader(data), Size: int64(len(data))}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Logf("built in %v", time.Since(start))
	if l.Len() != 1+30000+20 {
		t.Errorf("Len = %d", l.Len())
	}
	if p := l.Path(ID(l.Len() - 1)); p != deep+"9" {
		t.Errorf("deepest path has %d bytes", len(p))
	}
}
