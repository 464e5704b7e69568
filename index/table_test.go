package index

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgfs/imgfs/compression"
	"github.com/imgfs/imgfs/internal/tartest"
)

const testKey = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// sampleTar has every kind of entry, xattrs, a sparse file and hardlinks.
func sampleTar(t testing.TB) []byte {
	a := tartest.Tar(t,
		tartest.Member{Name: "./", Type: tar.TypeDir, Mode: 0o750},
		tartest.File("etc/passwd", "root:x:0:0\n"),
		tartest.Member{Name: "bin/ping", Body: []byte("ELF"), Mode: 0o4755,
			Xattrs: map[string]string{"security.capability": "\x01\x00\x00\x02"}},
		tartest.Hardlink("bin/ping2", "bin/ping"),
		tartest.Hardlink("bin/lower", "usr/bin/x"),
		tartest.Symlink("lib", "usr/lib"),
		tartest.Member{Name: "dev/null", Type: tar.TypeChar, Devmajor: 1, Devminor: 3},
		tartest.Opaque("var"), tartest.Whiteout("var", "cache"))
	return append(a[:len(a)-1024], readFixture(t, "pax-sparse-1.0.tar")...)
}

func writeSampleTable(t testing.TB, path string, info TableInfo) []byte {
	t.Helper()
	if err := BuildTable(context.Background(), bytes.NewReader(sampleTar(t)), path, info, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixCRCs recomputes both checksums of a table image so that it passes them.
func fixCRCs(b []byte) {
	if len(b) < tableHeaderSize {
		return
	}
	binary.LittleEndian.PutUint32(b[160:], crc32.Checksum(b[tableHeaderSize:], tableCRC))
	binary.LittleEndian.PutUint32(b[252:], crc32.Checksum(b[:252], tableCRC))
}

func TestTableRoundTrip(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "t.table")
	info := TableInfo{Key: testKey, StreamSize: 123, BlobSize: 456}
	writeSampleTable(t, path, info)
	for name, open := range map[string]func(string) (*Table, error){"mapped": OpenTable, "read": ReadTableFile} {
		t.Run(name, func(t *testing.T) {
			tb, err := open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer tb.Close()
			checkTable(t, tb)
			if tb.Info() != info {
				t.Errorf("info %+v", tb.Info())
			}
			if got := dump(tb); len(got) != 15 {
				t.Errorf("dump: %q", got)
			}
			ping := lookupPath(t, tb, "bin/ping")
			if e := tb.Entry(ping); e.Mode != 0o4755 || e.Size != 3 || len(tb.Xattrs(ping)) != 1 {
				t.Errorf("bin/ping: %+v %v", e, tb.Xattrs(ping))
			}
			ping2 := lookupPath(t, tb, "bin/ping2")
			if e := tb.Entry(ping2); e.Link != ping || tb.LinkName(ping2) != "bin/ping" {
				t.Errorf("bin/ping2: %+v", e)
			}
			lower := lookupPath(t, tb, "bin/lower")
			if e := tb.Entry(lower); e.Link != NoID || tb.LinkName(lower) != "usr/bin/x" {
				t.Errorf("bin/lower: %+v", e)
			}
			if hl := tb.Hardlinks(); len(hl) != 2 || hl[0] != lower || hl[1] != ping2 {
				t.Errorf("Hardlinks %v", hl)
			}
			null := lookupPath(t, tb, "dev/null")
			if e := tb.Entry(null); e.Devmajor != 1 || e.Devminor != 3 {
				t.Errorf("dev/null: %+v", e)
			}
			if tb.Entry(0).Mode != 0o750 || tb.Entry(0).Flags&FlagImplied != 0 {
				t.Errorf("root %+v", tb.Entry(0))
			}
			if sp := tb.Sparse(lookupPath(t, tb, "sparse.bin")); len(sp) != len(sparseRegions) {
				t.Errorf("sparse map %v", sp)
			}
			lookupPath(t, tb, "var/.wh..wh..opq")
			lookupPath(t, tb, "var/.wh.cache")
			// Out of range IDs give zero values.
			if tb.Entry(ID(tb.Len())) != (Entry{}) || tb.Name(NoID) != "" || tb.Path(NoID) != "" ||
				tb.Xattrs(NoID) != nil || tb.Sparse(NoID) != nil {
				t.Errorf("out of range accessors")
			}
			if f, n := tb.Children(NoID); f != 0 || n != 0 {
				t.Errorf("Children(NoID)")
			}
			if _, ok := tb.Lookup(NoID, "x"); ok {
				t.Errorf("Lookup(NoID)")
			}
		})
	}
}

func TestTableCorrupt(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "t.table")
	good := writeSampleTable(t, path, TableInfo{Key: testKey})
	tests := []struct {
		name string
		edit func(b []byte) []byte
	}{
		{"empty", func(b []byte) []byte { return nil }},
		{"truncated header", func(b []byte) []byte { return b[:100] }},
		{"truncated body", func(b []byte) []byte { return b[:len(b)-1] }},
		{"bad magic", func(b []byte) []byte { b[0] = 'X'; return b }},
		{"body bit flip", func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b }},
		{"header bit flip", func(b []byte) []byte { b[30] ^= 1; return b }},
		{"other version", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[8:], tableVersion+1)
			fixCRCs(b)
			return b
		}},
		{"section out of range", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[88:], 1<<40)
			fixCRCs(b)
			return b
		}},
		{"entry count mismatch", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[20:], 3)
			fixCRCs(b)
			return b
		}},
		{"root not a directory", func(b []byte) []byte {
			b[tableHeaderSize+4] = byte(TypeRegular)
			fixCRCs(b)
			return b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(path, tt.edit(bytes.Clone(good)), 0o644); err != nil {
				t.Fatal(err)
			}
			if tb, err := OpenTable(path); !errors.Is(err, ErrCorruptTable) {
				tb.Close()
				t.Fatalf("OpenTable: %v", err)
			}
			if _, err := ReadTableFile(path); !errors.Is(err, ErrCorruptTable) {
				t.Fatalf("ReadTableFile: %v", err)
			}
		})
	}
}

// TestTableMalformed opens tables whose checksums are right but whose content is not, and checks that
// every accessor stays safe.
func TestTableMalformed(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "t.table")
	good := writeSampleTable(t, path, TableInfo{})
	for off := tableHeaderSize; off < len(good); off += 7 {
		b := bytes.Clone(good)
		b[off] ^= 0xff
		fixCRCs(b)
		exerciseTable(b)
	}
}

// exerciseTable parses b and calls every accessor on every entry; it must not panic.
func exerciseTable(b []byte) {
	tb, err := parseTable(b)
	if err != nil {
		return
	}
	n := min(tb.Len(), 4096)
	for id := ID(0); int(id) < n+2; id++ {
		e := tb.Entry(id)
		tb.Name(id)
		tb.LinkName(id)
		tb.Path(id)
		tb.Xattrs(id)
		tb.Sparse(id)
		first, c := tb.Children(id)
		if c > 0 {
			tb.Lookup(id, tb.Name(first))
			tb.Lookup(id, "zzz")
		}
		_ = e
	}
	for _, h := range tb.Hardlinks() {
		tb.Entry(h)
	}
	l := &Layer{Table: tb, stream: compression.Plain(Blob{R: bytes.NewReader(make([]byte, 100)), Size: 100})}
	buf := make([]byte, 64)
	for id := ID(0); int(id) < n; id++ {
		l.ReadAt(id, buf, 0)
		l.ReadAt(id, buf, 1<<20)
		l.FileRange(id)
	}
}

// FuzzOpenTable feeds arbitrary bytes to the table parser, as they are and with their checksums
// fixed, and exercises every accessor: nothing may panic.
func FuzzOpenTable(f *testing.F) {
	path := filepath.Join(f.TempDir(), "t.table")
	f.Add(writeSampleTable(f, path, TableInfo{Key: testKey}), false)
	f.Add(writeSampleTable(f, path, TableInfo{}), true)
	f.Add([]byte(tableMagic), true)
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix {
			fixCRCs(b)
		}
		exerciseTable(b)
	})
}
