package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/fs"
)

// A writable mount listens on a unix socket named after its upper directory's identity (device and
// inode, so that every path to the directory finds it), so that `imgfs commit` of the same directory
// can pause the mount's writes for a consistent snapshot (docker commit -p). Protocol, one line each
// way: "info" is answered with "mount DEV MOUNTPOINT" (the mount's st_dev, and its path quoted), so that
// commit can refuse to write into the mount it pauses; "freeze" makes the server flush the mount's dirty
// pages (syncfs, which writes back MAP_SHARED pages), sync the upper directory, stop new changes, wait
// for running ones and answer "frozen"; writes resume when the client closes the connection (or sends
// "thaw"), which the kernel does when the client dies, so a commit that dies never leaves the mount
// stuck.

// freezer is what the control socket needs of a writable view.
type freezer interface {
	Freeze() (thaw func())
	Sync() error
}

// socketDirs are the directories where this user's control sockets may be, the one a mount uses first.
// Root uses /run/imgfs. Other users use $XDG_RUNTIME_DIR/imgfs, else /run/user/UID/imgfs when that
// runtime directory exists, else $TMPDIR/imgfs-UID; a commit looks in all of them, since its
// environment may differ from the mount's.
func socketDirs() []string {
	uid := os.Geteuid()
	if uid == 0 {
		return []string{"/run/imgfs"}
	}
	var dirs []string
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		dirs = append(dirs, filepath.Join(d, "imgfs"))
	}
	run := fmt.Sprintf("/run/user/%d", uid)
	if st, err := os.Stat(run); err == nil && st.IsDir() {
		dirs = append(dirs, filepath.Join(run, "imgfs"))
	}
	dirs = append(dirs, filepath.Join(os.TempDir(), fmt.Sprintf("imgfs-%d", uid)))
	out := dirs[:0]
	for i, d := range dirs {
		if i == 0 || d != dirs[0] {
			out = append(out, d)
		}
	}
	return out
}

// privateDir creates directory dir (0700) when missing and checks that only this user can use it: a
// directory someone else made, or that others may write to, is refused (its sockets could be faked).
func privateDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("control socket directory %s: %w", dir, errors.Unwrap(err))
	}
	return checkPrivateDir(dir)
}

func checkPrivateDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("control socket directory %s: %w", dir, err)
	}
	uid := uint32(os.Geteuid())
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("control socket directory %s is not a directory (a symlink?): remove it", dir)
	case st.Uid != uid:
		return fmt.Errorf("control socket directory %s is owned by uid %d, not by you (uid %d): remove it, or set XDG_RUNTIME_DIR to a directory of your own", dir, st.Uid, uid)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("control socket directory %s has mode %04o, others may write to it: it must be 0700", dir, st.Mode&0o7777)
	}
	return nil
}

// pausedView pauses a mount's requests (where a process that waits can still be killed) before the
// view's own freeze.
type pausedView struct {
	p *fs.Pause
	v freezer
}

func (pv pausedView) Sync() error { return pv.v.Sync() }

func (pv pausedView) Freeze() func() {
	resume := pv.p.Pause()
	thaw := pv.v.Freeze()
	return func() { thaw(); resume() }
}

// errNotMounted is the answer to "info" of a mount that is still starting.
const errNotMounted = "not mounted yet"

func socketName(id dirID) string { return id.String() + ".sock" }

// controlServer answers a mount's control socket.
type controlServer struct {
	v   freezer
	log *slog.Logger
	mnt atomic.Pointer[mountInfo]
}

// mountInfo is where the mount is: its path and the device number its files report.
type mountInfo struct {
	path string
	dev  uint64
}

// serveControl listens for requests about the upper directory locked by lk until ctx ends. Holding the
// lock, the caller is the only mount of the directory: a socket left by a mount that died is replaced.
func serveControl(ctx context.Context, lk *upperLock, v freezer, log *slog.Logger) (*controlServer, error) {
	dir := socketDirs()[0]
	if os.Geteuid() == 0 {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, fmt.Errorf("control socket: %w", err)
		}
	}
	if err := privateDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, socketName(lk.id))
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	s := &controlServer{v: v, log: log}
	go func() {
		<-ctx.Done()
		ln.Close()
		os.Remove(path)
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.handle(c)
		}
	}()
	return s, nil
}

// mounted records that the file system is mounted at mnt (it answers requests already).
func (s *controlServer) mounted(mnt string) error {
	abs, err := filepath.Abs(mnt)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		return fmt.Errorf("mount %s: %w", mnt, err)
	}
	s.mnt.Store(&mountInfo{path: abs, dev: st.Dev})
	return nil
}

// syncMount writes back the mount's dirty pages: syncfs on the mount makes the kernel send the pages
// written through shared mappings (not yet msync'ed) to this server, which puts them in the upper
// directory.
func (s *controlServer) syncMount() error {
	m := s.mnt.Load()
	if m == nil {
		return nil
	}
	fd, err := unix.Open(m.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", m.path, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncfs %s: %w", m.path, err)
	}
	return nil
}

func (s *controlServer) handle(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		switch req := strings.TrimSpace(line); req {
		case "info":
			m := s.mnt.Load()
			if m == nil {
				fmt.Fprintln(c, "error: "+errNotMounted)
				continue
			}
			fmt.Fprintf(c, "mount %d %s\n", m.dev, strconv.Quote(m.path))
			continue
		case "freeze":
		default:
			fmt.Fprintf(c, "error: unknown request %q\n", req)
			continue
		}
		if err := s.syncMount(); err != nil {
			// Only pages of shared mappings not yet written back are at stake: commit anyway.
			s.log.Warn("commit: the mount's dirty pages could not be flushed", "err", err)
		}
		if err := s.v.Sync(); err != nil {
			fmt.Fprintf(c, "error: sync: %v\n", err)
			return
		}
		thaw := s.v.Freeze()
		s.log.Info("writes paused for a commit")
		if _, err := fmt.Fprintln(c, "frozen"); err != nil {
			thaw()
			return
		}
		r.ReadString('\n') // "thaw", or EOF when the client is done or died
		thaw()
		s.log.Info("writes resumed")
		return
	}
}

// pauseWrites names what a command writes while a live mount is paused, to refuse any of it that lies
// in that mount (writing there would wait for the pause to end, and the pause waits for the command).
type pauseWrites struct {
	paths  []pausePath
	stderr bool // standard error: logs go there during the pause
}

// pausePath is something written during a pause: what it is, as the user named it ("output out.tar"),
// and the directory it is written in (for an atomic output, its temporary file is created there).
type pausePath struct{ what, dir string }

// pauseUpper makes sure nothing changes upper directory dir until release is called: it pauses the
// live mount of dir, or, with no mount, locks dir so that none starts meanwhile. It refuses, before
// pausing, when anything in w lies in that mount. ctx ending releases the pause at once. A mount that
// goes away meanwhile (it is unmounting, or its daemon died and left its socket behind) drops its lock,
// so the lock is tried again whenever its socket does not answer, for about ten seconds.
func pauseUpper(ctx context.Context, dir string, w pauseWrites, log *slog.Logger) (release func(), err error) {
	var last error
	for try := 0; try < 50; try++ {
		lk, err := lockUpperShared(dir)
		if err == nil {
			return func() { lk.Close() }, nil
		}
		if !errors.Is(err, errUpperBusy) {
			return nil, err
		}
		id, err := upperDirID(dir)
		if err != nil {
			return nil, err
		}
		c, err := dialControl(id)
		if err == nil {
			release, err = pauseLive(ctx, c, dir, w, log)
			if err == nil || !errors.Is(err, errControlGone) {
				return release, err
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("upper directory %s is used by a live mount whose control socket did not answer (%v): unmount it, or commit with --pause=false", dir, last)
}

// lockUpperWaiting is lockUpper for a new writable mount. A mount that was just unmounted can hold
// the lock for a moment while its daemon exits (`imgfs unmount` returns when the kernel lets go), so
// while the holder's control socket does not answer, the lock is tried again for about five seconds;
// a live mount that answers is refused at once.
func lockUpperWaiting(dir string) (*upperLock, error) {
	lk, err := lockUpper(dir)
	for try := 0; errors.Is(err, errUpperBusy) && try < 25 && !mountAnswers(dir); try++ {
		time.Sleep(200 * time.Millisecond)
		lk, err = lockUpper(dir)
	}
	return lk, err
}

// mountAnswers says whether a live mount of upper directory dir answers on its control socket (a
// mount still starting counts).
func mountAnswers(dir string) bool {
	id, err := upperDirID(dir)
	if err != nil {
		return false
	}
	c, err := dialControl(id)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	_, err = request(c, bufio.NewReader(c), "info")
	return err == nil || err.Error() == errNotMounted
}

// errControlGone means the mount's control connection closed before it answered: the mount is going.
var errControlGone = errors.New("the live mount closed its control connection")

// pauseLive asks the live mount behind connection c to pause; it owns c.
func pauseLive(ctx context.Context, c net.Conn, dir string, w pauseWrites, log *slog.Logger) (release func(), err error) {
	var once sync.Once
	done := func() { once.Do(func() { fmt.Fprintln(c, "thaw"); c.Close() }) }
	stop := context.AfterFunc(ctx, done)
	ok := false
	defer func() {
		if !ok {
			stop()
			done()
		}
	}()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	r := bufio.NewReader(c)
	line, err := request(c, r, "info")
	for try := 0; err != nil && err.Error() == errNotMounted && try < 50; try++ {
		time.Sleep(200 * time.Millisecond) // the mount is starting
		line, err = request(c, r, "info")
	}
	if err != nil {
		return nil, fmt.Errorf("asking the live mount of %s: %w", dir, gone(err))
	}
	m, err := parseMountInfo(line)
	if err != nil {
		return nil, fmt.Errorf("asking the live mount of %s: %w", dir, err)
	}
	if err := w.check(m, dir); err != nil {
		return nil, err
	}
	line, err = request(c, r, "freeze")
	if err == nil && line != "frozen" {
		err = errors.New(line)
	}
	if err != nil {
		return nil, fmt.Errorf("pausing the live mount of %s: %w", dir, gone(err))
	}
	c.SetDeadline(time.Time{})
	ok = true
	log.Info("paused the live mount of the upper directory", "dir", dir, "mountpoint", m.path)
	return func() { stop(); done() }, nil
}

// gone marks the errors of a connection the server closed as errControlGone.
func gone(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, unix.ECONNRESET) ||
		errors.Is(err, unix.EPIPE) {
		return fmt.Errorf("%w: %w", errControlGone, err)
	}
	return err
}

// dialControl connects to the control socket of the mount of directory id.
func dialControl(id dirID) (net.Conn, error) {
	var last error
	for _, d := range socketDirs() {
		if err := checkPrivateDir(d); err != nil {
			if !errors.Is(err, unix.ENOENT) {
				last = err
			}
			continue
		}
		c, err := net.DialTimeout("unix", filepath.Join(d, socketName(id)), 2*time.Second)
		if err == nil {
			return c, nil
		}
		last = err
	}
	if last == nil {
		last = errors.New("no control socket directory")
	}
	return nil, last
}

// request sends one request line and reads the answer; an "error: ..." answer is an error.
func request(c net.Conn, r *bufio.Reader, req string) (string, error) {
	if _, err := fmt.Fprintln(c, req); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSpace(line)
	if msg, ok := strings.CutPrefix(line, "error: "); ok {
		return "", errors.New(msg)
	}
	return line, nil
}

func parseMountInfo(line string) (mountInfo, error) {
	f := strings.SplitN(line, " ", 3)
	if len(f) != 3 || f[0] != "mount" {
		return mountInfo{}, fmt.Errorf("unexpected answer %q", line)
	}
	dev, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return mountInfo{}, fmt.Errorf("unexpected answer %q", line)
	}
	path, err := strconv.Unquote(f[2])
	if err != nil {
		return mountInfo{}, fmt.Errorf("unexpected answer %q", line)
	}
	return mountInfo{path: path, dev: dev}, nil
}

// check refuses when anything to be written lies in mount m (of upper directory dir): a write there
// would wait for the pause, which waits for the write.
func (w pauseWrites) check(m mountInfo, dir string) error {
	for _, p := range w.paths {
		dev, err := existingDev(p.dir)
		if err != nil {
			return err
		}
		if dev == m.dev {
			return fmt.Errorf("%s lies in the live mount %s of upper directory %s, which is paused while it is read: write it outside that mount", p.what, m.path, dir)
		}
	}
	if w.stderr {
		var st unix.Stat_t
		if unix.Fstat(2, &st) == nil && st.Dev == m.dev && st.Mode&unix.S_IFMT == unix.S_IFREG {
			return fmt.Errorf("standard error is a file in the live mount %s of upper directory %s, which is paused while it is read: redirect it outside that mount", m.path, dir)
		}
	}
	return nil
}

// checkOutside refuses when anything to be written lies in upper directory dir (it would be read as a
// change, and show in every later mount).
func (w pauseWrites) checkOutside(dir string) error {
	id, err := upperDirID(dir)
	if err != nil {
		return err
	}
	for _, p := range w.paths {
		abs, err := filepath.Abs(p.dir)
		if err != nil {
			return err
		}
		// The nearest existing directory, symlinks resolved: its ancestors are where the file lands.
		for abs != filepath.Dir(abs) {
			if real, err := filepath.EvalSymlinks(abs); err == nil {
				abs = real
				break
			}
			abs = filepath.Dir(abs)
		}
		for q := abs; ; q = filepath.Dir(q) {
			var st unix.Stat_t
			if unix.Stat(q, &st) == nil && st.Dev == id.dev && st.Ino == id.ino {
				return fmt.Errorf("%s lies in the upper directory %s it commits: write it outside that directory", p.what, dir)
			}
			if q == filepath.Dir(q) {
				break
			}
		}
	}
	return nil
}

// existingDev returns the device of path or of its nearest existing parent (a file to be created is
// created on its parent's file system), symlinks followed.
func existingDev(path string) (uint64, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, err
	}
	for p := abs; ; p = filepath.Dir(p) {
		var st unix.Stat_t
		err := unix.Stat(p, &st)
		if err == nil {
			return st.Dev, nil
		}
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			return 0, fmt.Errorf("%s: %w", p, err)
		}
		if p == filepath.Dir(p) {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
	}
}
