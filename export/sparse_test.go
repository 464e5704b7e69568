package export

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/imgfs/imgfs/overlay"
)

// testdataSparse is the sparse map of sparse.bin in ../index/testdata's sparse tars (1 MiB, made by GNU
// tar from a real sparse file, which records data in 512-byte blocks): offset and length.
var testdataSparse = [][2]int64{{0, 512}, {8192, 1024}, {65536, 1024}, {199680, 512}, {300032, 512},
	{499712, 2560}, {899584, 512}}

// TestSparseView checks what a view says of a sparse member of every tar sparse format: st_blocks
// from its data only (the 4 KiB blocks the data touches), SEEK_DATA and SEEK_HOLE from its map, and an
// export as a GNU sparse 1.0 member that archive/tar reads back to the same bytes.
func TestSparseView(t *testing.T) {
	t.Parallel()
	// Blocks: a set of 4 KiB block numbers, computed apart from the code under test.
	touched := map[int64]bool{}
	for _, r := range testdataSparse {
		for b := r[0] / 4096; b <= (r[0]+r[1]-1)/4096; b++ {
			touched[b] = true
		}
	}
	wantBlocks := int64(len(touched)) * 8
	for _, name := range []string{"gnu-sparse.tar", "pax-sparse-0.0.tar", "pax-sparse-0.1.tar", "pax-sparse-1.0.tar"} {
		t.Run(name, func(t *testing.T) {
			l := openIndexLayer(t, "../index/testdata/"+name, t.TempDir())
			v := exportView(t, []overlay.Layer{l})
			a, err := v.Lookup(overlay.Root, "sparse.bin")
			if err != nil {
				t.Fatal(err)
			}
			if a.Size != 1<<20 || a.Blocks != wantBlocks {
				t.Errorf("size %d blocks %d, want %d %d", a.Size, a.Blocks, 1<<20, wantBlocks)
			}
			if s, _ := v.Lookup(overlay.Root, "small.bin"); s.Blocks != 8 { // 10000 bytes, data in one block
				t.Errorf("small.bin: blocks %d for %d bytes", s.Blocks, s.Size)
			}
			f, err := v.Open(a.Node)
			if err != nil {
				t.Fatal(err)
			}
			ds := f.(overlay.DataSeeker)
			var got [][2]int64
			for off := int64(0); ; {
				start, ok, err := ds.SeekData(off, false)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				end, ok, err := ds.SeekData(start, true)
				if err != nil || !ok {
					t.Fatalf("SEEK_HOLE at %d: %v %v", start, ok, err)
				}
				got = append(got, [2]int64{start, end - start})
				off = end
			}
			if !equalPairs(got, testdataSparse) {
				t.Errorf("extents %v, want %v", got, testdataSparse)
			}
			for _, tt := range []struct {
				off  int64
				hole bool
				pos  int64
				ok   bool
			}{
				{0, true, 512, true}, {511, false, 511, true}, {512, false, 8192, true}, {512, true, 512, true},
				{900096, false, 0, false}, {900096, true, 900096, true}, {900095, true, 900096, true},
				{899583, false, 899584, true}, {1<<20 - 1, true, 1<<20 - 1, true},
				{1 << 20, false, 0, false}, {1 << 20, true, 0, false}, {-1, false, 0, false},
			} {
				pos, ok, err := ds.SeekData(tt.off, tt.hole)
				if err != nil || ok != tt.ok || ok && pos != tt.pos {
					t.Errorf("SeekData(%d, hole %v) = %d, %v, %v; want %d, %v", tt.off, tt.hole, pos, ok, err, tt.pos, tt.ok)
				}
			}
			want := make([]byte, a.Size)
			if _, err := f.ReadAt(want, 0); err != nil && err != io.EOF {
				t.Fatal(err)
			}

			var out bytes.Buffer
			if _, err := Write(context.Background(), v, &out, Options{}); err != nil {
				t.Fatal(err)
			}
			if out.Len() > 64<<10 {
				t.Errorf("export of %d bytes of data: %d bytes", 4929, out.Len())
			}
			tr := tar.NewReader(&out)
			found := false
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if h.Name != "sparse.bin" {
					continue
				}
				found = true
				data, err := io.ReadAll(tr)
				if err != nil || !bytes.Equal(data, want) || h.Size != a.Size {
					t.Errorf("exported sparse.bin: %d bytes (header %d), equal %v, %v", len(data), h.Size, bytes.Equal(data, want), err)
				}
			}
			if !found {
				t.Errorf("export has no sparse.bin")
			}
		})
	}
}

func equalPairs(a, b [][2]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
