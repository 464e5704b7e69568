package fs

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
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
// view as they come, without the kernel's writeback cache. With Options.Evidence it is also noexec and
// nosymfollow (the latter by mount(2) as root, else by mount_setattr(2) where allowed: FlagsOf says
// which flags the kernel really applies).
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
	if opts.Evidence {
		ensureNoSymfollow(mountpoint, log)
	}
	if err := raiseReadahead(mountpoint, maxRequest); err != nil {
		log.Debug("fs: readahead left at the kernel's default", "mountpoint", mountpoint, "reason", err)
	}
	return srv, nil
}

// Flags of a mount as statfs(2) reports them (f_flags).
const (
	stRdonly      = 0x1
	stNosuid      = 0x2
	stNodev       = 0x4
	stNoexec      = 0x8
	stNoSymfollow = 0x2000 // Linux 5.10
)

// MountFlags is what the kernel says of a mount's restrictions.
type MountFlags struct {
	ReadOnly, NoSuid, NoDev, NoExec, NoSymfollow bool
}

// String lists the flags set, as mount options ("ro,nosuid,nodev,noexec,nosymfollow").
func (f MountFlags) String() string {
	var s []string
	for _, o := range []struct {
		on   bool
		name string
	}{{f.ReadOnly, "ro"}, {f.NoSuid, "nosuid"}, {f.NoDev, "nodev"}, {f.NoExec, "noexec"}, {f.NoSymfollow, "nosymfollow"}} {
		if o.on {
			s = append(s, o.name)
		}
	}
	return strings.Join(s, ",")
}

// FlagsOf returns the restrictions the kernel applies to the mount at mountpoint (statfs f_flags).
func FlagsOf(mountpoint string) (MountFlags, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(mountpoint, &st); err != nil {
		return MountFlags{}, fmt.Errorf("statfs %s: %w", mountpoint, err)
	}
	f := st.Flags
	return MountFlags{ReadOnly: f&stRdonly != 0, NoSuid: f&stNosuid != 0, NoDev: f&stNodev != 0,
		NoExec: f&stNoexec != 0, NoSymfollow: f&stNoSymfollow != 0}, nil
}

// ensureNoSymfollow sets nosymfollow on the mount when mount(2) did not (the mount went through
// fusermount), with mount_setattr(2), which needs CAP_SYS_ADMIN; what it could not do is logged, and
// FlagsOf tells the caller the truth.
func ensureNoSymfollow(mountpoint string, log *slog.Logger) {
	if f, err := FlagsOf(mountpoint); err == nil && f.NoSymfollow {
		return
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSYMFOLLOW}
	if err := unix.MountSetattr(unix.AT_FDCWD, mountpoint, unix.AT_SYMLINK_NOFOLLOW, &attr); err != nil {
		log.Debug("fs: nosymfollow could not be set after mounting", "mountpoint", mountpoint, "err", err)
	}
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
	if opts.Evidence {
		// fusermount (3.14) knows noexec but not nosymfollow: that is a flag of mount(2) only, or
		// set afterwards by ensureNoSymfollow.
		options = append(options, "noexec")
		flags |= syscall.MS_NOEXEC | unix.MS_NOSYMFOLLOW
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
