package compression

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Format names the compression of a blob.
type Format uint8

// Formats recognised by Detect.
const (
	None Format = iota
	Gzip
	Zstd
)

// String returns "none", "gzip" or "zstd".
func (c Format) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", uint8(c))
}

// ErrUnsupported is returned for data compressed in a format that cannot be read (bzip2, xz,
// lz4, compress).
var ErrUnsupported = errors.New("compression: unsupported compression")

// magic numbers, RFC 1952, RFC 8878 and the formats' own documentation.
var (
	magicGzip     = []byte{0x1f, 0x8b, 0x08}
	magicZstd     = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz       = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicBzip2    = []byte{'B', 'Z', 'h'}
	magicBzip2Blk = []byte{0x31, 0x41, 0x59, 0x26, 0x53, 0x59} // block header, after "BZh" and the level
	magicBzip2End = []byte{0x17, 0x72, 0x45, 0x38, 0x50, 0x90} // end of stream (an empty bzip2 file)
	magicLz4      = []byte{0x04, 0x22, 0x4d, 0x18}
	magicCompress = []byte{0x1f, 0x9d}
)

// isZstdSkippable reports whether b starts with the magic of a zstd skippable frame (0x184D2A5?).
func isZstdSkippable(b []byte) bool {
	return len(b) >= 4 && b[0]&0xf0 == 0x50 && b[1] == 0x2a && b[2] == 0x4d && b[3] == 0x18
}

// Detect reads the magic bytes at off in r and says how the data is compressed. Data that
// matches no known magic (a tar, for one) is None. bzip2, xz, lz4 and compress (.Z) data give
// an error wrapping ErrUnsupported that names the format.
func Detect(r io.ReaderAt, off int64) (Format, error) {
	var buf [10]byte
	n, err := r.ReadAt(buf[:], off)
	if err != nil && !errors.Is(err, io.EOF) {
		return None, fmt.Errorf("detecting compression: %w", err)
	}
	b := buf[:n]
	switch {
	case bytes.HasPrefix(b, magicGzip):
		return Gzip, nil
	case bytes.HasPrefix(b, magicZstd), isZstdSkippable(b):
		return Zstd, nil
	case bytes.HasPrefix(b, magicXz):
		return None, fmt.Errorf("%w: xz", ErrUnsupported)
	case len(b) == 10 && bytes.HasPrefix(b, magicBzip2) && b[3] >= '1' && b[3] <= '9' &&
		(bytes.Equal(b[4:], magicBzip2Blk) || bytes.Equal(b[4:], magicBzip2End)):
		return None, fmt.Errorf("%w: bzip2", ErrUnsupported)
	case bytes.HasPrefix(b, magicLz4):
		return None, fmt.Errorf("%w: lz4", ErrUnsupported)
	case bytes.HasPrefix(b, magicCompress):
		return None, fmt.Errorf("%w: compress (.Z)", ErrUnsupported)
	}
	return None, nil
}
