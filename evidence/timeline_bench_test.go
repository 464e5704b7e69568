package evidence

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/imgfs/imgfs/internal/tartest"
)

// BenchmarkTimeline writes the timeline of two layers of 100,000 small files each (the second
// replacing a tenth of the first and whiting out another tenth), with and without MD5.
func BenchmarkTimeline(b *testing.B) {
	const n = 100000
	var l1, l2 []tartest.Member
	for i := range n {
		name := fmt.Sprintf("d%03d/f%06d", i%100, i)
		l1 = append(l1, tartest.File(name, fmt.Sprintf("content of file %d\n", i)))
		switch i % 10 {
		case 1:
			l2 = append(l2, tartest.File(name, "replaced\n"))
		case 2:
			l2 = append(l2, tartest.Whiteout(fmt.Sprintf("d%03d", i%100), fmt.Sprintf("f%06d", i)))
		}
	}
	fx := newLayered(b, nil, nil, tartest.Tar(b, l1...), tartest.Tar(b, l2...))
	for _, noMD5 := range []bool{false, true} {
		b.Run(fmt.Sprintf("md5=%v", !noMD5), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				st, err := WriteTimeline(context.Background(), io.Discard, fx.img, TimelineOptions{NoMD5: noMD5})
				if err != nil || st.Members != int64(len(l1)+len(l2)) {
					b.Fatal(st, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(l1)+len(l2)), "ns/member")
		})
	}
}
