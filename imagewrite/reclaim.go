package imagewrite

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// lockTemp takes an exclusive lock on f, a temporary file or directory being written, held until f is
// closed, so that reclaimTemps of another write to the same output leaves it alone.
func lockTemp(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) }

// reclaimTemps removes the temporaries that killed writes of out left beside it (the tempName files
// and directories, which a SIGTERM or SIGINT removes but a SIGKILL cannot), except those that a write
// still running holds locked.
func reclaimTemps(out string, log *slog.Logger) {
	dir := filepath.Dir(out)
	prefix := strings.TrimSuffix(tempName(out), "*")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) || e.Type()&^os.ModeDir != 0 {
			continue // only plain files and directories of that name
		}
		p := filepath.Join(dir, e.Name())
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		if lockTemp(f) == nil {
			if err := os.RemoveAll(p); err == nil {
				log.Info("removed the temporary of an interrupted write", "path", p)
			} else {
				log.Warn("removing the temporary of an interrupted write", "path", p, "err", err)
			}
		}
		f.Close()
	}
}

// CreateTemp creates the temporary file of an output written outside Write (export -o), by the same
// rules as Write's own: the temporaries killed writes of out left are reclaimed first, and the new one,
// named like theirs and beside out, is locked until closed, so a SIGKILL leaves nothing that the next
// write to out does not remove. The caller renames it over out when complete.
func CreateTemp(out string, log *slog.Logger) (*os.File, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reclaimTemps(out, log)
	f, err := os.CreateTemp(filepath.Dir(out), tempName(out))
	if err != nil {
		return nil, err
	}
	if err := lockTemp(f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}
