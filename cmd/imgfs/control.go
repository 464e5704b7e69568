package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A writable mount listens on a unix socket named after its upper directory, so that `imgfs commit`
// of the same directory can pause the mount's writes for a consistent snapshot (docker commit -p).
// Protocol, one line each way: the client sends "freeze", the server syncs the upper directory, stops
// new changes, waits for running ones and answers "frozen"; writes resume when the client closes the
// connection (or sends "thaw"), so a commit that dies never leaves the mount stuck.

// freezer is what the control socket needs of a writable view.
type freezer interface {
	Freeze() (thaw func())
	Sync() error
}

// controlPath is the socket of the mount whose upper directory is dir.
func controlPath(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	sum := sha256.Sum256([]byte(abs))
	base := os.Getenv("XDG_RUNTIME_DIR")
	if base == "" {
		base = "/run"
		if os.Geteuid() != 0 {
			base = os.TempDir()
		}
	}
	return filepath.Join(base, "imgfs", hex.EncodeToString(sum[:12])+".sock"), nil
}

// serveControl listens for freeze requests until ctx ends.
func serveControl(ctx context.Context, dir string, v freezer, log *slog.Logger) error {
	path, err := controlPath(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("upper directory %s is already used by a live mount (%s)", dir, path)
	}
	os.Remove(path) // stale, from a mount that died
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
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
			go handleControl(c, v, log)
		}
	}()
	return nil
}

func handleControl(c net.Conn, v freezer, log *slog.Logger) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if strings.TrimSpace(line) != "freeze" {
			fmt.Fprintf(c, "error: unknown request %q\n", strings.TrimSpace(line))
			continue
		}
		if err := v.Sync(); err != nil {
			fmt.Fprintf(c, "error: sync: %v\n", err)
			return
		}
		thaw := v.Freeze()
		log.Info("writes paused for a commit")
		if _, err := fmt.Fprintln(c, "frozen"); err != nil {
			thaw()
			return
		}
		r.ReadString('\n') // "thaw", or EOF when the client is done or died
		thaw()
		log.Info("writes resumed")
		return
	}
}

// freezeLive pauses the live mount of dir, if there is one. thaw resumes it; live says whether a mount
// answered.
func freezeLive(dir string) (thaw func(), live bool, err error) {
	path, err := controlPath(dir)
	if err != nil {
		return nil, false, err
	}
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return func() {}, false, nil
	}
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := fmt.Fprintln(c, "freeze"); err != nil {
		c.Close()
		return nil, true, fmt.Errorf("pausing the live mount of %s: %w", dir, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "frozen" {
		c.Close()
		if err == nil {
			err = errors.New(strings.TrimSpace(line))
		}
		return nil, true, fmt.Errorf("pausing the live mount of %s: %w", dir, err)
	}
	c.SetDeadline(time.Time{})
	return func() { fmt.Fprintln(c, "thaw"); c.Close() }, true, nil
}
