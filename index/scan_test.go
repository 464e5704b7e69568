package index

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgfs/imgfs/internal/tartest"
)

// scanMembers returns the members Scan reports and the data it hands out for each.
func scanMembers(t *testing.T, l *Layer, readData bool) ([]Member, [][]byte) {
	t.Helper()
	var ms []Member
	var data [][]byte
	err := l.Scan(context.Background(), func(m *Member, r io.Reader) error {
		ms = append(ms, *m)
		var b []byte
		if readData {
			var err error
			if b, err = io.ReadAll(r); err != nil {
				return err
			}
		}
		data = append(data, b)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return ms, data
}

func TestLayerScanMembers(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 40000) // larger than the scanner's buffer
	raw := tartest.Tar(t,
		tartest.Dir("./etc/"),
		tartest.File("./etc/passwd", "root:x:0:0"),
		tartest.Member{Name: "/etc/times", Body: []byte("t"), Atime: time.Unix(1700000001, 5e8), Ctime: time.Unix(1700000002, 0)},
		tartest.File("etc/passwd", "replaced"), // the same path again: the table keeps this one
		tartest.File("big.bin", string(big)),
		tartest.Hardlink("etc/link", "etc/passwd"),
		tartest.Symlink("etc/sym", "passwd"),
		tartest.File("../outside", "dropped"),
	)
	for name, data := range map[string][]byte{"plain": raw, "gzip": tartest.Gzip(t, raw), "zstd": tartest.Zstd(t, raw)} {
		t.Run(name, func(t *testing.T) {
			l := openBytes(t, data, Options{})
			ms, got := scanMembers(t, l, true)
			wantNames := []string{"./etc/", "./etc/passwd", "/etc/times", "etc/passwd", "big.bin", "etc/link", "etc/sym", "../outside"}
			if len(ms) != len(wantNames) {
				t.Fatalf("%d members, want %d", len(ms), len(wantNames))
			}
			for i, m := range ms {
				if m.Name != wantNames[i] {
					t.Errorf("member %d: name %q, want %q", i, m.Name, wantNames[i])
				}
			}
			if string(got[1]) != "root:x:0:0" || string(got[3]) != "replaced" || !bytes.Equal(got[4], big) || string(got[7]) != "dropped" {
				t.Errorf("data: %q %q (big equal %v) %q", got[1], got[3], bytes.Equal(got[4], big), got[7])
			}
			// The kept members' offsets are the table's.
			for _, i := range []int{3, 4} {
				p, _ := CleanPath(ms[i].Name)
				id := lookupPath(t, l.Table, p)
				if e := l.Entry(id); e.Offset != ms[i].Offset {
					t.Errorf("%s: offset %d, table %d", p, ms[i].Offset, e.Offset)
				}
			}
			if ms[1].Offset == ms[3].Offset || ms[1].Header >= ms[1].Offset {
				t.Errorf("offsets: %+v %+v", ms[1], ms[3])
			}
			tm := ms[2]
			if !tm.HasAtime || tm.AtimeSec != 1700000001 || tm.AtimeNsec != 500000000 || !tm.HasCtime || tm.CtimeSec != 1700000002 || ms[1].HasAtime {
				t.Errorf("times: %+v", tm)
			}
			if ms[5].Type != TypeHardlink || ms[5].LinkName != "etc/passwd" || ms[6].Type != TypeSymlink || ms[6].LinkName != "passwd" {
				t.Errorf("links: %+v %+v", ms[5], ms[6])
			}
		})
	}
}

func TestLayerScanSkipsUnreadData(t *testing.T) {
	raw := tartest.Tar(t, tartest.File("a", string(bytes.Repeat([]byte("x"), 300000))), tartest.File("b", "bee"))
	l := openBytes(t, tartest.Gzip(t, raw), Options{})
	// Read a few bytes of a, nothing of b: the scan goes on at the next header.
	var names []string
	err := l.Scan(context.Background(), func(m *Member, r io.Reader) error {
		names = append(names, m.Name)
		if m.Name == "a" {
			var p [10]byte
			if _, err := io.ReadFull(r, p[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || len(names) != 2 || names[1] != "b" {
		t.Fatalf("Scan: %v, %v", names, err)
	}
	stop := errors.New("stop")
	if err := l.Scan(context.Background(), func(*Member, io.Reader) error { return stop }); err != stop {
		t.Fatalf("fn's error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Scan(ctx, func(*Member, io.Reader) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}

func TestLayerScanSparse(t *testing.T) {
	for _, name := range []string{"gnu-sparse.tar", "pax-sparse-0.0.tar", "pax-sparse-0.1.tar", "pax-sparse-1.0.tar"} {
		t.Run(name, func(t *testing.T) {
			l := openBytes(t, readFixture(t, name), Options{})
			ms, got := scanMembers(t, l, true)
			seen := 0
			for i, m := range ms {
				want := map[string][]byte{"sparse.bin": sparseContent(), "small.bin": smallContent()}[m.Name]
				if want == nil {
					continue
				}
				seen++
				if !m.Sparse || m.Size != int64(len(want)) || !bytes.Equal(got[i], want) {
					t.Errorf("%s: sparse %v size %d, content equal %v", m.Name, m.Sparse, m.Size, bytes.Equal(got[i], want))
				}
			}
			if seen != 2 {
				t.Errorf("%d sparse members seen", seen)
			}
		})
	}
}

func TestLayerScanCleanPath(t *testing.T) {
	for in, want := range map[string]string{"./a//b/": "a/b", "/": "", "a/../b": "b"} {
		if got, ok := CleanPath(in); !ok || got != want {
			t.Errorf("CleanPath(%q) = %q, %v", in, got, ok)
		}
	}
	if _, ok := CleanPath("../x"); ok {
		t.Errorf("CleanPath(../x) ok")
	}
}

// FuzzLayerScan checks Scan on any tar the index accepts: it reports what the table was built from,
// so it never fails where Open succeeded, and the data it hands out for the member the table kept at
// a path is what Layer.ReadAt reads.
func FuzzLayerScan(f *testing.F) {
	for _, name := range []string{"gnu-sparse.tar", "pax-sparse-1.0.tar", "pax-longnames.tar", "gnu-longnames.tar"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(tartest.Tar(f, tartest.File("a", "x"), tartest.File("a", "yy"), tartest.Hardlink("b", "a"),
		tartest.Member{Name: "t", Body: []byte("t"), Atime: time.Unix(5, 0)}))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Open(context.Background(), Blob{R: bytes.NewReader(data), Size: int64(len(data))}, Options{})
		if err != nil {
			return
		}
		defer l.Close()
		// A sparse member can claim any size; reading it is the point. Keep the inputs small.
		var total int64
		for id := ID(0); int(id) < l.Len(); id++ {
			total += l.Entry(id).Size
		}
		if total > 16<<20 {
			return
		}
		buf := make([]byte, 1<<16)
		err = l.Scan(context.Background(), func(m *Member, r io.Reader) error {
			got, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			if m.Type == TypeRegular && int64(len(got)) != m.Size {
				t.Fatalf("%q: %d data bytes, size %d", m.Name, len(got), m.Size)
			}
			p, ok := CleanPath(m.Name)
			if !ok || m.Type != TypeRegular {
				return nil
			}
			id := ID(0)
			for _, c := range strings.Split(p, "/") {
				if id, ok = l.Lookup(id, c); !ok {
					return nil
				}
			}
			e := l.Entry(id)
			if e.Type != TypeRegular || e.Offset != m.Offset {
				return nil
			}
			want := make([]byte, 0, e.Size)
			for off := int64(0); off < e.Size; {
				n, err := l.ReadAt(id, buf, off)
				want = append(want, buf[:n]...)
				off += int64(n)
				if err != nil {
					break
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%q: Scan's data differs from ReadAt's (%d and %d bytes)", m.Name, len(got), len(want))
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Scan of a layer Open accepted: %v", err)
		}
	})
}
