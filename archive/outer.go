package archive

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/compression"
)

// outerKeySpan is how much of the head and of the tail of a compressed archive file goes into its cache key.
const outerKeySpan = 1 << 20

// outerKey derives the cache key of a compressed archive file's decompressed stream without reading the
// whole file: sha256 over a version tag, the file size (8 bytes, big-endian), and the sha256 of the first
// and of the last MiB of the file (the whole file when it is smaller), and the file's identity (device,
// inode, mtime, ctime): the decompressed stream is trusted only for the very file it was made from, as
// it was then, so that a file rewritten in place (even with the same size, head and tail) is read again.
func outerKey(f *os.File, size int64) (digest.Digest, error) {
	id, err := compression.FileIdentity(f)
	if err != nil {
		return "", err
	}
	var r io.ReaderAt = f
	h := sha256.New()
	h.Write([]byte("imgfs outer archive v2\x00"))
	h.Write([]byte(id + "\x00"))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(size))
	h.Write(b[:])
	span := min(int64(outerKeySpan), size)
	for _, off := range []int64{0, size - span} {
		part := sha256.New()
		if _, err := io.Copy(part, io.NewSectionReader(r, off, span)); err != nil {
			return "", err
		}
		h.Write(part.Sum(nil))
	}
	return digest.NewDigest(digest.SHA256, h), nil
}

// openTarSource opens the archive file f (size bytes, already known to be a regular file), unwraps gzip
// or zstd through compression.Open, and scans the tar's member headers.
func openTarSource(ctx context.Context, f *os.File, size int64, opts Options) (*tarSource, compression.Format, error) {
	src := &tarSource{r: f, file: f, closers: []io.Closer{f}}
	c, err := compression.Detect(f, 0)
	if err != nil {
		src.close()
		return nil, c, errorf(ErrUnsupported, "%w", err)
	}
	total := size
	if c != compression.None {
		key, err := outerKey(f, size)
		if err != nil {
			src.close()
			return nil, c, err
		}
		if opts.Hold != nil && opts.CacheDir != "" {
			h, err := opts.Hold(key)
			if err != nil {
				src.close()
				return nil, c, err
			}
			src.closers = append(src.closers, h)
		}
		st, err := compression.Open(ctx, compression.Blob{R: f, Size: size, File: f}, compression.Options{
			CacheDir: opts.CacheDir, Key: key, Logger: opts.Logger, Progress: opts.Progress,
		})
		if err != nil {
			src.close()
			return nil, c, fmt.Errorf("%s: %w", c, err)
		}
		src.closers = append(src.closers, st)
		src.r, src.file, src.origin, total = st, nil, f, st.Size()
		if sf, ok := st.File(); ok {
			src.file, src.fileOff = sf, st.FileOffset()
		}
	}
	members, err := scanTar(ctx, src.r, total, opts.Logger)
	if errors.Is(err, errManyMembers) {
		src.members, src.many = members, true
		return src, c, nil
	}
	if err != nil {
		src.close()
		if c != compression.None {
			return nil, c, fmt.Errorf("%s-compressed: %w", c, err)
		}
		return nil, c, err
	}
	src.members = members
	return src, c, nil
}
