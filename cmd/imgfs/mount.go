package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imgfs/imgfs/custody"
	"github.com/imgfs/imgfs/fs"
	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/registry"
)

// Environment of the background child that serves a mount: the fd it reports readiness on.
const daemonEnv = "IMGFS_DAEMON_READY_FD"

func mountCommand() *cli.Command {
	return &cli.Command{
		Name:      "mount",
		Usage:     "mount an image archive's merged root filesystem (read-only, or writable with --upper)",
		ArgsUsage: "ARCHIVE... MOUNTPOINT",
		Description: "Indexes the image's layers (once; indexes are cached by digest) and mounts the merged view.\n" +
			"Returns when the mount is ready and keeps serving in the background; -f stays attached.\n" +
			"Unmount with 'imgfs unmount MOUNTPOINT' or umount.",
		Flags: append(append(archiveFlags(),
			&cli.BoolFlag{Name: "foreground", Aliases: []string{"f"}, Usage: "stay attached until unmounted (Ctrl-C unmounts)"},
			&cli.StringSliceFlag{Name: "options", Aliases: []string{"o"}, Usage: "extra FUSE mount options (e.g. -o allow_other)"},
			&cli.BoolFlag{Name: "allow-other", Usage: "let other users see the mount (default: on when run as root)"},
			&cli.StringFlag{Name: "log-file", Usage: "in the background, append logs to this file (default: discard)"},
			&cli.BoolFlag{Name: "fuse-debug", Usage: "log every FUSE request (implies -f)"},
			&cli.StringFlag{Name: "upper", Usage: "make the mount writable: changes go to `DIR` (created when missing; kernel overlayfs format)"},
			&cli.BoolFlag{Name: "evidence", Usage: "for examiners: ro,nosuid,nodev,noexec,nosymfollow, every blob proven before serving, the archive's sha256 taken before serving (with --custody, again at the end), and the layer trees of --layers (README: Evidence mounts)"},
			&cli.StringFlag{Name: "cache-max-size", Value: defaultCacheMaxSize, EnvVars: []string{"IMGFS_CACHE_MAX_SIZE"},
				Usage: "once the mount is ready, prune the cache in the background to `SIZE` (oldest unused keys first; 0: never)"},
			&cli.BoolFlag{Name: "no-verify", Usage: "serve layers whose digest or diff_id does not match their claims (each named in a warning and the custody record)"},
		), layerFlags()...),
		Action: runMount,
	}
}

func runMount(c *cli.Context) error {
	if c.NArg() < 2 {
		return usageError(c, "want ARCHIVE MOUNTPOINT, got %d argument(s)", c.NArg())
	}
	archivePath, mnt := c.Args().Get(0), c.Args().Get(c.NArg()-1)
	sources := c.Args().Slice()[:c.NArg()-1]
	if err := checkStackFlags(c, sources); err != nil {
		return err
	}
	if note, err := checkMountTarget(mnt); err != nil {
		return err
	} else if note != "" {
		newLogger(c).Warn(note)
	}
	if err := checkMountpoint(mnt); err != nil {
		return err
	}
	if _, err := parseSize(c.String("cache-max-size")); err != nil {
		return usageError(c, "--cache-max-size: %v", err)
	}
	for _, p := range sources {
		if _, remote := registry.IsReference(p); remote {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s: %w", p, errors.Unwrap(err))
		}
	}
	evidence := c.Bool("evidence")
	if evidence {
		if err := checkEvidenceFlags(c); err != nil {
			return err
		}
	}
	foreground := c.Bool("foreground") || c.Bool("fuse-debug")
	readyFD := os.Getenv(daemonEnv)
	cs := custodyOf(c)
	if !foreground && readyFD == "" {
		cs.Skip() // the daemon records the mount
		return spawnDaemon(c)
	}
	log := newLogger(c)
	ctx := c.Context
	if c.Bool("no-verify") {
		log.Warn("--no-verify: layers that do not match their digests are served unverified, each named below and in the custody record")
	}

	o, err := openStack(ctx, c, sources, log, true)
	if err != nil {
		return err
	}
	defer o.Close()
	if evidence {
		// Every layer was proven against both claims (index.Open); a layer without one would have
		// been proven against nothing.
		for i, l := range o.img.Layers {
			if l.Digest == "" || l.DiffID == "" {
				return fmt.Errorf("%s: layer %d (%s): no digest or no diff_id to prove it against; an evidence mount refuses it", archivePath, i+1, l.Source)
			}
		}
	}

	upperDir := c.String("upper")
	var lock *upperLock
	if upperDir != "" {
		// One writable mount per upper directory, whatever path names it: held until this process ends.
		if lock, err = lockUpperWaiting(upperDir); errors.Is(err, errUpperBusy) {
			return fmt.Errorf("upper directory %s is %w", upperDir, err)
		} else if err != nil {
			return err
		}
		defer lock.Close()
	}
	view, closeView, err := o.view(upperDir, log)
	if err != nil {
		return err
	}
	defer closeView()
	tree, err := o.layerView(c, view, log)
	if err != nil {
		return err
	}
	// Building indexes leaves ~100 bytes of garbage per entry; a long-lived mount should not keep
	// that memory until the scavenger gets to it.
	debug.FreeOSMemory()
	var sum custody.Archive
	if evidence || cs != nil {
		// Taken before the mount serves, from the cache when the archive's identity is unchanged.
		var cached bool
		pr := newProgress(c.Bool("quiet"), "hashing the archive", 1) // when its sum is not remembered
		so := custody.SumOptions{CacheDir: cacheDir(c), Logger: log}
		if slot := pr.slot(0); slot != nil {
			so.Progress = func(done, total int64) { slot(index.Progress{Bytes: done, Total: total}) }
		}
		sum, cached, err = custody.Identify(ctx, archivePath, so)
		pr.done()
		if err != nil {
			return err
		}
		cs.SetSum(sum)
		cs.Note("sha256_cached", cached)
		log.Info("archive identified", "archive", sum.Path, "sha256", sum.SHA256, "identity", sum.Identity, "cached", cached)
	}
	abs, _ := filepath.Abs(archivePath)
	opts := fs.Options{
		Logger:       log,
		AllowOther:   c.Bool("allow-other") || os.Geteuid() == 0,
		DirectMount:  os.Geteuid() == 0,
		FsName:       "imgfs:" + sanitizeFsName(abs),
		Debug:        c.Bool("fuse-debug"),
		ExtraOptions: c.StringSlice("options"),
		UpperDir:     upperDir,
		Evidence:     evidence,
	}
	var ctl *controlServer
	if upperDir != "" {
		// imgfs commit of the same directory pauses this mount's writes through this socket.
		opts.Pause = &fs.Pause{}
		if ctl, err = serveControl(ctx, lock, pausedView{opts.Pause, view}, log); err != nil {
			return err
		}
	}
	server, err := fs.Mount(mnt, tree, opts)
	if err != nil {
		return fmt.Errorf("mount %s: %w", mnt, err)
	}
	if err := server.WaitMount(); err != nil {
		server.Unmount()
		return fmt.Errorf("mount %s: %w", mnt, err)
	}
	if ctl != nil {
		if err := ctl.mounted(mnt); err != nil {
			server.Unmount()
			return err
		}
	}
	log.Info("mounted", "archive", archivePath, "image", o.img.ManifestDigest, "mountpoint", mnt, "layers", len(o.layers), "tree", tree.Name())
	var end *mountEnd
	if evidence || cs != nil {
		if end, err = mountReady(c, o, mnt, sum, evidence, log); err != nil {
			server.Unmount()
			return err
		}
		defer end.close()
	}
	if readyFD != "" {
		if err := detach(readyFD, c.String("log-file"), log); err != nil {
			server.Unmount()
			return err
		}
	}
	pruneAfterMount(cacheDir(c), c.String("cache-max-size"), log)
	err = serve(ctx, server, mnt)
	if end != nil {
		end.record(c, err, log)
	}
	return err
}

// mountServer is what serve needs of a go-fuse server.
type mountServer interface {
	Wait()
	Unmount() error
}

// serve waits until the file system is unmounted; a signal unmounts it.
func serve(ctx context.Context, server mountServer, mnt string) error {
	done := make(chan struct{})
	go func() {
		server.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	for i := 0; ; i++ {
		err := server.Unmount()
		if err == nil {
			break
		}
		if i == 20 {
			return fmt.Errorf("unmount %s: %w (still busy; try 'umount -l %s')", mnt, err, mnt)
		}
		time.Sleep(250 * time.Millisecond)
	}
	<-done
	return nil
}

func checkMountpoint(mnt string) error {
	st, err := os.Stat(mnt)
	if err != nil {
		return fmt.Errorf("mountpoint %s: %w", mnt, errors.Unwrap(err))
	}
	if !st.IsDir() {
		return fmt.Errorf("mountpoint %s: not a directory", mnt)
	}
	return nil
}

func sanitizeFsName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\\' {
			return '_'
		}
		return r
	}, s)
}

// spawnDaemon runs this command again in a new session and waits until it reports the mount ready (or
// fails, having printed its error on our stderr, which it shares until it is ready).
func spawnDaemon(c *cli.Context) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding own executable: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), daemonEnv+"=3")
	cmd.Stdin = nil
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("starting the mount daemon: %w", err)
	}
	w.Close()
	line, _ := bufio.NewReader(r).ReadString('\n')
	if strings.TrimSpace(line) == "ready" {
		cmd.Process.Release()
		return nil
	}
	// The child failed and printed why.
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		return exitError{code: ee.ExitCode()}
	}
	return exitError{code: 1}
}

// detach tells the waiting parent that the mount is ready and stops using its terminal.
func detach(fdStr, logFile string, log *slog.Logger) error {
	var fd int
	if _, err := fmt.Sscan(fdStr, &fd); err != nil {
		return fmt.Errorf("%s=%q: %w", daemonEnv, fdStr, err)
	}
	ready := os.NewFile(uintptr(fd), "ready")
	target := os.DevNull
	if logFile != "" {
		target = logFile
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	if _, err := fmt.Fprintln(ready, "ready"); err != nil {
		return err
	}
	ready.Close()
	// Our stderr and stdout were the parent's terminal: point them at the log (or /dev/null).
	if err := syscall.Dup2(int(f.Fd()), 1); err != nil {
		return err
	}
	if err := syscall.Dup2(int(f.Fd()), 2); err != nil {
		return err
	}
	if null, err := os.Open(os.DevNull); err == nil {
		syscall.Dup2(int(null.Fd()), 0)
	}
	log.Debug("detached")
	return nil
}

func unmountCommand() *cli.Command {
	return &cli.Command{
		Name:      "unmount",
		Aliases:   []string{"umount"},
		Usage:     "unmount an imgfs mount (plain umount works too)",
		ArgsUsage: "MOUNTPOINT",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "lazy", Aliases: []string{"l"}, Usage: "detach now, clean up when no longer busy"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageError(c, "want MOUNTPOINT")
			}
			mnt, err := checkUnmountTarget(c.Args().First())
			if err != nil {
				return err
			}
			cs := custodyOf(c)
			cs.SetArchive("") // the mount's daemon records the archive's state at its end
			cs.Note("mountpoint", mnt)
			dev := mountDev(mnt)
			if err := unmount(mnt, c.Bool("lazy")); err != nil {
				return err
			}
			if !c.Bool("lazy") {
				// A mount with a custody log records its end: return once it has.
				waitMountEnd(c.Context, dev, newLogger(c))
			}
			return nil
		},
	}
}
