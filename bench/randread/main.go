// Command randread times random 4 KiB reads of one file: N reads at distinct, block-aligned offsets
// chosen with a fixed seed, so every read misses the page cache.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"time"
)

func main() {
	n := flag.Int("n", 2000, "number of reads")
	bs := flag.Int("bs", 4096, "read size")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: randread [-n N] [-bs B] FILE")
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	st, _ := f.Stat()
	blocks := st.Size() / int64(*bs)
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[int64]bool{}
	buf := make([]byte, *bs)
	lat := make([]time.Duration, 0, *n)
	start := time.Now()
	for len(lat) < *n && len(seen) < int(blocks) {
		b := r.Int64N(blocks)
		if seen[b] {
			continue
		}
		seen[b] = true
		t := time.Now()
		if _, err := f.ReadAt(buf, b*int64(*bs)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		lat = append(lat, time.Since(t))
	}
	total := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Printf("reads=%d total=%.3fs mean=%.3fms p50=%.3fms p99=%.3fms\n", len(lat), total.Seconds(),
		total.Seconds()*1000/float64(len(lat)), ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
