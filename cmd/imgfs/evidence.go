package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/imgfs/imgfs/custody"
	"github.com/imgfs/imgfs/fs"
)

// An evidence mount (mount --evidence) is read-only, nosuid, nodev, noexec and nosymfollow; its layers
// are proven against their digests and diff_ids before it serves (index.Open, or a verified record of
// the same bytes); the archive's sha256 is taken before it serves and again, from the bytes, when it
// ends. With --custody the daemon records "mount" when it is ready and "unmount" when it ends, and
// holds a lock file meanwhile so that `imgfs unmount` returns once the unmount is recorded.

// checkEvidenceFlags refuses what an evidence mount cannot be: writable, or given mount options that
// undo its restrictions.
func checkEvidenceFlags(c *cli.Context) error {
	if c.String("upper") != "" {
		return usageError(c, "--evidence mounts are read-only: --upper cannot be used with it")
	}
	for _, opts := range c.StringSlice("options") {
		for _, o := range strings.Split(opts, ",") {
			switch o {
			case "rw", "suid", "dev", "exec", "symfollow", "atime", "strictatime":
				return usageError(c, "--evidence: mount option %q would undo what an evidence mount guarantees", o)
			}
		}
	}
	return nil
}

// evidenceFlags are what an evidence mount must have from the kernel; nosymfollow is checked apart.
func evidenceFlags(f fs.MountFlags) bool { return f.ReadOnly && f.NoSuid && f.NoDev && f.NoExec }

// mountEnd records the end of a mount that was recorded (or is an evidence mount).
type mountEnd struct {
	archive string
	mnt     string
	sum     custody.Archive
	lock    *os.File // held until the end is recorded; `imgfs unmount` waits for it
	lockAt  string
}

// mountReady checks what the kernel applies to the new mount, says it, and records the mount in the
// custody log; it returns what records the mount's end.
func mountReady(c *cli.Context, o *opened, mnt string, sum custody.Archive, evidence bool, log *slog.Logger) (*mountEnd, error) {
	cs := custodyOf(c)
	abs, _ := filepath.Abs(mnt)
	flags, err := fs.FlagsOf(mnt)
	if err != nil {
		return nil, err
	}
	if evidence {
		if !evidenceFlags(flags) {
			return nil, fmt.Errorf("evidence mount %s: the kernel applies only %q, not ro,nosuid,nodev,noexec", mnt, flags)
		}
		if !flags.NoSymfollow {
			log.Warn("evidence mount: nosymfollow could not be set (it needs root: mount(2) or mount_setattr(2)); symlinks in the mount are followed", "mountpoint", mnt)
		}
	}
	cs.Note("mountpoint", abs)
	cs.Note("evidence", evidence)
	cs.Note("mount_flags", flags.String())
	cs.Note("image", o.img.Names)
	cs.Note("manifest", o.img.ManifestDigest)
	cs.Note("config", o.img.ConfigDigest)
	var layers []string
	for _, l := range o.img.Layers {
		layers = append(layers, string(l.Digest))
	}
	cs.Note("layers", layers)
	if len(o.unverified) > 0 {
		cs.Note("unverified_layers", o.unverified)
	}
	end := &mountEnd{archive: cmpOr(sum.Path, c.Args().First()), mnt: abs, sum: sum}
	if cs != nil {
		if end.lock, end.lockAt, err = lockMountEnd(mnt); err != nil {
			log.Warn("imgfs unmount will not wait for this mount's unmount record", "err", err)
		}
		if err := cs.Record(c, "mount", nil); err != nil {
			end.close()
			return nil, err
		}
	}
	if evidence && !c.Bool("quiet") {
		fmt.Fprintf(os.Stderr, "imgfs: evidence mount %s (%s) of %s\nimgfs: archive sha256 %s (%s)\n", abs, flags, sum.Path, sum.SHA256, sum.Identity)
		if len(o.unverified) > 0 {
			fmt.Fprintf(os.Stderr, "imgfs: WARNING: %d layer(s) served UNVERIFIED (--no-verify): %s\n", len(o.unverified), strings.Join(o.unverified, "; "))
		}
	}
	return end, nil
}

// record appends the "unmount" record: the archive hashed again from its bytes, compared with the
// sum taken at mount. serveErr is how serving ended.
func (e *mountEnd) record(c *cli.Context, serveErr error, log *slog.Logger) {
	cs := custodyOf(c)
	if cs == nil {
		return
	}
	result := serveErr
	cs.Note("mountpoint", e.mnt)
	cs.Note("sha256_at_mount", e.sum.SHA256)
	after, err := custody.Hash(context.Background(), e.archive, custody.SumOptions{CacheDir: cacheDir(c), Logger: log})
	if err != nil {
		result = errors.Join(result, fmt.Errorf("hashing the archive at unmount: %w", err))
	} else {
		cs.SetSum(after)
		unchanged := after.SHA256 == e.sum.SHA256 && after.Identity == e.sum.Identity
		cs.Note("unchanged", unchanged)
		if !unchanged {
			result = errors.Join(result, fmt.Errorf("the archive changed during the mount: sha256 %s (%s) at mount, %s (%s) at unmount",
				e.sum.SHA256, e.sum.Identity, after.SHA256, after.Identity))
		}
	}
	if err := cs.Record(c, "unmount", result); err != nil {
		log.Error("custody", "err", err)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (e *mountEnd) close() {
	if e.lock != nil {
		os.Remove(e.lockAt)
		e.lock.Close()
		e.lock = nil
	}
}

// mountEndLock is the lock file of the mount whose root has device number dev.
func mountEndLock(dir string, dev uint64) string {
	return filepath.Join(dir, fmt.Sprintf("mount-%x.lock", dev))
}

// lockMountEnd creates and locks the lock file of the mount at mnt, named after the device number of
// its root (which `imgfs unmount` reads before unmounting).
func lockMountEnd(mnt string) (*os.File, string, error) {
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); err != nil {
		return nil, "", err
	}
	dir := socketDirs()[0]
	if os.Geteuid() == 0 {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, "", err
		}
	}
	if err := privateDir(dir); err != nil {
		return nil, "", err
	}
	path := mountEndLock(dir, st.Dev)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, "", err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, "", fmt.Errorf("locking %s: %w", path, err)
	}
	return f, path, nil
}

// mountDev returns the device number of the mount at mnt (0 when it cannot be read).
func mountDev(mnt string) uint64 {
	var st unix.Stat_t
	if unix.Stat(mnt, &st) != nil {
		return 0
	}
	return st.Dev
}

// waitMountEnd waits until the daemon of the unmounted mount whose root had device number dev has
// recorded its end (it holds the lock file until then), or ctx ends.
func waitMountEnd(ctx context.Context, dev uint64, log *slog.Logger) {
	if dev == 0 {
		return
	}
	for _, dir := range socketDirs() {
		if checkPrivateDir(dir) != nil {
			continue
		}
		path := mountEndLock(dir, dev)
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		defer f.Close()
		log.Debug("waiting for the mount's daemon to record the unmount", "lock", path)
		start, told := time.Now(), false
		for {
			if !told && time.Since(start) > time.Second && term.IsTerminal(2) {
				fmt.Fprintln(os.Stderr, "imgfs: waiting for the mount's daemon to hash the archive again and record the unmount")
				told = true
			}
			err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
			if err == nil || !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}
