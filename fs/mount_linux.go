package fs

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hanwen/go-fuse/v2/fuse"
)

const (
	// maxRequest is the largest READ the kernel is asked to send (capped by go-fuse at what the kernel
	// allows, /proc/sys/fs/fuse/max_pages_limit pages).
	maxRequest = 1 << 20
	// maxBackground is how many asynchronous requests (readahead) the kernel keeps in flight.
	maxBackground = 32
	// maxInflight bounds the request buffers go-fuse keeps checked out. Every reader goroutine waiting
	// for the kernel holds one of maxRequest bytes (it must fit a WRITE of a writable view), and
	// go-fuse runs up to GOMAXPROCS (at most 16) of them: 8 MiB keeps that within the memory budget on
	// large machines. Small requests give their buffer back as soon as they are read, so this limits
	// idle readers, not requests being served.
	maxInflight = 8 << 20
)

// Mount mounts view at mountpoint and serves it until the returned server is unmounted (Server.Unmount,
// or umount/fusermount -u from outside; then Server.Wait returns).
//
// The mount is read-only unless view is a WritableView whose Writable reports true. It is always nodev
// and nosuid, and uses default_permissions: the kernel checks the image's modes and owners against the
// caller, so a file of mode 0600 owned by root in the image is readable by root only. Writes go to the
// view as they come, without the kernel's writeback cache.
func Mount[D Dir](mountpoint string, view View[D], opts Options) (*fuse.Server, error) {
	return mount(mountpoint, newFileSystem(view, opts), opts)
}

func mount[D Dir](mountpoint string, fsys *fileSystem[D], opts Options) (*fuse.Server, error) {
	var raw fuse.RawFileSystem = fsys
	if opts.Pause != nil && fsys.writable() {
		raw = pausable{RawFileSystem: fsys, p: opts.Pause}
	}
	return serve(mountpoint, raw, fsys.writable(), fsys.log, opts)
}

// serve mounts raw, which serves a file system that is writable or not, and serves it in the
// background (tests put a recorder of requests in front of a fileSystem).
func serve(mountpoint string, raw fuse.RawFileSystem, writable bool, log *slog.Logger, opts Options) (*fuse.Server, error) {
	srv, err := fuse.NewServer(raw, mountpoint, mountOptions(opts, writable, log))
	if err != nil {
		return nil, fmt.Errorf("mounting %s: %w", mountpoint, err)
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		_ = srv.Unmount()
		return nil, fmt.Errorf("mounting %s: %w", mountpoint, err)
	}
	if err := raiseReadahead(mountpoint, maxRequest); err != nil {
		log.Debug("fs: readahead left at the kernel's default", "mountpoint", mountpoint, "reason", err)
	}
	return srv, nil
}

// raiseReadahead sets the readahead of the mount's backing device (a FUSE connection has its own
// bdi, named after the mount's device number) to n bytes. The kernel's default, 128 KiB, caps READ
// requests at 128 KiB whatever the mount asked for; 1 MiB triples sequential read throughput
// (measured: 1.1 to 3.2 GB/s on a 4 GiB member). Only root may write it; others keep the default.
func raiseReadahead(mountpoint string, n int) error {
	var st syscall.Stat_t
	if err := syscall.Stat(mountpoint, &st); err != nil {
		return err
	}
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	return os.WriteFile(path, []byte(strconv.Itoa(n>>10)), 0)
}

func mountOptions(opts Options, writable bool, log *slog.Logger) *fuse.MountOptions {
	fsName := opts.FsName
	if fsName == "" {
		fsName = "imgfs"
	}
	// fusermount takes these as they are; mount(2) (DirectMount) gets ro, nodev and nosuid as
	// DirectMountFlags. default_permissions makes the kernel check modes, so ACCESS never comes.
	options := []string{"nodev", "nosuid", "default_permissions"}
	flags := uintptr(syscall.MS_NODEV | syscall.MS_NOSUID)
	if !writable {
		options = append([]string{"ro"}, options...)
		flags |= syscall.MS_RDONLY
	}
	mo := &fuse.MountOptions{
		Options:          append(options, opts.ExtraOptions...),
		DirectMountFlags: flags,
		AllowOther:       opts.AllowOther,
		DirectMount:      opts.DirectMount,
		FsName:           fsName,
		Name:             "imgfs",
		MaxWrite:         maxRequest,
		// The kernel caps readahead at its own limit for the device (128 KiB by default, see
		// /sys/class/bdi/*/read_ahead_kb); raiseReadahead lifts that after mounting.
		MaxReadAhead:            maxRequest,
		MaxBackground:           maxBackground,
		MaxInflightRequestBytes: maxInflight,
		// Symbolic links never change: let the kernel cache their targets.
		EnableSymlinkCaching: true,
		// The kernel enforces POSIX ACLs (system.posix_acl_access) as it does on a local file system;
		// without this it checks the mode bits alone, where the group bits are the ACL's mask.
		EnableAcl: true,
		Debug:     opts.Debug,
		// A writable view truncates in OPEN for open(2) with O_TRUNC (otherwise the kernel sends a
		// SETATTR first): one request instead of two, and the view can copy a lower file up without
		// its data. It also takes the umask apart (FUSE_DONT_MASK).
		ExtraCapabilities: extraCapabilities(writable),
		Logger:            slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return mo
}

func extraCapabilities(writable bool) uint64 {
	if writable {
		// FUSE_DONT_MASK: the caller's umask comes apart from the mode, since a parent's default ACL
		// replaces it (see newEntry).
		return fuse.CAP_ATOMIC_O_TRUNC | fuse.CAP_DONT_MASK
	}
	return 0
}
