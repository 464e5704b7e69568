package index

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgfs/imgfs/internal/tartest"
)

// spillInputs returns layers that exercise the builder's cold metadata: random stacks of colliding
// paths (duplicates, directories replaced by files, hardlinks to replaced targets, xattrs), the
// testdata tars, and one with more records than the spill keeps in memory.
func spillInputs(t *testing.T) map[string][]byte {
	t.Helper()
	in := map[string][]byte{}
	files, _ := filepath.Glob("testdata/*.tar")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		in[filepath.Base(f)] = b
	}
	names := []string{"a", "a/b", "a/b/c", "b", "b/c", "c", "./a", "/a/b", "a/../c", "../x", ".", "a/./b",
		"d/e/f", "a/b/c/d", "e", "e/f"}
	for s := 0; s < 200; s++ {
		r := rand.New(rand.NewSource(int64(s)))
		var ms []tartest.Member
		for i := 0; i < 3+r.Intn(25); i++ {
			m := tartest.Member{Name: names[r.Intn(len(names))], Mode: int64(r.Intn(0o777)), UID: r.Intn(5)}
			switch r.Intn(7) {
			case 0:
				m.Type = tar.TypeDir
			case 1:
				m.Type, m.Linkname = tar.TypeSymlink, names[r.Intn(len(names))]
			case 2:
				m.Type, m.Linkname = tar.TypeLink, names[r.Intn(len(names))]
			case 3:
				m.Type = tar.TypeFifo
			case 4:
				m.Type, m.Devmajor, m.Devminor = tar.TypeChar, 1, int64(r.Intn(9))
			default:
				m.Body = bytes.Repeat([]byte{'x'}, r.Intn(3000))
			}
			if r.Intn(4) == 0 {
				m.Xattrs = map[string]string{"user.k" + fmt.Sprint(r.Intn(3)): "v"}
			}
			ms = append(ms, m)
		}
		b, err := tartest.Build(ms...)
		if err != nil {
			t.Fatal(err)
		}
		in[fmt.Sprintf("random-%03d", s)] = b
	}
	var ms []tartest.Member
	for i := 0; i < spillMem/coldSize+5000; i++ {
		ms = append(ms, tartest.Member{Name: fmt.Sprintf("d%02d/f%05d", i%50, i), Mode: int64(i % 0o777),
			UID: i, Body: []byte{byte(i)}})
		if i%1000 == 0 {
			ms = append(ms, tartest.Member{Name: fmt.Sprintf("d%02d", i%50), Type: tar.TypeDir, Mode: 0o700})
		}
	}
	b, err := tartest.Build(ms...)
	if err != nil {
		t.Fatal(err)
	}
	in["big"] = b
	return in
}

// TestColdWindowsAgree builds every input with one window and with windows of 3 entries (the bucket
// path, many buckets) and requires the same table bytes; the big input also goes through the spill
// file. The tables themselves are checked against the model and the tar reader by the other tests,
// which run with the default window.
func TestColdWindowsAgree(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	build := func(name string, b []byte, window int) []byte {
		path := filepath.Join(dir, name)
		if err := buildTableWindow(context.Background(), bytes.NewReader(b), path, TableInfo{StreamSize: int64(len(b))}, nil, window); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for name, b := range spillInputs(t) {
		one := build(name+".one", b, 1<<30)
		many := build(name+".many", b, 3)
		if !bytes.Equal(one, many) {
			t.Errorf("%s: the table written through windows of 3 entries differs from the one-window table", name)
		}
		if _, err := parseTable(many); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestSpillFile checks that records beyond spillMem go to the file and come back in order.
func TestSpillFile(t *testing.T) {
	s := spill{dir: t.TempDir()}
	defer s.close()
	n := 3*spillMem/coldSize + 7
	for i := 0; i < n; i++ {
		c := cold{mode: uint32(i), sec: int64(i) << 33, x: uint64(i) * 3, sparseOff: uint32(i + 1)}
		if err := s.put(uint32(n-i), &c); err != nil {
			t.Fatal(err)
		}
	}
	if s.f == nil {
		t.Fatal("no spill file after 3 MiB of records")
	}
	if left, _ := os.ReadDir(s.dir); len(left) != 0 {
		t.Errorf("spill file has a name in %s: %v", s.dir, left)
	}
	for pass := 0; pass < 2; pass++ {
		i := 0
		err := s.each(func(rec []byte) error {
			c := decodeCold(rec[4:])
			if node := uint32(rec[0]) | uint32(rec[1])<<8 | uint32(rec[2])<<16 | uint32(rec[3])<<24; node != uint32(n-i) ||
				c != (cold{mode: uint32(i), sec: int64(i) << 33, x: uint64(i) * 3, sparseOff: uint32(i + 1)}) {
				return fmt.Errorf("record %d: node %d, %+v", i, node, c)
			}
			i++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if i != n {
			t.Fatalf("pass %d: %d records, want %d", pass, i, n)
		}
	}
}
