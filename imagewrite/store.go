package imagewrite

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/imgfs/imgfs/compression"
	"github.com/imgfs/imgfs/internal/atomicfile"
)

// store is where an image's files go: a tar file or a directory, made visible by commit only.
type store interface {
	// has reports whether a file of that name was written.
	has(name string) bool
	// mkdir adds a directory.
	mkdir(name string) error
	// putFile adds a small file.
	putFile(name string, data []byte) error
	// copyBlob copies a blob, checking that its bytes hash to want.
	copyBlob(ctx context.Context, name string, b compression.Blob, want digest.Digest) error
	// streamBlob adds a file whose content fill writes and whose name depends on the content's sha256
	// digest. A file of that name written before is kept (the content is the same).
	streamBlob(ctx context.Context, nameOf func(digest.Digest) string, fill func(w io.Writer) error) (d digest.Digest, size int64, name string, err error)
	// commit makes the output appear at its path.
	commit() error
	// abort removes everything written.
	abort()
}

const copyBuf = 1 << 20

// errNotEmpty is what rename gives when the target is a directory that is not empty.
var errNotEmpty error = syscall.ENOTEMPTY

// hashWriter writes to w, hashing and counting.
type hashWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (w *hashWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// copyVerify copies b to w and checks that it hashes to want. A blob that is short or does not match
// gives an ErrBase error.
func copyVerify(ctx context.Context, w io.Writer, b compression.Blob, want digest.Digest) error {
	if !want.Algorithm().Available() {
		return errorf(ErrBase, "blob %s: unsupported digest algorithm", clip(string(want)))
	}
	h := want.Algorithm().Hash()
	buf := make([]byte, min(copyBuf, max(b.Size, 1)))
	for off := int64(0); off < b.Size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := int(min(int64(len(buf)), b.Size-off))
		k, err := b.R.ReadAt(buf[:n], b.Off+off)
		if k < n {
			if err == nil || errors.Is(err, io.EOF) {
				return errorf(ErrBase, "blob %s: ends at %d, before its size %d", want, off+int64(k), b.Size)
			}
			return fmt.Errorf("blob %s: reading at %d: %w", want, off, err)
		}
		h.Write(buf[:k])
		if _, err := w.Write(buf[:k]); err != nil {
			return err
		}
		off += int64(k)
	}
	if got := digest.NewDigest(want.Algorithm(), h); got != want {
		return errorf(ErrBase, "blob %s: content hashes to %s", want, got)
	}
	return nil
}

// tempName is the prefix of temporary files and directories made beside out.
func tempName(out string) string { return "." + filepath.Base(out) + ".imgfs-tmp-*" }

// tarStore writes a tar file: members are written in order with fixed attributes; a streamed member's
// header is reserved and written once its size and name are known.
type tarStore struct {
	out   string
	f     *atomicfile.File
	pos   int64
	mtime time.Time
	names map[string]bool
}

func newTarStore(out string, created time.Time, sources []baseLayer) (*tarStore, error) {
	if fi, err := os.Stat(out); err == nil {
		if fi.IsDir() {
			return nil, errorf(ErrExists, "is a directory")
		}
		for _, l := range sources {
			if l.blob.File == nil {
				continue
			}
			if si, err := l.blob.File.Stat(); err == nil && os.SameFile(fi, si) {
				return nil, errorf(ErrInvalid, "the output is the base image's archive")
			}
		}
	}
	f, err := atomicfile.Create(out, tempName(out))
	if err != nil {
		return nil, fmt.Errorf("creating temporary file: %w", err)
	}
	if err := lockTemp(f.File); err != nil {
		f.Abort()
		return nil, fmt.Errorf("locking temporary file: %w", err)
	}
	mtime := created.Truncate(time.Second)
	if mtime.Unix() < 0 {
		mtime = time.Unix(0, 0)
	}
	return &tarStore{out: out, f: f, mtime: mtime.UTC(), names: map[string]bool{}}, nil
}

func (s *tarStore) has(name string) bool { return s.names[name] }

// header encodes one tar header. Streamed members need exactly one 512-byte block: USTAR, or GNU
// (base-256 size) past USTAR's 8 GiB limit; their names are short.
func (s *tarStore) header(name string, typ byte, size int64, single bool) ([]byte, error) {
	h := &tar.Header{Name: name, Typeflag: typ, Size: size, Mode: 0o644, ModTime: s.mtime}
	if typ == tar.TypeDir {
		h.Mode = 0o755
	}
	if single {
		h.Format = tar.FormatUSTAR
		if size >= 1<<33 {
			h.Format = tar.FormatGNU
		}
	}
	var buf bytes.Buffer
	if err := tar.NewWriter(&buf).WriteHeader(h); err != nil {
		return nil, fmt.Errorf("tar header for %s: %w", name, err)
	}
	if single && buf.Len() != 512 {
		return nil, fmt.Errorf("tar header for %s: %d bytes", name, buf.Len())
	}
	return buf.Bytes(), nil
}

func (s *tarStore) write(p []byte) error {
	n, err := s.f.Write(p)
	s.pos += int64(n)
	return err
}

// pad writes zeros up to the next 512-byte boundary.
func (s *tarStore) pad() error {
	if r := s.pos % 512; r != 0 {
		return s.write(make([]byte, 512-r))
	}
	return nil
}

func (s *tarStore) mkdir(name string) error {
	h, err := s.header(name+"/", tar.TypeDir, 0, false)
	if err != nil {
		return err
	}
	s.names[name] = true
	return s.write(h)
}

// parents adds the missing parent directories of name.
func (s *tarStore) parents(name string) error {
	for i := 0; i < len(name); i++ {
		if name[i] == '/' && !s.names[name[:i]] {
			if err := s.mkdir(name[:i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *tarStore) putFile(name string, data []byte) error {
	if err := s.parents(name); err != nil {
		return err
	}
	h, err := s.header(name, tar.TypeReg, int64(len(data)), false)
	if err != nil {
		return err
	}
	if err := s.write(h); err != nil {
		return err
	}
	if err := s.write(data); err != nil {
		return err
	}
	s.names[name] = true
	return s.pad()
}

func (s *tarStore) copyBlob(ctx context.Context, name string, b compression.Blob, want digest.Digest) error {
	if err := s.parents(name); err != nil {
		return err
	}
	h, err := s.header(name, tar.TypeReg, b.Size, false)
	if err != nil {
		return err
	}
	if err := s.write(h); err != nil {
		return err
	}
	start := s.pos
	bw := bufio.NewWriterSize(s.f, copyBuf)
	if err := copyVerify(ctx, bw, b, want); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	s.pos = start + b.Size
	s.names[name] = true
	return s.pad()
}

func (s *tarStore) streamBlob(ctx context.Context, nameOf func(digest.Digest) string, fill func(w io.Writer) error) (digest.Digest, int64, string, error) {
	start := s.pos
	if err := s.write(make([]byte, 512)); err != nil {
		return "", 0, "", err
	}
	hw := &hashWriter{w: s.f, h: sha256.New()}
	bw := bufio.NewWriterSize(hw, copyBuf)
	if err := fill(bw); err != nil {
		return "", 0, "", err
	}
	if err := bw.Flush(); err != nil {
		return "", 0, "", err
	}
	s.pos += hw.n
	d := digest.NewDigest(digest.SHA256, hw.h)
	name := nameOf(d)
	if s.names[name] {
		if err := s.f.Truncate(start); err != nil {
			return "", 0, "", err
		}
		if _, err := s.f.Seek(start, io.SeekStart); err != nil {
			return "", 0, "", err
		}
		s.pos = start
		return d, hw.n, name, nil
	}
	h, err := s.header(name, tar.TypeReg, hw.n, true)
	if err != nil {
		return "", 0, "", err
	}
	if _, err := s.f.WriteAt(h, start); err != nil {
		return "", 0, "", err
	}
	s.names[name] = true
	return d, hw.n, name, s.pad()
}

func (s *tarStore) commit() error {
	if err := s.write(make([]byte, 1024)); err != nil {
		return err
	}
	if err := s.f.Chmod(0o644); err != nil {
		return err
	}
	// Commit renames the file while it is still open, so still locked: no reclaimTemps can take it.
	return s.f.Commit()
}

func (s *tarStore) abort() { s.f.Abort() }

// dirStore builds a directory beside out and renames it to out on commit.
type dirStore struct {
	out, tmp string
	lock     *os.File // tmp, open and locked until commit or abort
	names    map[string]bool
	dirs     []string
	seq      int
	done     bool
}

func newDirStore(out string) (*dirStore, error) {
	switch fi, err := os.Lstat(out); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	case !fi.IsDir():
		return nil, errorf(ErrExists, "exists and is not a directory")
	default:
		ents, err := os.ReadDir(out)
		if err != nil {
			return nil, err
		}
		if len(ents) > 0 {
			return nil, errorf(ErrExists, "directory exists and is not empty")
		}
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), tempName(out))
	if err != nil {
		return nil, fmt.Errorf("creating temporary directory: %w", err)
	}
	lock, err := os.Open(tmp)
	if err == nil {
		if err = lockTemp(lock); err != nil {
			lock.Close()
		}
	}
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("locking temporary directory: %w", err)
	}
	return &dirStore{out: out, tmp: tmp, lock: lock, names: map[string]bool{}, dirs: []string{""}}, nil
}

func (s *dirStore) path(name string) string { return filepath.Join(s.tmp, filepath.FromSlash(name)) }

func (s *dirStore) has(name string) bool { return s.names[name] }

func (s *dirStore) mkdir(name string) error {
	s.names[name] = true
	s.dirs = append(s.dirs, name)
	return os.Mkdir(s.path(name), 0o755)
}

// create makes a new file (and its missing parents), and syncs and closes it after fn wrote it.
func (s *dirStore) create(name string, fn func(f *os.File) error) error {
	for i := 0; i < len(name); i++ {
		if name[i] == '/' && !s.names[name[:i]] {
			if err := s.mkdir(name[:i]); err != nil {
				return err
			}
		}
	}
	f, err := os.OpenFile(s.path(name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	err = fn(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *dirStore) putFile(name string, data []byte) error {
	err := s.create(name, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
	s.names[name] = err == nil
	return err
}

func (s *dirStore) copyBlob(ctx context.Context, name string, b compression.Blob, want digest.Digest) error {
	err := s.create(name, func(f *os.File) error {
		bw := bufio.NewWriterSize(f, copyBuf)
		if err := copyVerify(ctx, bw, b, want); err != nil {
			return err
		}
		return bw.Flush()
	})
	s.names[name] = err == nil
	return err
}

func (s *dirStore) streamBlob(ctx context.Context, nameOf func(digest.Digest) string, fill func(w io.Writer) error) (digest.Digest, int64, string, error) {
	s.seq++
	tmp := fmt.Sprintf(".new-layer-%d", s.seq)
	hw := &hashWriter{h: sha256.New()}
	err := s.create(tmp, func(f *os.File) error {
		hw.w = f
		bw := bufio.NewWriterSize(hw, copyBuf)
		if err := fill(bw); err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return "", 0, "", err
	}
	d := digest.NewDigest(digest.SHA256, hw.h)
	name := nameOf(d)
	if s.names[name] {
		return d, hw.n, name, os.Remove(s.path(tmp))
	}
	if err := os.Rename(s.path(tmp), s.path(name)); err != nil {
		return "", 0, "", err
	}
	s.names[name] = true
	return d, hw.n, name, nil
}

func (s *dirStore) commit() error {
	for i := len(s.dirs) - 1; i >= 0; i-- {
		if err := atomicfile.SyncDir(s.path(s.dirs[i])); err != nil {
			return fmt.Errorf("syncing: %w", err)
		}
	}
	if err := os.Chmod(s.tmp, 0o755); err != nil {
		return err
	}
	// os.Rename refuses every existing directory; rename(2) replaces an empty one atomically.
	if err := syscall.Rename(s.tmp, s.out); err != nil {
		err = &os.LinkError{Op: "rename", Old: s.tmp, New: s.out, Err: err}
		if errors.Is(err, fs.ErrExist) || errors.Is(err, errNotEmpty) {
			return errorf(ErrExists, "directory appeared while writing and is not empty: %w", err)
		}
		return err
	}
	s.done = true
	s.lock.Close()
	return atomicfile.SyncDir(filepath.Dir(s.out))
}

func (s *dirStore) abort() {
	if s.done {
		return
	}
	os.RemoveAll(s.tmp)
	s.lock.Close()
	s.done = true
}
