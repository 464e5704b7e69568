package index

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/imgfs/imgfs/internal/tartest"
)

// sparseRegions is the layout of testdata's sparse.bin (1 MiB, made by GNU tar from a real sparse file).
var sparseRegions = [][2]int64{{0, 512}, {8192, 700}, {65536, 1024}, {200000, 100}, {300032, 512},
	{500000, 2048}, {900000, 33}}

// sparseContent is the logical content of sparse.bin.
func sparseContent() []byte {
	b := make([]byte, 1<<20)
	for i, r := range sparseRegions {
		for j := int64(0); j < r[1]; j++ {
			b[r[0]+j] = byte((int(j)*7+i*13)%251 + 1)
		}
	}
	return b
}

func smallContent() []byte {
	b := make([]byte, 10000)
	copy(b[4096:], "hello sparse world")
	return b
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawHeader returns a ustar header block for name, modified by edit, with its checksum fixed afterwards
// (unsigned sum, or the signed sum when signed is set).
func rawHeader(name string, flag byte, size int64, signed bool, edit func(b []byte)) []byte {
	b := tartest.RawHeader(name, flag, size, "")
	if edit != nil {
		edit(b)
	}
	fixChecksum(b, signed)
	return b
}

func fixChecksum(b []byte, signed bool) {
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b[:512] {
		if signed {
			sum += int64(int8(c))
		} else {
			sum += int64(c)
		}
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum&0o777777))
}

func base256(field []byte, v int64) {
	for i := len(field) - 1; i >= 0; i-- {
		field[i] = byte(v)
		v >>= 8
	}
	field[0] |= 0x80
}

func TestScanFixtures(t *testing.T) {
	t.Parallel()
	mtime := time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)
	long := strings.Repeat("d", 60) + "/" + strings.Repeat("e", 60)
	tests := []struct {
		name  string
		data  func(t *testing.T) []byte
		check func(t *testing.T, ms []scanned)
	}{
		{"pax long name and sub-second mtime", func(t *testing.T) []byte {
			return tartest.Tar(t,
				tartest.Member{Name: strings.Repeat("a", 150) + "/" + strings.Repeat("b", 120), Body: []byte("x"),
					Mtime: mtime, Format: tar.FormatPAX},
				tartest.Member{Name: "l", Type: tar.TypeSymlink, Linkname: strings.Repeat("t", 300), Format: tar.FormatPAX})
		}, func(t *testing.T, ms []scanned) {
			if ms[0].Name != strings.Repeat("a", 150)+"/"+strings.Repeat("b", 120) || ms[0].Size != 1 {
				t.Errorf("member 0: %+v", ms[0])
			}
			if ms[0].Sec != mtime.Unix() || ms[0].Nsec != 123456789 {
				t.Errorf("mtime %d.%d", ms[0].Sec, ms[0].Nsec)
			}
			if ms[1].Link != strings.Repeat("t", 300) || ms[1].Type != TypeSymlink {
				t.Errorf("member 1: %+v", ms[1])
			}
		}},
		{"gnu long names", func(t *testing.T) []byte { return readFixture(t, "gnu-longnames.tar") },
			func(t *testing.T, ms []scanned) {
				if len(ms) != 4 || ms[2].Name != long+"/"+strings.Repeat("f", 90) || ms[2].Size != 18 {
					t.Errorf("%+v", ms)
				}
				if ms[3].Link != strings.Repeat("t", 120) {
					t.Errorf("link %q", ms[3].Link)
				}
			}},
		{"gnu base-256 uid", func(t *testing.T) []byte {
			return tartest.Tar(t, tartest.Member{Name: "f", Body: []byte("abc"), UID: 1 << 30, GID: 3 << 24,
				Format: tar.FormatGNU})
		}, func(t *testing.T, ms []scanned) {
			if ms[0].UID != 1<<30 || ms[0].GID != 3<<24 {
				t.Errorf("uid/gid %d/%d", ms[0].UID, ms[0].GID)
			}
		}},
		{"base-256 size and negative mtime", func(t *testing.T) []byte {
			h := rawHeader("big", '0', 0, false, func(b []byte) {
				base256(b[124:136], 600)
				base256(b[136:148], -1)
				b[136] |= 0x40
			})
			return tartest.Concat(h, tartest.Pad(bytes.Repeat([]byte("z"), 600)), tartest.End())
		}, func(t *testing.T, ms []scanned) {
			if ms[0].Size != 600 || ms[0].Offset != 512 || ms[0].Sec != -1 {
				t.Errorf("%+v", ms[0])
			}
		}},
		{"octal with spaces and signed checksum", func(t *testing.T) []byte {
			h := rawHeader("sp\xe9cial", '0', 0, true, func(b []byte) {
				copy(b[100:108], "  755 \x00 ")
				copy(b[124:136], " 5\x00         ")
				copy(b[265:], "\xff\xfe") // bytes with the sign bit
			})
			return tartest.Concat(h, tartest.Pad([]byte("hello")), tartest.End())
		}, func(t *testing.T, ms []scanned) {
			if ms[0].Mode != 0o755 || ms[0].Size != 5 || ms[0].Name != "sp\xe9cial" {
				t.Errorf("%+v", ms[0])
			}
		}},
		{"ustar prefix", func(t *testing.T) []byte {
			h := rawHeader("name", '5', 0, false, func(b []byte) { copy(b[345:], "pre/fix") })
			return tartest.Concat(h, tartest.End())
		}, func(t *testing.T, ms []scanned) {
			if ms[0].Name != "pre/fix/name" || ms[0].Type != TypeDir {
				t.Errorf("%+v", ms[0])
			}
		}},
		{"types", func(t *testing.T) []byte {
			a := tartest.Tar(t,
				tartest.Dir("d/"),
				tartest.Hardlink("h", "d/f"),
				tartest.Member{Name: "c", Type: tar.TypeChar, Devmajor: 1, Devminor: 3},
				tartest.Member{Name: "b", Type: tar.TypeBlock, Devmajor: 8, Devminor: 1},
				tartest.Member{Name: "p", Type: tar.TypeFifo})
			b := tartest.Tar(t,
				tartest.Member{Name: "cont", Type: tar.TypeCont, Body: []byte("7")},
				tartest.File("suid", "s"))
			g := "16 comment=xyzw\n"
			return tartest.Concat(a[:len(a)-1024], rawHeader("g", 'g', int64(len(g)), false, nil),
				tartest.Pad([]byte(g)), b)
		}, func(t *testing.T, ms []scanned) {
			want := []Type{TypeDir, TypeHardlink, TypeChar, TypeBlock, TypeFIFO, TypeRegular, TypeRegular}
			if len(ms) != len(want) {
				t.Fatalf("%d members: %+v", len(ms), ms)
			}
			for i, w := range want {
				if ms[i].Type != w {
					t.Errorf("member %d type %v want %v", i, ms[i].Type, w)
				}
			}
			if ms[2].Major != 1 || ms[2].Minor != 3 || ms[3].Major != 8 {
				t.Errorf("devices %+v %+v", ms[2], ms[3])
			}
		}},
		{"legacy trailing slash dir and skipped types", func(t *testing.T) []byte {
			return tartest.Concat(
				rawHeader("old/", 0, 0, false, nil),
				rawHeader("label", 'V', 0, false, nil),
				rawHeader("multi", 'M', 3, false, nil), tartest.Pad([]byte("abc")),
				rawHeader("f", 0, 2, false, nil), tartest.Pad([]byte("hi")),
				tartest.End())
		}, func(t *testing.T, ms []scanned) {
			if len(ms) != 2 || ms[0].Type != TypeDir || ms[1].Name != "f" || ms[1].Type != TypeRegular {
				t.Errorf("%+v", ms)
			}
		}},
		{"unknown typeflags are regular files", func(t *testing.T) []byte {
			return tartest.Concat(
				rawHeader("q", 'Q', 3, false, nil), tartest.Pad([]byte("abc")),
				rawHeader("z", 'z', 0, false, nil),
				rawHeader("f", '0', 2, false, nil), tartest.Pad([]byte("hi")),
				tartest.End())
		}, func(t *testing.T, ms []scanned) {
			if len(ms) != 3 || ms[0].Name != "q" || ms[0].Type != TypeRegular || ms[0].Flag != 'Q' ||
				ms[0].Size != 3 || ms[1].Type != TypeRegular || ms[1].Flag != 'z' || ms[2].Name != "f" {
				t.Errorf("%+v", ms)
			}
		}},
		{"xattrs", func(t *testing.T) []byte {
			return tartest.Tar(t, tartest.Member{Name: "x", Body: []byte("1"),
				Xattrs: map[string]string{"user.b": "2", "security.capability": "\x01\x00\x00\x02"},
				PAX: map[string]string{
					"LIBARCHIVE.xattr.user.a%3Dz": base64.StdEncoding.EncodeToString([]byte("bin\x00ary")),
					"LIBARCHIVE.xattr.user.raw":   base64.RawStdEncoding.EncodeToString([]byte("xy")),
					"LIBARCHIVE.xattr.user.bad":   "!!!",
				}})
		}, func(t *testing.T, ms []scanned) {
			want := []string{"security.capability=\x01\x00\x00\x02", "user.a=z=bin\x00ary", "user.b=2", "user.raw=xy"}
			if fmt.Sprint(ms[0].Xattrs) != fmt.Sprint(want) {
				t.Errorf("xattrs %q", ms[0].Xattrs)
			}
		}},
		{"empty xattr records delete", func(t *testing.T) []byte {
			// POSIX pax: an empty value deletes the keyword. Go's archive/tar and umoci drop such xattrs.
			recs := tartest.Concat(pax("SCHILY.xattr.user.a", "1"), pax("SCHILY.xattr.user.a", ""),
				pax("SCHILY.xattr.user.e", ""), pax("SCHILY.xattr.user.k", "v"), pax("SCHILY.xattr.user.z", ""),
				pax("SCHILY.xattr.user.z", "back"))
			return tartest.Concat(rawHeader("p", 'x', int64(len(recs)), false, nil), tartest.Pad(recs),
				rawHeader("f", '0', 0, false, nil), tartest.End())
		}, func(t *testing.T, ms []scanned) {
			if want := []string{"user.k=v", "user.z=back"}; fmt.Sprint(ms[0].Xattrs) != fmt.Sprint(want) {
				t.Errorf("xattrs %q, want %q", ms[0].Xattrs, want)
			}
		}},
		{"empty archive", func(t *testing.T) []byte { return tartest.End() },
			func(t *testing.T, ms []scanned) {
				if len(ms) != 0 {
					t.Errorf("%+v", ms)
				}
			}},
		{"clean EOF without end marker", func(t *testing.T) []byte {
			return tartest.Concat(rawHeader("f", '0', 3, false, nil), tartest.Pad([]byte("abc")))
		}, func(t *testing.T, ms []scanned) {
			if len(ms) != 1 {
				t.Errorf("%+v", ms)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.data(t)
			for _, mode := range []scanMode{modeReaderAt, modeReaderAtS, modeReader} {
				ms, err := scanAll(data, mode)
				if err != nil {
					t.Fatalf("mode %d: %v", mode, err)
				}
				tt.check(t, ms)
			}
			diffArchiveTar(t, data)
		})
	}
}

func TestScanSparse(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"gnu-sparse.tar", "pax-sparse-0.0.tar", "pax-sparse-0.1.tar", "pax-sparse-1.0.tar"} {
		t.Run(name, func(t *testing.T) {
			data := readFixture(t, name)
			for _, mode := range []scanMode{modeReaderAt, modeReaderAtS, modeReader} {
				ms, err := scanAll(data, mode)
				if err != nil {
					t.Fatal(err)
				}
				if len(ms) != 2 || ms[0].Name != "sparse.bin" || ms[1].Name != "small.bin" {
					t.Fatalf("members %+v", ms)
				}
				if len(ms[0].Sparse) != len(sparseRegions) {
					t.Fatalf("sparse map %+v", ms[0].Sparse)
				}
				for i, r := range sparseRegions {
					// GNU tar's raw hole detection works in 512-byte blocks.
					start, end := r[0]&^511, (r[0]+r[1]+511)&^511
					if got := ms[0].Sparse[i]; got.Offset != start || got.Length != end-start {
						t.Errorf("region %d: %+v want %v", i, got, r)
					}
				}
				if ms[0].Sec != 1704164645 || ms[0].Size != 1<<20 {
					t.Errorf("mtime/size %d %d", ms[0].Sec, ms[0].Size)
				}
				for i, want := range [][]byte{sparseContent(), smallContent()} {
					got, ok := expand(data, ms[i])
					if !ok || !bytes.Equal(got, want) {
						t.Errorf("member %d: content differs", i)
					}
				}
			}
			diffArchiveTar(t, data)
		})
	}
}

func TestScanErrors(t *testing.T) {
	t.Parallel()
	good := tartest.Tar(t, tartest.File("a", strings.Repeat("x", 1000)), tartest.File("b", "y"))
	badSum := bytes.Clone(good)
	badSum[1536+3] ^= 1 // inside the second header's name
	hugePAX := bytes.Repeat([]byte("x"), maxPAXSize+1)
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"garbage", bytes.Repeat([]byte("garbage!"), 200), ErrNotTar},
		{"short garbage", []byte("hello"), ErrTarTruncated},
		{"truncated header", good[:700], ErrTarTruncated},
		{"truncated data", good[:1000], ErrTarTruncated},
		{"bad checksum later", badSum, ErrTarHeader},
		{"zero block then data", tartest.Concat(make([]byte, 512), good), ErrTarHeader},
		{"bad octal", rawHeader("f", '0', 0, false, func(b []byte) { copy(b[108:116], "12x4567\x00") }), ErrTarHeader},
		{"negative size", rawHeader("f", '0', 0, false, func(b []byte) { base256(b[124:136], -5); b[124] |= 0x40 }),
			ErrTarHeader},
		{"huge pax", tartest.Concat(rawHeader("p", 'x', int64(len(hugePAX)), false, nil), tartest.Pad(hugePAX)),
			ErrTarLimit},
		{"bad pax record", tartest.Concat(rawHeader("p", 'x', 12, false, nil), tartest.Pad([]byte("99 path=abc\n")),
			rawHeader("f", '0', 0, false, nil), tartest.End()), ErrTarHeader},
		{"bad pax uid", tartest.Concat(rawHeader("p", 'x', int64(len(pax("uid", "12a"))), false, nil),
			tartest.Pad(pax("uid", "12a")), rawHeader("f", '0', 0, false, nil), tartest.End()), ErrTarHeader},
		{"long name too long", tartest.Concat(rawHeader("././@LongLink", 'L', maxNameLen+2, false, nil),
			tartest.Pad(bytes.Repeat([]byte("n"), maxNameLen+2)), rawHeader("f", '0', 0, false, nil), tartest.End()),
			ErrTarLimit},
		{"dangling pax", tartest.Concat(rawHeader("p", 'x', int64(len(pax("path", "a"))), false, nil),
			tartest.Pad(pax("path", "a"))), ErrTarTruncated},
		{"too many sparse regions", sparse1x0(t, "300000\n", 0), ErrTarLimit},
		{"sparse map past data", sparse1x0(t, "1\n0\n10\n", 0), ErrTarHeader},
		{"sparse data missing", sparse1x0(t, "1\n0\n2000\n", 512), ErrTarHeader},
		{"sparse regions overlap", sparse1x0(t, "2\n0\n10\n5\n10\n", 512), ErrTarHeader},
		{"sparse region beyond size", sparse1x0(t, "1\n5000\n10\n", 512), ErrTarHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []scanMode{modeReaderAt, modeReaderAtS, modeReader} {
				_, err := scanAll(tt.data, mode)
				if !errors.Is(err, tt.want) {
					t.Fatalf("mode %d: error %.200v, want %v", mode, err, tt.want)
				}
			}
			diffArchiveTar(t, tt.data)
		})
	}
}

// pax returns one PAX record.
func pax(k, v string) []byte {
	rec := fmt.Sprintf(" %s=%s\n", k, v)
	n := len(rec) + len(fmt.Sprint(len(rec)))
	if len(fmt.Sprint(n)) != len(fmt.Sprint(len(rec))) {
		n++
	}
	return []byte(fmt.Sprint(n) + rec)
}

// sparse1x0 builds a PAX GNU sparse 1.0 member of logical size 4096 whose data holds the map text
// followed by extra bytes of data.
func sparse1x0(t *testing.T, mapText string, extra int) []byte {
	t.Helper()
	recs := string(pax("GNU.sparse.major", "1")) + string(pax("GNU.sparse.minor", "0")) +
		string(pax("GNU.sparse.realsize", "4096"))
	data := tartest.Pad([]byte(mapText))
	data = append(data, bytes.Repeat([]byte{'d'}, extra)...)
	return tartest.Concat(rawHeader("p", 'x', int64(len(recs)), false, nil), tartest.Pad([]byte(recs)),
		rawHeader("GNUSparseFile.0/s", '0', int64(len(data)), false, nil), tartest.Pad(data), tartest.End())
}

// TestScanGoTestdata runs the differential check over archive/tar's own test archives when the Go
// source tree is available.
func TestScanGoTestdata(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob(filepath.Join(runtime.GOROOT(), "src", "archive", "tar", "testdata", "*.tar"))
	if len(files) == 0 {
		t.Skip("no Go source tree")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			diffArchiveTar(t, data)
		})
	}
}

// fuzzSeeds returns the fixtures and a few built archives.
func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	files, _ := filepath.Glob(filepath.Join("testdata", "*.tar"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	seeds = append(seeds, tartest.Tar(t,
		tartest.Dir("./d/"), tartest.File("d/f", "hello"), tartest.Symlink("d/l", "../x"),
		tartest.Hardlink("d/h", "d/f"), tartest.Member{Name: "x", Body: []byte("1"), Xattrs: map[string]string{"user.a": "b"}},
		tartest.Member{Name: strings.Repeat("n", 120), Format: tar.FormatGNU, UID: 1 << 25},
		tartest.Member{Name: "c", Type: tar.TypeChar, Devmajor: 4, Devminor: 5}))
	seeds = append(seeds, tartest.Concat(tartest.RawHeader("q", 'Q', 3, ""), tartest.Pad([]byte("abc")), tartest.End()))
	return seeds
}

// FuzzScan checks the scanner against archive/tar on arbitrary input.
func FuzzScan(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			return
		}
		diffArchiveTar(t, data)
	})
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r     *bytes.Reader
	bytes int64
	calls int
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.bytes += int64(n)
	c.calls++
	return n, err
}

// TestScanSkipsData checks that a seekable input is repositioned over large member data instead of
// being read.
func TestScanSkipsData(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte{'b'}, 1<<20)
	var ms []tartest.Member
	for i := 0; i < 50; i++ {
		ms = append(ms, tartest.Member{Name: fmt.Sprintf("big%d", i), Body: big}, tartest.File(fmt.Sprintf("small%d", i), "s"))
	}
	data := tartest.Tar(t, ms...)
	cr := &countingReaderAt{r: bytes.NewReader(data)}
	s := newScannerAt(cr, 0, int64(len(data)))
	n := 0
	for {
		_, err := s.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 100 {
		t.Fatalf("%d members", n)
	}
	if cr.bytes > int64(len(data))/20 {
		t.Errorf("read %d of %d bytes in %d calls", cr.bytes, len(data), cr.calls)
	}
	t.Logf("read %d of %d bytes in %d calls", cr.bytes, len(data), cr.calls)
}
