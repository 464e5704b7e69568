package custody

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/internal/atomicfile"
)

// Archive is what an action was applied to: an archive file or an OCI layout directory, named by its
// identity and its sha256.
//
// The sha256 of a file is that of its bytes. The sha256 of a directory is that of the listing
// `sha256sum` prints for every regular file beneath it, sorted bytewise by path, each path starting
// with "./" (`cd DIR && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum`
// gives the same digest): symlinks and other special files are not in it (Files counts the regular
// files, Skipped the rest).
type Archive struct {
	Path     string `json:"path"`
	Kind     string `json:"kind"` // "file" or "directory"
	Identity string `json:"identity"`
	SHA256   string `json:"sha256"`
	Files    int    `json:"files,omitempty"`   // directory: regular files in the sum
	Skipped  int    `json:"skipped,omitempty"` // directory: entries neither regular files nor directories

	size int64 // a file's size, for progress
}

// SumOptions configure Identify and Hash.
type SumOptions struct {
	// CacheDir is the cache root; the sums are kept under CacheDir/archive-sum/v1/, keyed by path and
	// identity. Empty: nothing is remembered.
	CacheDir string
	// Logger receives notes (an O_NOATIME refused, a sum remembered); nil discards.
	Logger *slog.Logger
	// Progress, when set, is called while the archive is hashed with the bytes hashed so far and the
	// total, at most every 4 MiB.
	Progress func(done, total int64)
}

const sumVersion = 1

// Identify returns the archive at path with its identity and sha256: from the cache when a sum was
// remembered for the same path and identity, otherwise hashed (as Hash does). cached says which.
func Identify(ctx context.Context, path string, opts SumOptions) (a Archive, cached bool, err error) {
	log := logger(opts)
	a, _, err = identity(path, log)
	if err != nil {
		return a, false, err
	}
	if opts.CacheDir != "" {
		if sum, ok := loadSum(sumPath(opts.CacheDir, a), a); ok {
			a.SHA256 = sum.SHA256
			a.Files, a.Skipped = sum.Files, sum.Skipped
			return a, true, nil
		}
	}
	a, err = Hash(ctx, path, opts)
	return a, false, err
}

// Hash reads every byte of the archive at path (opened O_NOATIME where allowed) and returns its
// identity and sha256, which it remembers in the cache. An archive that changes while it is read is
// an error.
func Hash(ctx context.Context, path string, opts SumOptions) (Archive, error) {
	log := logger(opts)
	before, list, err := identity(path, log)
	if err != nil {
		return before, err
	}
	a := before
	h := &hasher{ctx: ctx, log: log, progress: opts.Progress}
	if a.Kind == "file" {
		h.total = before.size
		a.SHA256, err = h.file(path)
	} else {
		for _, e := range list {
			if e.regular {
				h.total += e.size
			}
		}
		a.SHA256, a.Files, a.Skipped, err = h.dir(path, list)
	}
	if err != nil {
		return a, fmt.Errorf("hashing %s: %w", path, err)
	}
	after, _, err := identity(path, log)
	if err != nil {
		return a, err
	}
	if after.Identity != before.Identity {
		return a, fmt.Errorf("hashing %s: it changed while it was read (was %s, now %s)", path, before.Identity, after.Identity)
	}
	if opts.CacheDir != "" {
		if err := storeSum(sumPath(opts.CacheDir, a), a); err != nil {
			log.Warn("custody: archive sha256 not remembered", "archive", path, "err", err)
		}
	}
	return a, nil
}

func logger(opts SumOptions) *slog.Logger {
	if opts.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return opts.Logger
}

// entry is one file of a directory archive.
type entry struct {
	rel     string // "./a/b"
	regular bool
	size    int64
}

// identity stats path (without reading it): a file's device, inode, size, mtime and ctime; for a
// directory, the sha256 of the list of those of every entry beneath it. list is a directory's entries.
func identity(path string, log *slog.Logger) (Archive, []entry, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Archive{}, nil, err
	}
	a := Archive{Path: abs}
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		return a, nil, fmt.Errorf("archive %s: %w", path, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		a.Kind, a.Identity, a.size = "file", statID(&st), st.Size
		return a, nil, nil
	case unix.S_IFDIR:
	default:
		return a, nil, fmt.Errorf("archive %s: not a regular file or directory", path)
	}
	a.Kind = "directory"
	var list []entry
	h := sha256.New()
	fmt.Fprintf(h, ". %s\n", statID(&st))
	err = walk(abs, ".", log, func(rel string, st *unix.Stat_t) {
		list = append(list, entry{rel: rel, regular: st.Mode&unix.S_IFMT == unix.S_IFREG, size: st.Size})
		fmt.Fprintf(h, "%q %o %s\n", rel, st.Mode, statID(st))
	})
	if err != nil {
		return a, nil, fmt.Errorf("archive %s: %w", path, err)
	}
	a.Identity = fmt.Sprintf("entries=%d tree=%s", len(list), hex.EncodeToString(h.Sum(nil)))
	return a, list, nil
}

func statID(st *unix.Stat_t) string {
	return fmt.Sprintf("dev=%d ino=%d size=%d mtime=%d.%09d ctime=%d.%09d",
		st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
}

// walk calls fn for every entry beneath directory dir (rel is its "./"-prefixed name), in bytewise
// order of names, reading directories through O_NOATIME descriptors so that their atimes stay.
func walk(dir, rel string, log *slog.Logger, fn func(rel string, st *unix.Stat_t)) error {
	f, err := openNoatime(dir, unix.O_DIRECTORY, log)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	slices.Sort(names)
	for _, name := range names {
		p := filepath.Join(dir, name)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		r := rel + "/" + name
		fn(r, &st)
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := walk(p, r, log, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// openNoatime opens path read-only with O_NOATIME, and without it where the kernel refuses (O_NOATIME
// needs the file's ownership or CAP_FOWNER), which it logs at debug level.
func openNoatime(path string, flags int, log *slog.Logger) (*os.File, error) {
	base := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK | flags
	fd, err := unix.Open(path, base|oNoatime, 0)
	if errors.Is(err, unix.EPERM) && oNoatime != 0 {
		log.Debug("custody: O_NOATIME refused (not the owner, no CAP_FOWNER): reading updates the atime", "path", path)
		fd, err = unix.Open(path, base, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// hasher hashes an archive's files, reporting progress.
type hasher struct {
	ctx         context.Context
	log         *slog.Logger
	progress    func(done, total int64)
	done, total int64
	reported    int64
	buf         []byte
}

func (h *hasher) file(path string) (string, error) {
	f, err := openNoatime(path, 0, h.log)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := sha256.New()
	if h.buf == nil {
		h.buf = make([]byte, 1<<20)
	}
	for {
		if err := h.ctx.Err(); err != nil {
			return "", err
		}
		n, err := f.Read(h.buf)
		s.Write(h.buf[:n])
		h.done += int64(n)
		if h.progress != nil && h.done-h.reported >= 4<<20 {
			h.reported = h.done
			h.progress(h.done, h.total)
		}
		if err == io.EOF {
			return hex.EncodeToString(s.Sum(nil)), nil
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
	}
}

// hashDir hashes the sha256sum listing of the regular files of list.
func (h *hasher) dir(dir string, list []entry) (sum string, files, skipped int, err error) {
	var regs []string
	for _, e := range list {
		if e.regular {
			regs = append(regs, e.rel)
		}
	}
	// sort -z orders the whole "./path" strings bytewise; the walk ordered name by name, which differs
	// when a name sorts below "/".
	slices.Sort(regs)
	listing := sha256.New()
	for _, rel := range regs {
		s, err := h.file(filepath.Join(dir, rel))
		if err != nil {
			return "", 0, 0, err
		}
		listing.Write(sumLine(s, rel))
	}
	return hex.EncodeToString(listing.Sum(nil)), len(regs), countSkipped(dir, list), nil
}

// countSkipped counts the entries of list that are neither regular files nor directories.
func countSkipped(dir string, list []entry) int {
	n := 0
	for _, e := range list {
		if e.regular {
			continue
		}
		var st unix.Stat_t
		if unix.Lstat(filepath.Join(dir, e.rel), &st) == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			n++
		}
	}
	return n
}

// sumLine is the line sha256sum prints for a file: names holding a backslash or a newline are escaped
// and the line starts with a backslash.
func sumLine(sum, name string) []byte {
	if strings.ContainsAny(name, "\\\n") {
		name = strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(name)
		return []byte(`\` + sum + "  " + name + "\n")
	}
	return []byte(sum + "  " + name + "\n")
}

// sumRecord is a remembered sum, CacheDir/archive-sum/v1/<sha256 of path and identity>.json.
type sumRecord struct {
	Version  int    `json:"version"`
	Path     string `json:"path"`
	Identity string `json:"identity"`
	SHA256   string `json:"sha256"`
	Files    int    `json:"files,omitempty"`
	Skipped  int    `json:"skipped,omitempty"`
}

func sumPath(cacheDir string, a Archive) string {
	h := sha256.Sum256([]byte(a.Path + "\n" + a.Identity))
	return filepath.Join(cacheDir, "archive-sum", fmt.Sprintf("v%d", sumVersion), hex.EncodeToString(h[:])+".json")
}

func loadSum(path string, a Archive) (sumRecord, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return sumRecord{}, false
	}
	var r sumRecord
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if dec.Decode(&r) != nil || r.Version != sumVersion || r.Path != a.Path || r.Identity != a.Identity || !isHex64(r.SHA256) {
		return sumRecord{}, false
	}
	return r, true
}

func storeSum(path string, a Archive) error {
	b, err := json.Marshal(sumRecord{Version: sumVersion, Path: a.Path, Identity: a.Identity, SHA256: a.SHA256, Files: a.Files, Skipped: a.Skipped})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := atomicfile.Create(path, ".sum-*.tmp")
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}
