package archive

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/imgfs/imgfs/compression"
)

// source reads the named files of an archive: the files under a directory, or the members of a tar.
// Names are slash-separated, relative and clean.
type source interface {
	// open returns the bytes of the regular file name, following symlinks that stay inside the source,
	// and the name of the file finally reached. A missing file gives an error of kind ErrMissingBlob.
	open(name string) (compression.Blob, string, error)
	// exists says whether name is present, whatever its type.
	exists(name string) bool
	// close releases the files the source opened.
	close() error
}

var (
	errNoMember = errorf(ErrMissingBlob, "no such member")
	errNoFile   = errorf(ErrMissingBlob, "no such file")
)

// dirSource reads files under a directory through an os.Root, so that no name or symlink can lead
// outside it. Files are opened read-only once and kept open until close, so that their blobs stay valid.
type dirSource struct {
	log   *slog.Logger
	root  *os.Root
	mu    sync.Mutex
	files map[string]dirFile
}

type dirFile struct {
	f    *os.File
	size int64
}

func newDirSource(dir string, log *slog.Logger) (*dirSource, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &dirSource{log: log, root: root, files: map[string]dirFile{}}, nil
}

func (s *dirSource) open(name string) (compression.Blob, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files == nil {
		return compression.Blob{}, name, ErrClosed
	}
	if df, ok := s.files[name]; ok {
		return compression.Blob{R: df.f, Size: df.size, File: df.f}, name, nil
	}
	f, err := openSource(func(flag int) (*os.File, error) { return s.root.OpenFile(name, flag, 0) }, name, s.log)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return compression.Blob{}, name, errNoFile
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return compression.Blob{}, name, invalidf("opening: %v", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return compression.Blob{}, name, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return compression.Blob{}, name, invalidf("not a regular file (%s)", st.Mode().Type())
	}
	s.files[name] = dirFile{f: f, size: st.Size()}
	return compression.Blob{R: f, Size: st.Size(), File: f}, name, nil
}

func (s *dirSource) exists(name string) bool {
	_, err := s.root.Lstat(name)
	return err == nil
}

func (s *dirSource) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for _, df := range s.files {
		if err := df.f.Close(); err != nil && first == nil {
			first = err
		}
	}
	s.files = nil
	if err := s.root.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

// Member kinds of an outer tar.
const (
	memberFile = iota + 1
	memberDir
	memberSymlink
	memberHardlink
	memberOther
)

// member is one member of an outer tar: its data is size bytes at off in the (decompressed) source.
type member struct {
	kind      uint8
	off, size int64
	link      string // symlink target verbatim; hardlink target cleaned
}

// tarSource reads the members of a tar held in r (the file itself, or its decompressed stream).
type tarSource struct {
	r       io.ReaderAt
	file    *os.File // set when the tar's bytes are a plain file at fileOff, so blobs can be spliced
	fileOff int64
	origin  *os.File // the compressed archive file, when the tar is its decompressed stream
	members map[string]*member
	many    bool // the scan stopped at maxMembers: not an image archive
	closers []io.Closer
}

// maxSymlinks bounds the symlinks followed while resolving one member name.
const maxSymlinks = 40

func (s *tarSource) open(name string) (compression.Blob, string, error) {
	m, real, err := s.resolve(name)
	if err != nil {
		return compression.Blob{}, real, err
	}
	if s.file != nil {
		return compression.Blob{R: s.file, Off: s.fileOff + m.off, Size: m.size, File: s.file, Origin: s.origin}, real, nil
	}
	return compression.Blob{R: s.r, Off: m.off, Size: m.size, Origin: s.origin}, real, nil
}

func (s *tarSource) exists(name string) bool {
	_, ok := s.members[name]
	return ok
}

func (s *tarSource) close() error {
	var first error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i].Close(); err != nil && first == nil {
			first = err
		}
	}
	s.closers = nil
	return first
}

// resolve finds the regular member that name leads to, following symlink and hardlink members (also as
// parent components) inside the archive. Symlink targets are relative to the link's directory; a target
// that is absolute or leaves the archive root is refused, as is a cycle.
func (s *tarSource) resolve(name string) (*member, string, error) {
	cur := name
	seen := map[string]bool{}
	for hops := 0; ; hops++ {
		if hops > maxSymlinks {
			return nil, cur, invalidf("more than %d symlinks while resolving %q", maxSymlinks, clip(name))
		}
		m := s.members[cur]
		if m == nil {
			// A parent component may be a symlink.
			p, rest, ok := s.linkPrefix(cur)
			if !ok {
				return nil, cur, errNoMember
			}
			if seen[p] {
				return nil, cur, invalidf("symlink cycle at %q", clip(p))
			}
			seen[p] = true
			t, err := follow(p, s.members[p])
			if err != nil {
				return nil, cur, err
			}
			cur = path.Join(t, rest)
			continue
		}
		switch m.kind {
		case memberFile:
			return m, cur, nil
		case memberSymlink, memberHardlink:
			if seen[cur] {
				return nil, cur, invalidf("symlink cycle at %q", clip(cur))
			}
			seen[cur] = true
			t, err := follow(cur, m)
			if err != nil {
				return nil, cur, err
			}
			cur = t
		case memberDir:
			return nil, cur, invalidf("%q is a directory", clip(cur))
		default:
			return nil, cur, invalidf("%q is not a regular file", clip(cur))
		}
	}
}

// linkPrefix finds the shortest parent of name that is a symlink or hardlink member.
func (s *tarSource) linkPrefix(name string) (prefix, rest string, ok bool) {
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		if m := s.members[name[:i]]; m != nil && (m.kind == memberSymlink || m.kind == memberHardlink) {
			return name[:i], name[i+1:], true
		}
	}
	return "", "", false
}

// follow returns the member name a link member at name points to.
func follow(name string, m *member) (string, error) {
	if m.kind == memberHardlink {
		if m.link == "" {
			return "", invalidf("hardlink %q: target outside the archive", clip(name))
		}
		return m.link, nil
	}
	if strings.HasPrefix(m.link, "/") {
		return "", invalidf("symlink %q -> %q: absolute target escapes the archive", clip(name), clip(m.link))
	}
	t := path.Join(path.Dir(name), m.link)
	if t == ".." || strings.HasPrefix(t, "../") || t == "." {
		return "", invalidf("symlink %q -> %q: escapes the archive", clip(name), clip(m.link))
	}
	return t, nil
}

// cleanMember normalises a tar member name: leading "/" and "./" dropped, "." and empty components
// dropped. ok is false for a name with a ".." component (such members are ignored). The root is "".
func cleanMember(name string) (clean string, ok bool) {
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", false
		}
	}
	c := path.Clean("/" + name)
	return c[1:], true
}
