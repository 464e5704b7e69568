package compression

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// NewReader decompresses the sequential stream r as its magic says (see Detect): gzip with any number
// of members, zstd, or uncompressed data passed through. It returns the format it found. Close releases
// the decoder and leaves r open. For random access to a blob, see Open.
func NewReader(r io.Reader) (io.ReadCloser, Format, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	var head [10]byte // what Detect reads
	b, _ := br.Peek(len(head))
	c, err := Detect(bytes.NewReader(b), 0)
	if err != nil {
		return nil, None, err
	}
	switch c {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("gzip: %w", err)
		}
		return zr, c, nil
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, c, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), c, nil
	}
	return io.NopCloser(br), c, nil
}
