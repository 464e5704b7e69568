package evidence

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/imgfs/imgfs/internal/fakelayer"
	"github.com/imgfs/imgfs/internal/tartest"
	"github.com/imgfs/imgfs/overlay"
)

// BenchmarkWriteHashes hashes in-memory views: many small files (the walk, the ordering window and the
// per-file cost) and one big file (the parallel md5/sha256 path), with one worker and with one per core.
func BenchmarkWriteHashes(b *testing.B) {
	small := make([]tartest.Member, 0, 20000)
	var smallBytes int64
	for i := range 20000 {
		body := fmt.Sprintf("%0*d", i%1024, i)
		small = append(small, tartest.File(fmt.Sprintf("d%02d/f%05d", i%50, i), body))
		smallBytes += int64(len(body))
	}
	big := make([]byte, 256<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	cases := []struct {
		name  string
		layer overlay.Layer
		bytes int64
	}{
		{"small-20k", fakelayer.New(small...), smallBytes},
		{"big-256MiB", fakelayer.New(tartest.Member{Name: "big", Body: big}), int64(len(big))},
	}
	for _, c := range cases {
		v, err := overlay.New([]overlay.Layer{c.layer}, overlay.Options{})
		if err != nil {
			b.Fatal(err)
		}
		for _, workers := range []int{1, 0} {
			b.Run(fmt.Sprintf("%s/workers=%d", c.name, workers), func(b *testing.B) {
				b.SetBytes(c.bytes)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := WriteHashes(context.Background(), v, io.Discard, HashOptions{Workers: workers}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
