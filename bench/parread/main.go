// Command parread reads every file listed in a sha256sum file with N parallel readers and reports the
// throughput, the worst and 99th-percentile single read, and (with -pid) the peak resident memory of a
// process sampled meanwhile. Each reader reads every file in its own rotated order; odd readers read a
// file's chunks in a shuffled order. After each file a reader drops its pages (fadvise DONTNEED), so
// the next reader goes to the file system again. A file whose content differs from its sum is an error.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	readers := flag.Int("readers", 16, "parallel readers")
	rounds := flag.Int("rounds", 1, "times each reader reads every file")
	bs := flag.Int("bs", 128<<10, "read size")
	pid := flag.Int("pid", 0, "process whose VmRSS and RssAnon to sample (the mount daemon)")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: parread [-readers N] [-rounds N] [-bs B] [-pid PID] SUMS DIR")
		os.Exit(2)
	}
	sums, err := readSums(flag.Arg(0))
	if err != nil {
		fail(err)
	}
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	slices.Sort(names)
	dir := flag.Arg(1)

	stop := make(chan struct{})
	var peakRSS, peakAnon int64
	var sampled sync.WaitGroup
	if *pid != 0 {
		sampled.Add(1)
		go func() {
			defer sampled.Done()
			for {
				rss, anon := procRSS(*pid)
				peakRSS, peakAnon = max(peakRSS, rss), max(peakAnon, anon)
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		}()
	}

	var mu sync.Mutex
	var lat []time.Duration
	var total int64
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for r := range *readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, n, err := reader(r, *rounds, *bs, dir, names, sums)
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, l...)
			total += n
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	sampled.Wait()
	if firstErr != nil {
		fail(firstErr)
	}
	slices.Sort(lat)
	fmt.Printf("bytes=%d secs=%.3f mibps=%.1f reads=%d worst_ms=%.3f p99_ms=%.3f p50_ms=%.3f rss_mib=%.1f anon_mib=%.1f\n",
		total, elapsed.Seconds(), float64(total)/(1<<20)/elapsed.Seconds(), len(lat), ms(lat[len(lat)-1]),
		ms(lat[len(lat)*99/100]), ms(lat[len(lat)/2]), float64(peakRSS)/(1<<20), float64(peakAnon)/(1<<20))
}

func reader(r, rounds, bs int, dir string, names []string, sums map[string][32]byte) ([]time.Duration, int64, error) {
	rng := rand.New(rand.NewPCG(uint64(r), 7))
	var lat []time.Duration
	var total int64
	for round := range rounds {
		for k := range names {
			name := names[(k+r+round)%len(names)]
			f, err := os.Open(filepath.Join(dir, name))
			if err != nil {
				return lat, total, err
			}
			st, err := f.Stat()
			if err != nil {
				f.Close()
				return lat, total, err
			}
			data := make([]byte, st.Size())
			order := make([]int64, (st.Size()+int64(bs)-1)/int64(bs))
			for i := range order {
				order[i] = int64(i) * int64(bs)
			}
			if r%2 == 1 {
				rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			}
			for _, off := range order {
				t := time.Now()
				n, err := f.ReadAt(data[off:min(off+int64(bs), st.Size())], off)
				lat = append(lat, time.Since(t))
				total += int64(n)
				if err != nil {
					f.Close()
					return lat, total, fmt.Errorf("%s at %d: %w", name, off, err)
				}
			}
			unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
			f.Close()
			if sha256.Sum256(data) != sums[name] {
				return lat, total, fmt.Errorf("%s: content differs from its sha256", name)
			}
		}
	}
	return lat, total, nil
}

// readSums reads "HEX  NAME" lines as sha256sum writes them.
func readSums(path string) (map[string][32]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sums := map[string][32]byte{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		hexSum, name, ok := strings.Cut(sc.Text(), "  ")
		b, err := hex.DecodeString(hexSum)
		if !ok || err != nil || len(b) != 32 {
			return nil, fmt.Errorf("%s: not a sha256sum line: %q", path, sc.Text())
		}
		sums[strings.TrimPrefix(name, "./")] = [32]byte(b)
	}
	if len(sums) == 0 {
		return nil, fmt.Errorf("%s: no sums", path)
	}
	return sums, sc.Err()
}

func procRSS(pid int) (rss, anon int64) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kib, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kib << 10
		case "RssAnon:":
			anon = kib << 10
		}
	}
	return rss, anon
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "parread:", err)
	os.Exit(1)
}
