package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeFreezer struct {
	mu     sync.Mutex
	frozen atomic.Int32
	synced atomic.Int32
}

func (f *fakeFreezer) Freeze() func() {
	f.mu.Lock()
	f.frozen.Add(1)
	return func() { f.frozen.Add(-1); f.mu.Unlock() }
}

func (f *fakeFreezer) Sync() error { f.synced.Add(1); return nil }

func waitThawed(t *testing.T, f *fakeFreezer) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.frozen.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if f.frozen.Load() != 0 {
		t.Error("still frozen after the pause was released")
	}
}

func TestControlFreeze(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// No mount: the directory is locked shared, and a mount cannot start meanwhile.
	release, err := pauseUpper(ctx, dir, pauseWrites{}, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockUpper(dir); !errors.Is(err, errUpperBusy) {
		t.Errorf("a mount could lock the directory during an offline commit: %v", err)
	}
	release()

	lk, err := lockUpper(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	// A second mount, through an alias of the directory, is refused.
	alias := filepath.Join(t.TempDir(), "alias")
	if err := os.Symlink(dir, alias); err != nil {
		t.Fatal(err)
	}
	if _, err := lockUpper(alias + "/"); !errors.Is(err, errUpperBusy) {
		t.Errorf("second lock through an alias: %v, want errUpperBusy", err)
	}
	f := &fakeFreezer{}
	ctl, err := serveControl(ctx, lk, f, log)
	if err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	if err := ctl.mounted(mnt); err != nil {
		t.Fatal(err)
	}

	// An output in the "mount" (same device as mnt) is refused before anything is paused.
	_, err = pauseUpper(ctx, alias, pauseWrites{paths: []pausePath{{"output x", filepath.Join(mnt, "sub")}}}, log)
	if err == nil || !strings.Contains(err.Error(), "lies in the live mount") {
		t.Errorf("output in the mount: %v", err)
	}
	if f.frozen.Load() != 0 || f.synced.Load() != 0 {
		t.Errorf("refused commit paused the mount: frozen %d synced %d", f.frozen.Load(), f.synced.Load())
	}

	release, err = pauseUpper(ctx, alias, pauseWrites{}, log)
	if err != nil {
		t.Fatal(err)
	}
	if f.frozen.Load() != 1 || f.synced.Load() != 1 {
		t.Errorf("after freeze: frozen %d synced %d", f.frozen.Load(), f.synced.Load())
	}
	release()
	waitThawed(t, f)

	// Ending the context (SIGINT, SIGTERM) releases the pause at once.
	pctx, pcancel := context.WithCancel(ctx)
	if _, err := pauseUpper(pctx, dir, pauseWrites{}, log); err != nil {
		t.Fatal(err)
	}
	if f.frozen.Load() != 1 {
		t.Error("not frozen")
	}
	pcancel()
	waitThawed(t, f)
}

func TestPrivateDir(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a directory owned by someone else")
	}
	base := t.TempDir()
	own := filepath.Join(base, "own")
	if err := privateDir(own); err != nil {
		t.Fatal(err)
	}
	if err := privateDir(own); err != nil {
		t.Errorf("second use of own directory: %v", err)
	}
	hostile := filepath.Join(base, "hostile")
	if err := os.Mkdir(hostile, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(hostile, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	if err := privateDir(hostile); err == nil || !strings.Contains(err.Error(), "owned by uid 4242") {
		t.Errorf("directory of another user: %v", err)
	}
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777)
	if err := privateDir(open); err == nil || !strings.Contains(err.Error(), "0700") {
		t.Errorf("directory others may write to: %v", err)
	}
	link := filepath.Join(base, "link")
	os.Symlink(own, link)
	if err := privateDir(link); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("symlink: %v", err)
	}
}

// A commit that comes while the mount is still starting (locked, listening, not mounted) waits for it.
func TestControlMountStarting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	lk, err := lockUpper(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	f := &fakeFreezer{}
	ctl, err := serveControl(ctx, lk, f, log)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		release func()
		err     error
	}
	done := make(chan result)
	go func() {
		r, err := pauseUpper(ctx, dir, pauseWrites{}, log)
		done <- result{r, err}
	}()
	time.Sleep(300 * time.Millisecond)
	if err := ctl.mounted(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil {
		t.Fatalf("commit during the mount's start: %v", res.err)
	}
	if f.frozen.Load() != 1 {
		t.Error("not frozen")
	}
	res.release()
	waitThawed(t, f)
}

// TestPauseMountGoing: a mount that is going away (it holds the lock, its socket accepts but closes
// without answering, then it drops the lock) must not fail the commit: pauseUpper takes the lock then.
// Commits run right after `imgfs unmount` met exactly this.
func TestPauseMountGoing(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	lk, err := lockUpper(dir)
	if err != nil {
		t.Fatal(err)
	}
	sockDir := socketDirs()[0]
	if err := privateDir(sockDir); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(sockDir, socketName(lk.id))
	os.Remove(sock) // a socket of an earlier directory with the same device and inode (a reused TempDir)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		// The daemon is exiting: it still accepts, but closes every connection unanswered, then its
		// lock and its socket go.
		time.AfterFunc(500*time.Millisecond, func() { lk.Close(); l.Close() })
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	release, err := pauseUpper(context.Background(), dir, pauseWrites{}, log)
	if err != nil {
		t.Fatalf("commit after the mount went away: %v", err)
	}
	if _, err := lockUpper(dir); !errors.Is(err, errUpperBusy) {
		t.Errorf("the commit does not hold the directory's lock: %v", err)
	}
	release()
}

// TestMountWaitsForGoingMount: a new writable mount of a directory whose previous mount is still
// exiting (it holds the lock, its socket is gone) waits for the lock instead of being refused; one whose
// holder answers on its socket is refused. `imgfs unmount M && imgfs mount --upper U ...` met
// the first case.
func TestMountWaitsForGoingMount(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	old, err := lockUpper(dir)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(500*time.Millisecond, func() { old.Close() }) // the old daemon exits
	lk, err := lockUpperWaiting(dir)
	if err != nil {
		t.Fatalf("mount after the old mount went away: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctl, err := serveControl(ctx, lk, &fakeFreezer{}, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.mounted(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if _, err := lockUpperWaiting(dir); !errors.Is(err, errUpperBusy) {
		t.Fatalf("second mount beside a live one: %v, want errUpperBusy", err)
	}
	lk.Close()
}
