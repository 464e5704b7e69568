package overlay

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/imgfs/imgfs/internal/tartest"
)

// BenchmarkUpperLookup looks names up in the 100,000-entry directory of flatLayers(3) once it has an
// upper directory (a file was created in it): lower names fall through the upper directory, upper
// names are found in it.
func BenchmarkUpperLookup(b *testing.B) {
	v, _ := upOpen(b, filepath.Join(b.TempDir(), "u"), flatLayers(3))
	flat, err := v.Lookup(Root, "flat")
	if err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		if _, f, err := v.Create(flat.Node, fmt.Sprintf("up-%03d", i), 0o644, upCaller); err != nil {
			b.Fatal(err)
		} else {
			f.Close()
		}
	}
	for _, tc := range []struct{ name, format string }{{"lower", "file-%07d"}, {"upper", "up-%03d"}} {
		b.Run(tc.name, func(b *testing.B) {
			names := make([]string, 100)
			for i := range names {
				n := i
				if tc.name == "lower" {
					n = i*1000 + 1
				}
				names[i] = fmt.Sprintf(tc.format, n)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := v.Lookup(flat.Node, names[i%len(names)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkUpperReadDir lists the 100,000-entry directory of flatLayers(3) merged with 1,000 upper
// entries and 1,000 whiteouts.
func BenchmarkUpperReadDir(b *testing.B) {
	v, _ := upOpen(b, filepath.Join(b.TempDir(), "u"), flatLayers(3))
	flat, _ := v.Lookup(Root, "flat")
	for i := range 1000 {
		if _, f, err := v.Create(flat.Node, fmt.Sprintf("up-%04d", i), 0o644, upCaller); err != nil {
			b.Fatal(err)
		} else {
			f.Close()
		}
		if err := v.Unlink(flat.Node, fmt.Sprintf("file-%07d", i*100+1)); err != nil {
			b.Fatal(err)
		}
	}
	d, _ := v.ReadDir(flat.Node)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.ReadDir(flat.Node); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(d.Len()), "ns/entry")
}

// BenchmarkUpperCopyUp copies a 16 MiB lower file up (chmod of a fresh copy each round).
func BenchmarkUpperCopyUp(b *testing.B) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<20)
	var ms members
	for i := range 64 {
		ms = append(ms, tartest.Member{Name: fmt.Sprintf("f%d", i), Body: data})
	}
	layers := layersOf(ms)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	i := 0
	var v *View
	for b.Loop() {
		if i%len(ms) == 0 {
			b.StopTimer()
			v, _ = upOpen(b, filepath.Join(b.TempDir(), "u"), layers)
			b.StartTimer()
		}
		if err := upDo(v, fmt.Sprintf("chmod f%d 600", i%len(ms))); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
