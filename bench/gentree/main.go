// Command gentree writes a deterministic tar of small text files to standard output, for the walk
// benchmarks (bench/run-walk.sh): -files files in directories of -per files, in groups of -group
// directories (tNNN/mNNN/fNNNNN), of -min to -max bytes each; and -flat more files in one directory
// "flat" (flat/file-NNNNNNN), of 0 to -flatmax bytes each.
package main

import (
	"archive/tar"
	"bufio"
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	files := flag.Int("files", 0, "files in the nested directories")
	per := flag.Int("per", 100, "files per directory")
	group := flag.Int("group", 100, "directories per top directory")
	minSize := flag.Int("min", 1024, "smallest nested file, bytes")
	maxSize := flag.Int("max", 4096, "largest nested file, bytes")
	flat := flag.Int("flat", 0, "files in the one directory flat/")
	flatMax := flag.Int("flatmax", 64, "largest flat file, bytes")
	flag.Parse()
	if *per < 1 || *group < 1 || *minSize < 0 || *maxSize < *minSize || *flatMax < 0 {
		fmt.Fprintln(os.Stderr, "gentree: bad sizes")
		os.Exit(2)
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	tw := tar.NewWriter(w)
	mtime := time.Unix(1_700_000_000, 0)
	put := func(h *tar.Header, body []byte) {
		h.ModTime, h.Format = mtime, tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			fail(err)
		}
		if _, err := tw.Write(body); err != nil {
			fail(err)
		}
	}
	dir := func(name string) { put(&tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: 0o755}, nil) }
	file := func(name string, size int) {
		body := make([]byte, size)
		line := []byte(name + " gentree\n")
		for i := range body {
			body[i] = line[i%len(line)]
		}
		put(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size)}, body)
	}
	x := uint64(0x9e3779b97f4a7c15) // xorshift: the same tree every run
	next := func(n int) int {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return int(x % uint64(n))
	}
	for i := range *files {
		d, f := i / *per, i%*per
		top, mid := fmt.Sprintf("t%03d", d / *group), fmt.Sprintf("t%03d/m%03d", d / *group, d%*group)
		if f == 0 && d%*group == 0 {
			dir(top)
		}
		if f == 0 {
			dir(mid)
		}
		file(fmt.Sprintf("%s/f%05d", mid, f), *minSize+next(*maxSize-*minSize+1))
	}
	if *flat > 0 {
		dir("flat")
		for i := range *flat {
			file(fmt.Sprintf("flat/file-%07d", i), next(*flatMax+1))
		}
	}
	if err := tw.Close(); err != nil {
		fail(err)
	}
	if err := w.Flush(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gentree:", err)
	os.Exit(1)
}
