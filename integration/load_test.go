package integration

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/internal/sample"
	"github.com/imgfs/imgfs/internal/tartest"
)

// loadRSSLimit bounds the daemon's resident memory under parallel reads: generous (the daemon
// needs some 30 MiB), but far below what buffering files or decompressed streams whole would take.
const loadRSSLimit = 256 << 20

// TestParallelReads runs 16 readers at once over the files of an uncompressed layer, then over those of
// a gzip layer, of one real mount: sequential and shuffled 128 KiB reads, every file's sha256 checked
// against its source member, each file's pages dropped after it is read so that the next reader goes
// to the daemon again. The daemon's resident memory is sampled throughout and must stay bounded.
// The worst read latency is logged, not asserted (bench/run-read.sh measures it).
func TestParallelReads(t *testing.T) {
	requireFUSE(t)
	const files = 8
	rng := rand.New(rand.NewChaCha8([32]byte{8}))
	mk := func(dir string, size int, text bool) ([]tartest.Member, map[string][32]byte) {
		ms := []tartest.Member{tartest.Dir(dir)}
		sums := map[string][32]byte{}
		for i := range files {
			b := make([]byte, size+i*4097) // sizes not block-aligned
			if text {
				// Compressible (about 4:1), so the gzip layer has many deflate blocks per file.
				for j := range b {
					b[j] = "abcdefghijklmnop\n"[rng.IntN(17)]
				}
			} else {
				for j := range b {
					b[j] = byte(rng.Uint32())
				}
			}
			name := fmt.Sprintf("%s/f%02d", dir, i)
			ms = append(ms, tartest.Member{Name: name, Body: b})
			sums[name] = sha256.Sum256(b)
		}
		return ms, sums
	}
	// Random reads of a gzip stream decode from the restart point before them (every 4 MiB): smaller
	// files there keep the test within the CI budget.
	plain, plainSums := mk("plain", 4<<20, false)
	gz, gzSums := mk("gzip", 1<<20, true)
	archive := filepath.Join(t.TempDir(), "load.tar")
	if err := sample.WriteArchive(archive, "load:latest", [][]tartest.Member{plain, gz}, true); err != nil {
		t.Fatal(err)
	}
	mnt := mountImage(t, archive)
	pid := daemonPID(t, mnt)
	for _, layer := range []struct {
		name   string
		sums   map[string][32]byte
		rounds int
	}{{"uncompressed", plainSums, 2}, {"gzip", gzSums, 1}} {
		t.Run(layer.name, func(t *testing.T) {
			io0 := procIO(t, pid)
			peak := sampleRSS(pid)
			worst, total := parallelRead(t, mnt, layer.sums, 16, layer.rounds)
			peakRSS, peakAnon := peak()
			served := procIO(t, pid) - io0
			t.Logf("16 readers: %d MiB read, worst read %v, daemon peak VmRSS %d MiB, RssAnon %d MiB, daemon read %d MiB",
				total>>20, worst.Round(time.Microsecond), peakRSS>>20, peakAnon>>20, served>>20)
			if peakRSS == 0 {
				t.Fatalf("no RSS samples of the daemon %d", pid)
			}
			if peakRSS > loadRSSLimit {
				t.Errorf("daemon peak VmRSS %d MiB, want < %d MiB", peakRSS>>20, loadRSSLimit>>20)
			}
			// The readers went to the daemon, not only to the page cache: it read the archive more than
			// once over (gzip: its compressed bytes, about a quarter).
			var layerBytes int64
			for name := range layer.sums {
				st, _ := os.Stat(filepath.Join(mnt, name))
				layerBytes += st.Size()
			}
			if min := layerBytes / 2; served < min {
				t.Errorf("the daemon read %d MiB of the archive for %d MiB of reads: the test did not load it", served>>20, total>>20)
			}
		})
	}
}

// parallelRead reads every file of sums with n readers, rounds times each, and checks their sha256.
// Even readers read sequentially, odd ones in a shuffled chunk order. It returns the worst single read.
func parallelRead(t *testing.T, mnt string, sums map[string][32]byte, n, rounds int) (time.Duration, int64) {
	t.Helper()
	var names []string
	for name := range sums {
		names = append(names, name)
	}
	slices.Sort(names)
	var wg sync.WaitGroup
	var worst, total atomic.Int64
	errs := make(chan error, n)
	for r := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			buf := make([]byte, 128<<10)
			for round := range rounds {
				for k := range names {
					name := names[(k+r+round)%len(names)]
					f, err := os.Open(filepath.Join(mnt, name))
					if err != nil {
						errs <- err
						return
					}
					st, _ := f.Stat()
					data := make([]byte, st.Size())
					chunks := int((st.Size() + int64(len(buf)) - 1) / int64(len(buf)))
					order := make([]int, chunks)
					for i := range order {
						order[i] = i
					}
					if r%2 == 1 {
						rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
					}
					for _, c := range order {
						off := int64(c) * int64(len(buf))
						start := time.Now()
						m, err := f.ReadAt(data[off:min(off+int64(len(buf)), st.Size())], off)
						d := time.Since(start)
						for old := worst.Load(); int64(d) > old && !worst.CompareAndSwap(old, int64(d)); old = worst.Load() {
						}
						total.Add(int64(m))
						if err != nil {
							f.Close()
							errs <- fmt.Errorf("%s at %d: %w", name, off, err)
							return
						}
					}
					// Drop the file's pages so that the next reader asks the daemon again.
					unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
					f.Close()
					if sha256.Sum256(data) != sums[name] {
						errs <- fmt.Errorf("%s: content differs from the archive's member (reader %d, round %d)", name, r, round)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	return time.Duration(worst.Load()), total.Load()
}

// sampleRSS samples the VmRSS and RssAnon of a process every 20 ms until the returned function is
// called; that returns the peaks.
func sampleRSS(pid int) func() (rss, anon int64) {
	stop := make(chan struct{})
	var peakRSS, peakAnon int64
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			rss, anon := procRSS(pid)
			peakRSS, peakAnon = max(peakRSS, rss), max(peakAnon, anon)
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() (int64, int64) {
		close(stop)
		sampler.Wait()
		return peakRSS, peakAnon
	}
}

// procRSS returns VmRSS and RssAnon of a process in bytes (0 when it is gone).
func procRSS(pid int) (rss, anon int64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
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

// procIO returns the bytes a process has read through read and pread calls (rchar).
func procIO(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatalf("no rchar in /proc/%d/io", pid)
	return 0
}
